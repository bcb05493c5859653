"""serve, maps and STAC Browser: HTTP behaviour over loopback, and pages rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from stacmirror.catalog.build import build_catalog
from stacmirror.cropper.crop import crop_stack
from stacmirror.cropper.stacks import find_stacks
from stacmirror.serve.server import ServeServer

from .helpers import ROOT, chromium_binary, run_harvest, serving

ARTIFACTS = ROOT / "test-artifacts"
STACMIRROR = [sys.executable, "-m", "stacmirror.cli"]


@pytest.fixture
def mirror(emulator, tmp_path: Path) -> Path:
    out = tmp_path / "mirror"
    run_harvest(emulator, out, mode="bands", bands=["red", "green", "blue", "qa_pixel", "MTL"], max_scenes=4)
    build_catalog(out)
    crop_stack(out, find_stacks(out)[0][0])
    build_catalog(out)
    return out


@pytest.fixture
def served(mirror: Path):
    with serving(mirror) as server:
        yield server


def test_catalog_and_assets_are_served_with_cors_and_range(served: ServeServer, mirror: Path) -> None:
    base = served.base_url
    root = requests.get(f"{base}/catalog/catalog.json", timeout=10)
    assert root.status_code == 200 and root.headers["Access-Control-Allow-Origin"] == "*"
    assert root.headers["Content-Type"] == "application/json"
    tif = next(mirror.rglob("*_SR_B4.TIF")).relative_to(mirror)
    whole = requests.get(f"{base}/catalog/{tif}", timeout=10)
    assert (
        whole.headers["Content-Type"].startswith("image/tiff") and whole.headers["Accept-Ranges"] == "bytes"
    )
    part = requests.get(f"{base}/catalog/{tif}", headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.content)}"
    preflight = requests.options(f"{base}/catalog/{tif}", timeout=10)
    assert preflight.status_code == 204 and "Range" in preflight.headers["Access-Control-Allow-Headers"]
    config = requests.get(f"{base}/config.js", timeout=10).text
    settings = json.loads(config.split("=", 1)[1].rstrip().rstrip(";"))
    assert settings["catalogUrl"] == f"{base}/catalog/catalog.json" and settings["historyMode"] == "hash"
    assert settings["allowExternalAccess"] is False and "EPSG:32610" in settings["crs"]
    assert settings["catalogTitle"] == "Landsat Collection 2 mirror"
    assert [layer["title"] for layer in settings["stacmirrorBasemaps"]] == ["OpenStreetMap"]


def test_nothing_outside_the_mirror_is_served(served: ServeServer, mirror: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (mirror / "escape").symlink_to(tmp_path)
    base = served.base_url
    for path in [
        "/catalog/../secret.txt",
        "/catalog/%2e%2e/secret.txt",
        "/catalog/%2E%2E%2Fsecret.txt",
        "/catalog/..%2fsecret.txt",
        "/catalog/escape/secret.txt",
        "/catalog/.stacmirror/ledger.sqlite",
        "/catalog/..\\secret.txt",
        "/catalog/%00",
    ]:
        response = requests.get(base + path, timeout=10)
        assert response.status_code in (404, 503), path  # 503: normalised to "/", where no browser is built
        assert b"do not serve" not in response.content
    with requests.Session() as session:  # a raw path, not normalised by the client
        request = requests.Request("GET", base + "/catalog/x").prepare()
        request.url = base + "/catalog/../../" + str(secret).lstrip("/")
        assert session.send(request, timeout=10).status_code == 404


def test_serve_command_prints_the_url_first_and_binds_loopback(mirror: Path) -> None:
    proc = subprocess.Popen(
        [*STACMIRROR, "serve", str(mirror), "--port", "0", "--no-build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STACMIRROR_BROWSER_CACHE": str(mirror / "no-browser-here")},
    )
    try:
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        assert requests.get(url + "catalog/catalog.json", timeout=10).json()["type"] == "Catalog"
        assert requests.get(url, timeout=10).status_code == 503  # no STAC Browser built: said so
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_maps_are_self_contained(mirror: Path, emulator, tmp_path: Path) -> None:
    result = subprocess.run([*STACMIRROR, "map", str(mirror)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    page = (mirror / "map.html").read_text()
    assert page.count('class="fp scene"') == 4 and page.count('class="fp crop"') == 1
    assert page.count('<image class="tile" href="https://tile.openstreetmap.org/') >= 4  # the default basemap
    offline = subprocess.run(
        [*STACMIRROR, "map", str(mirror), "--offline", "--html", str(tmp_path / "offline.html")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0, offline.stderr
    page = (tmp_path / "offline.html").read_text()
    assert page.count('class="fp scene"') == 4 and page.count('class="fp crop"') == 1
    assert not re.search(r"(src|href)=[\"']https?://", page), "no network resource at view time"
    search_map = tmp_path / "search.html"
    env = {
        **os.environ,
        "M2M_USERNAME": "demo",
        "M2M_TOKEN": "demo-token",
        "M2M_SERVICE_URL": emulator.service_url,
    }
    result = subprocess.run(
        [
            *STACMIRROR,
            "search",
            "--dataset",
            "landsat_ot_c2_l2",
            "--bbox",
            "-122.6,38.0,-120.0,39.6",
            "--start",
            "2021-09-01",
            "--end",
            "2021-12-31",
            "--html",
            str(search_map),
            "--offline",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    page = search_map.read_text()
    assert page.count('class="fp search"') >= 5 and page.count('class="fp aoi"') == 1
    assert "<image" not in page  # --offline
    assert "cloud" in page and "LC0" in page


# -- a real browser -----------------------------------------------------------------------------------


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
    ]
    return subprocess.run([chromium_binary(), *flags, *args], capture_output=True, text=True, timeout=180)


def _page(url: str, name: str, tmp_path: Path) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    chromium(["--window-size=1200,1000", f"--screenshot={ARTIFACTS / (name + '.png')}", url], tmp_path / name)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    return chromium(["--dump-dom", url], tmp_path / f"{name}-dom").stdout


def test_stac_browser_shows_the_catalog(built_browser: Path, mirror: Path, tmp_path: Path) -> None:
    with serving(mirror, built_browser, offline=True) as server:
        base = server.base_url
        root = _page(f"{base}/", "browser-root", tmp_path)
        assert "Landsat 8-9 OLI/TIRS Collection 2 Level-2" in root and "Crops of" in root
        collection = _page(f"{base}/#/landsat_ot_c2_l2/collection.json", "browser-collection", tmp_path)
        assert "WRS path 044" in collection  # the collection lists WRS paths, each path its rows
        path_page = _page(f"{base}/#/landsat_ot_c2_l2/044/catalog.json", "browser-path", tmp_path)
        assert "row 033" in path_page
        row = _page(f"{base}/#/landsat_ot_c2_l2/044/033/catalog.json", "browser-row", tmp_path)
        listed = set(re.findall(r"LC0[89]_L2SP_\d{6}_\d{8}_\d{8}_02_T[12]", row))
        assert len(listed) == 4
        item_id = sorted(listed)[0]
        item_path = next(mirror.rglob(f"{item_id}.json")).relative_to(mirror)
        item = _page(f"{base}/#/{item_path}", "browser-item", tmp_path)
        assert "Visible red Band (B4)" in item and "Pixel Quality Assessment Band" in item
        assert "Thumbnail" in item or "thumbnail" in item


def test_map_page_draws_the_footprints(mirror: Path, tmp_path: Path) -> None:
    chromium_binary()
    subprocess.run(
        [*STACMIRROR, "map", str(mirror), "--offline"], check=True, capture_output=True, timeout=60
    )
    dom = _page((mirror / "map.html").as_uri(), "map", tmp_path)
    assert dom.count('class="fp scene"') == 4 and dom.count('class="fp crop"') == 1
