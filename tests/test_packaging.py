"""The wheel works away from the source tree: build it, install it into a fresh venv, and run
harvest -> catalog -> validate against the emulator from a folder outside the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import tomllib

from .helpers import ROOT, cli_env


def test_the_wheel_lists_every_package_of_the_source_tree() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "stacmirror").rglob("__init__.py")}
    assert listed == found | {"stacmirror.catalog_template"}


def test_wheel_installs_and_runs_outside_the_checkout(emulator, schema_host: str, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("stacmirror-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = cli_env(emulator, STACMIRROR_SCHEMA_HOST=schema_host, PYTHONPATH="")
    env.pop("STACMIRROR_SCHEMAS", None)
    stacmirror = str(env_dir / "bin" / "stacmirror")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [stacmirror, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )

    where = subprocess.run(
        [str(python), "-c", "import stacmirror; print(stacmirror.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout
    harvest = run(
        "harvest", "mirror", "--dataset", "landsat_ot_c2_l2", "--bbox=-122.6,38.0,-120.0,39.6",
        "--start", "2021-09-01", "--end", "2021-12-31", "--bands", "red,qa_pixel,MTL", "--max-scenes", "2",
        "--poll-interval", "0.1", "--json",
    )  # fmt: skip
    assert harvest.returncode == 0, harvest.stderr
    report = json.loads(harvest.stdout)
    assert report["filesDownloaded"] == 2 * 5 and report["catalog"]["itemsWritten"] == 2
    collection = json.loads((work / "mirror" / "landsat_ot_c2_l2" / "collection.json").read_text())
    assert collection["license"] == "other" and collection.get("sci:doi")  # from the packaged template
    validate = run("validate", "mirror", "--json")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    fetched = json.loads(validate.stdout)["schemasFetched"]
    assert any("/landsat/" in uri for uri in fetched)
    query = run("query", "mirror", "--ids")  # DuckDB over the items.parquet the catalog step wrote
    assert query.returncode == 0 and len(query.stdout.split()) == 2, query.stderr
    build_inputs = subprocess.run(
        [
            str(python),
            "-c",
            "from stacmirror.serve import browser; "
            "print(all((browser.MANIFESTS / name).is_file() for name in browser.BUILD_INPUTS))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert build_inputs.stdout.strip() == "True"  # what the STAC Browser build copies in
