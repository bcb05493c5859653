"""The public Python API: the README example, events, errors with fields, crops that update the
catalog, and validation that fetches a schema once and then runs offline."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import stacmirror
from stacmirror import events as ev
from stacmirror.layout import Mirror

from .helpers import FAST_RETRY, L2, NORTH, ROOT, STACMIRROR, cli_env, demo_credentials


def readme_python_api() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_readme_example_runs_and_the_library_prints_nothing_itself(
    emulator, schema_host, tmp_path, monkeypatch, capfd
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in cli_env(emulator, STACMIRROR_SCHEMA_HOST=schema_host).items():
        monkeypatch.setenv(name, value)
    printed: list[str] = []
    namespace = {"print": lambda *args, **kw: printed.append(" ".join(map(str, args)))}
    exec(compile(readme_python_api(), "README.md", "exec"), namespace)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # everything the example shows came through its own print
    assert printed[0].startswith("18 files;") and printed[0].endswith("3 items")
    assert printed[1] == "18 files verified" and printed[2] == "valid"
    assert printed[3] == "start -> 2021-12-31 is after end 2021-01-01"
    cropped = namespace["cropped"]
    assert cropped.ok and cropped.stacks and cropped.stacks[0].cropped >= 2
    root = json.loads((tmp_path / "py-mirror" / "catalog.json").read_text())
    assert any("crops/" in link["href"] for link in root["links"] if link["rel"] == "child")
    assert len(namespace["cube_items"]) == 3


def test_events_arrive_in_order_and_results_are_what_json_prints(use_emulator, tmp_path: Path) -> None:
    emulator = use_emulator
    seen: list[ev.Event] = []
    selection = stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=NORTH)
    out = tmp_path / "m"
    result = stacmirror.harvest(
        out,
        selection,
        bands="red,MTL",
        max_scenes=2,
        poll_interval=0.05,
        on_event=seen.append,
    )
    kinds = [type(e) for e in seen]
    assert kinds[0] is ev.SearchDone and seen[0].scenes == 2
    planned = next(e for e in seen if isinstance(e, ev.FilesPlanned))
    assert planned.files == 2 * 4 and planned.bytes > 0
    started = {e.path for e in seen if isinstance(e, ev.FileStarted)}
    verified = {e.path for e in seen if isinstance(e, ev.FileVerified)}
    assert started == verified and len(verified) == 8
    moved = sum(e.amount for e in seen if isinstance(e, ev.BytesTransferred))
    assert moved == result.bytes_downloaded
    assert kinds.index(ev.TransfersDone) < kinds.index(ev.ItemWritten) < kinds.index(ev.CatalogDone)
    assert {e.item_id for e in seen if isinstance(e, ev.ItemWritten)} == {
        p.name for p in out.glob(f"{L2}/*/*/*") if p.is_dir()
    }
    assert all(json.dumps(e.to_dict()) for e in seen)
    assert seen[0].to_dict() == {"event": "search_done", "dataset": L2, "scenes": 2}
    as_dict = result.to_dict()
    assert as_dict["filesDownloaded"] == 8 and as_dict["catalog"]["itemsWritten"] == 2
    # the CLI's --json prints the same dictionary (elapsed time and call counts aside)
    cli = subprocess.run(
        [*STACMIRROR, "harvest", str(out), "--dataset", L2, "--bbox=-122.6,38.0,-120.0,39.6",
         "--start", "2021-09-01", "--end", "2021-12-31", "--bands", "red,MTL", "--max-scenes", "2", "--json"],
        env=cli_env(emulator), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    again = json.loads(cli.stdout)
    assert set(again) == set(as_dict) and again["scenesAlreadyComplete"] == 2
    lines = [json.loads(line) for line in cli.stderr.splitlines()]  # progress as JSON lines
    assert lines[0]["event"] == "search_done"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: stacmirror.Selection(L2, "2021-13-01", "2021-12-31"), "start"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "someday"), "end"),
        (lambda: stacmirror.Selection(L2, "2021-12-01", "2021-01-01"), "start"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", bbox="1,2,3"), "bbox"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", wkt="POINT (1 2)"), "wkt"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", aoi="/no/such.geojson"), "aoi"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", cloud_max=120), "cloud_max"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", path="50-40"), "path"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", tier="T9"), "tier"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", filters=["nonsense"]), "filters"),
        (lambda: stacmirror.Selection(L2, "2021-01-01", "2021-12-31", bbox="1,2,3,4", wkt="x"), "area"),
    ],
)
def test_invalid_selection_names_its_field(make, field: str) -> None:
    with pytest.raises(stacmirror.InvalidInput) as caught:
        make()
    assert caught.value.field == field and "--" not in caught.value.message
    assert isinstance(caught.value, stacmirror.StacmirrorError)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bands": ["red"], "mode": "bundle"}, "bands"),
        ({"mode": "bands"}, "bands"),
        ({"mode": "nope"}, "mode"),
        ({"file_groups": ["x"]}, "file_groups"),
        ({"per_region": 2}, "per_region"),
        ({"workers": 0}, "workers"),
        ({"bands": ["no_such_band"]}, "bands"),
        ({"mode": "band-group", "file_groups": ["no_such_group"]}, "file_groups"),
    ],
)
def test_invalid_harvest_options_name_their_field_and_write_nothing(
    emulator, tmp_path: Path, kwargs, field: str
) -> None:
    selection = stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=NORTH)
    out = tmp_path / "out"
    with stacmirror.connect(emulator.service_url, demo_credentials()) as client:
        client.retry = FAST_RETRY
        with pytest.raises(stacmirror.InvalidInput) as caught:
            stacmirror.harvest(out, selection, client=client, max_scenes=1, **kwargs)
    assert caught.value.field == field
    assert not out.exists()


def test_crop_checks_asset_names_and_brings_the_catalog_up_to_date(use_emulator, tmp_path: Path) -> None:
    selection = stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=NORTH)
    out = tmp_path / "m"
    stacmirror.harvest(
        out, selection, bands="red,qa_pixel,MTL", max_scenes=3,
        poll_interval=0.05, browse=False,
    )  # fmt: skip
    notes: list[ev.Event] = []
    stacks = stacmirror.find_stacks(out, on_event=notes.append)
    assert stacks and all(isinstance(n, ev.Note) for n in notes)
    with pytest.raises(stacmirror.InvalidInput) as caught:
        stacmirror.crop(out, stacks, assets=["red", "nope"])
    assert caught.value.field == "assets" and "nope" in caught.value.message
    assert not Mirror(out).crops_dir.exists()
    seen: list[ev.Event] = []
    result = stacmirror.crop(out, stacks, assets="red", on_event=seen.append)
    assert result.ok and [type(e) for e in seen if isinstance(e, ev.StackCropped)] == [ev.StackCropped]
    root = json.loads(Mirror(out).catalog_path.read_text())
    assert f"./crops/{stacks[0].stack_id}/collection.json" in {link["href"] for link in root["links"]}
    assert result.to_dict()["stacks"][0]["itemsCropped"] == 3
    with pytest.raises(stacmirror.NotACatalog):
        stacmirror.find_stacks(tmp_path / "empty-mirror")


def test_validate_fetches_schemas_once_then_runs_offline(
    use_emulator, schema_host: str, tmp_path: Path, monkeypatch
) -> None:
    selection = stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=NORTH)
    out = tmp_path / "m"
    stacmirror.harvest(out, selection, bands="red,MTL", max_scenes=1, poll_interval=0.05)
    monkeypatch.delenv("STACMIRROR_SCHEMAS", raising=False)
    monkeypatch.setenv("STACMIRROR_SCHEMA_HOST", schema_host)
    first = stacmirror.validate(out)
    assert first.ok, first.problems
    assert any(uri.endswith("/landsat/v2.0.0/schema.json") for uri in first.schemas_fetched)
    cache = tmp_path / "cache" / "stacmirror" / "stac-schemas" / "stac-extensions.github.io"
    assert (cache / "landsat" / "v2.0.0" / "schema.json").is_file()
    monkeypatch.setenv("STACMIRROR_SCHEMA_HOST", "http://127.0.0.1:9/")  # nothing listens there
    second = stacmirror.validate(out)
    assert second.ok and second.schemas_fetched == []
    (cache / "landsat" / "v2.0.0" / "schema.json").unlink()
    with pytest.raises(stacmirror.SchemaUnavailable, match="landsat"):
        stacmirror.validate(out)
    cli = subprocess.run(
        [*STACMIRROR, "validate", str(out)], env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 1 and len(cli.stderr.strip().splitlines()) == 1
    assert cli.stderr.startswith("stacmirror: error:") and "landsat" in cli.stderr


def test_no_module_but_the_layout_names_the_mirrors_paths() -> None:
    """The mirror layout has one owner: its private names appear in stacmirror/layout.py only."""
    names = re.compile(
        r"""["'](\.stacmirror|crops|catalog-state\.json|catalog\.sqlite|ledger\.sqlite|lock|incoming|superseded|trash)["']"""
    )
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "stacmirror").rglob("*.py")
        if path.name != "layout.py"
        for match in names.finditer(path.read_text())
    ]
    assert offenders == []
