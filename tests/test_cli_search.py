"""The command line: search/datasets/filters/emulator as a user runs them (subprocesses, real HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacmirror.m2m import M2MClient

from .helpers import FAST_RETRY, cli_env, demo_credentials

STACMIRROR = [sys.executable, "-m", "stacmirror.cli"]
BOX = "-122.6,38.0,-120.0,39.6"


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STACMIRROR, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_search_json_lists_scenes_with_footprints(emulator, tmp_path: Path) -> None:
    out = tmp_path / "found.geojson"
    result = run(
        [
            "search",
            "--dataset",
            "landsat_ot_c2_l2",
            "--bbox",
            BOX,
            "--start",
            "2021-01-01",
            "--end",
            "2021-12-31",
            "--json",
            "--geojson",
            str(out),
        ],
        cli_env(emulator),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["count"] == len(data["scenes"]) > 5
    scene = data["scenes"][0]
    assert scene["displayId"].startswith("LC0") and scene["footprint"]["type"] == "Polygon"
    assert {s["wrsPath"] for s in data["scenes"]} <= {43, 44}
    features = json.loads(out.read_text())["features"]
    assert [f["id"] for f in features] == [s["displayId"] for s in data["scenes"]]


def test_search_filters_resolve_by_label(emulator) -> None:
    result = run(
        [
            "search",
            "--dataset",
            "landsat_ot_c2_l2",
            "--bbox",
            BOX,
            "--start",
            "2021-01-01",
            "--end",
            "2021-12-31",
            "--satellite",
            "9",
            "--path",
            "44",
            "--cloud-max",
            "50",
            "--filter",
            "Collection Category=T1",
            "--json",
        ],
        cli_env(emulator),
    )
    assert result.returncode == 0, result.stderr
    scenes = json.loads(result.stdout)["scenes"]
    assert scenes and all(s["displayId"].startswith("LC09_") and s["wrsPath"] == 44 for s in scenes)
    assert all(s["cloudCover"] <= 50 for s in scenes)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "1,2,3"], "--bbox"),
        (["--bbox", BOX, "--start", "2021-13-01"], "--start"),
        (["--bbox", BOX, "--start", "2021-12-01", "--end", "2021-01-01"], "after"),
        (["--bbox", BOX, "--filter", "Nonsense=1"], "valid labels"),
        (["--bbox", BOX, "--filter", "Satellite=7"], "valid values"),
        (["--bbox", BOX, "--path", "50-40"], "reversed"),
        (["--bbox", BOX, "--dataset", "landsat_nope"], "landsat_nope"),
        (["--wkt", "POINT (1 2)"], "Polygon"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(emulator, args: list[str], message: str) -> None:
    base = {"--dataset": "landsat_ot_c2_l2", "--start": "2021-01-01", "--end": "2021-12-31"}
    for i in range(0, len(args), 2):
        base.pop(args[i], None)
    argv = ["search", *[x for kv in base.items() for x in kv], *args]
    result = run(argv, cli_env(emulator))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("stacmirror: error:")


def test_missing_credentials_with_a_service_url(emulator) -> None:
    env = cli_env(M2M_SERVICE_URL=emulator.service_url)
    result = run(["datasets"], env)
    assert result.returncode == 2 and "Application Tokens" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_refused_token_is_one_line_and_exit_2(emulator) -> None:
    # the CLI starts without the M2M client loaded; its login error must still map to bad input
    result = run(["datasets"], cli_env(emulator, M2M_TOKEN="not-the-token"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AUTH_INVALID" in lines[0], lines
    assert "not-the-token" not in result.stderr


def test_no_credentials_uses_the_built_in_emulator(tmp_path: Path) -> None:
    result = run(["datasets", "--json"], cli_env())
    assert result.returncode == 0, result.stderr
    assert "landsat_ot_c2_l2" in {d["alias"] for d in json.loads(result.stdout)}
    filters = run(["filters", "landsat_ot_c2_l2"], cli_env())
    assert "WRS Path" in filters.stdout and "built-in M2M emulator" in filters.stderr


def test_emulator_command_serves_until_stopped(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*STACMIRROR, "emulator", "--port", "0", "--data", str(tmp_path), "--scenes", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.endswith("/api/api/json/stable/")
        with M2MClient(demo_credentials(), url, retry=FAST_RETRY) as api:
            assert api.scene_search("landsat_ot_c2_l1", max_results=100).total_hits == 8
    finally:
        proc.terminate()
        proc.wait(timeout=20)
