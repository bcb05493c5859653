"""STAC Browser's item search against `serve`'s STAC API, driven as a user would in headless Chromium.

The user opens the search page, ticks "Filter by spatial extent", zooms the map to the mirror and
clicks inside it (STAC Browser draws a box around the click), types a date range, adds a cloud
cover filter from the API's queryables, asks for 100 items per page and submits. The items STAC
Browser lists must be exactly those a brute-force scan of the item JSON finds for the box, dates
and cloud cover it sent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from shapely.geometry import box, shape

import stacmirror
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror

from .helpers import ROOT, chromium_binary, serving

ARTIFACTS = ROOT / "test-artifacts"
PRODUCT_ID = re.compile(r"L[COTEM]0\d_L2SP_\d{6}_\d{8}_\d{8}_02_T[12]")
DATASET = "landsat_ot_c2_l2"
CLOUD_BELOW = 50

# Fits the map view to the mirror (what a user does by zooming) and returns where a point lies on it.
# Vue 2 keeps each component on its root element, so the test reaches the OpenLayers map the page made.
FIT_AND_LOCATE = """([extent, point]) => {
  const vm = document.querySelector('.filter-bbox .map-container').__vue__;
  const R = 6378137;
  const merc = ([lon, lat]) => [R * lon * Math.PI / 180,
                                R * Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360))];
  const [w, s] = merc([extent[0], extent[1]]);
  const [e, n] = merc([extent[2], extent[3]]);
  vm.map.getView().fit([w, s, e, n]);
  vm.map.renderSync();
  return vm.map.getPixelFromCoordinate(merc(point));
}"""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """Three years of scenes on a 3 × 3 block of WRS-2 path/rows, catalogued by the catalog step."""
    out = tmp_path_factory.mktemp("browser-search") / "mirror"
    tiles = [(path, row) for path in (40, 41, 42) for row in (33, 34, 35)]
    write_metadata_mirror(
        out, synthetic_records(45, seed=21, tiles=tiles, start=dt.date(2018, 1, 1), years=3)
    )
    assert stacmirror.build_catalog(out, workers=1).ok
    return out


def _brute_force(
    out: Path, bbox: list[float], start: str, end: str, cloud_below: float = 101
) -> tuple[set[str], int]:
    """Ids of the items whose geometry meets ``bbox``, whose datetime is in [start, end] and whose
    cloud cover is below ``cloud_below``; and the number of items on disk."""
    area = box(*bbox)
    low, high = (dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
    found, total = set(), 0
    for path in (out / DATASET).rglob("*.json"):
        item = json.loads(path.read_text())
        if item.get("type") != "Feature":
            continue
        total += 1
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        cloud = item["properties"]["eo:cloud_cover"]
        if shape(item["geometry"]).intersects(area) and low <= when <= high and cloud < cloud_below:
            found.add(item["id"])
    return found, total


@contextmanager
def browser_page(mirror: Path, built_browser: Path, *, offline: bool, allowed: tuple[str, ...] = ()):
    """``serve`` with STAC Browser for ``mirror``, and a headless Chromium page; yields (server, page,
    off_server): every URL the page asks for beyond the server, ``data:`` and ``allowed``."""
    off_server: list[str] = []
    with serving(mirror, built_browser, offline=offline) as server, sync_playwright() as playwright:
        chrome = playwright.chromium.launch(
            executable_path=chromium_binary(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = chrome.new_page(viewport={"width": 1200, "height": 1000})
            local = (server.base_url, "data:", *allowed)
            page.on("request", lambda r: None if r.url.startswith(local) else off_server.append(r.url))
            yield server, page, off_server
        finally:
            chrome.close()


def test_stac_browser_searches_by_area_and_date(built_browser: Path, mirror: Path) -> None:
    extent = json.loads((mirror / DATASET / "collection.json").read_text())["extent"]["spatial"]["bbox"][0]
    west, south, east, north = extent
    point = [west + 0.3 * (east - west), south + 0.3 * (north - south)]  # off-centre: not everything
    searches: list[dict] = []
    with browser_page(mirror, built_browser, offline=True) as (server, page, outside):
        page.on(
            "request",
            lambda r: searches.append(json.loads(r.post_data or "{}")) if "/api/search" in r.url else None,
        )
        page.goto(f"{server.base_url}/#/search")
        page.get_by_text("Filter by spatial extent").click()
        page.wait_for_function(
            "() => document.querySelector('.filter-bbox .map-container')?.__vue__?.interaction",
            timeout=60_000,
        )
        x, y = page.evaluate(FIT_AND_LOCATE, [extent, point])
        frame = page.locator(".filter-bbox .map").bounding_box()
        page.mouse.click(frame["x"] + x, frame["y"] + y)  # STAC Browser boxes the clicked spot
        page.wait_for_selector("text=Click inside the bounding box to remove it", timeout=60_000)
        dates = page.locator(".filter-datetime input")
        dates.click()
        dates.fill("2019-01-01 00:00:00 ~ 2019-12-31 23:59:59")
        dates.press("Enter")
        page.get_by_text("Add filter").click()  # offered from the API's queryables
        page.get_by_text("Cloud cover (%)").first.click()
        page.locator(".additional-filters .dropdown-toggle").nth(1).click()  # the operator
        page.locator(
            ".additional-filters .dropdown-menu.show .dropdown-item", has_text="less than"
        ).first.click()
        page.locator(".additional-filters input").last.fill(str(CLOUD_BELOW))
        page.locator(".limit input").fill("100")
        page.locator(".limit input").press("Tab")
        page.locator(".filter button[type=submit]").click()
        page.wait_for_selector(".search .items, .search .alert", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-search.png"), full_page=True)
        listed = set(PRODUCT_ID.findall(page.locator(".search .items").inner_text()))

        # a result opens its item page, in the browser, from the API's links
        page.locator(".search .items a").first.click()
        page.wait_for_url(re.compile(rf"#/{DATASET}/\d{{3}}/\d{{3}}/\w+/\w+\.json$"), timeout=60_000)
        page.wait_for_selector("text=Product Metadata File", timeout=60_000)
        opened = page.locator("body").inner_text()

    assert len(searches) == 1, searches
    sent = searches[0]
    start, end = sent["datetime"].split("/")
    assert start.startswith("2019-01-01") and end.startswith("2019-12-31") and sent["limit"] == 100
    bbox = sent["bbox"]
    assert bbox[0] < point[0] < bbox[2] and bbox[1] < point[1] < bbox[3]
    assert sent["filter"] == {
        "op": "and",
        "args": [{"op": "<", "args": [{"property": "eo:cloud_cover"}, CLOUD_BELOW]}],
    }
    expected, total = _brute_force(mirror, bbox, start, end, CLOUD_BELOW)
    in_box, _ = _brute_force(mirror, bbox, "1980-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    in_box_and_dates, _ = _brute_force(mirror, bbox, start, end)
    assert expected and len(in_box) < total, "the box selects some scenes, not all"
    assert expected < in_box_and_dates < in_box, "the dates and the cloud cover each select some"
    assert listed == expected
    assert "No basemaps available" in opened  # offline: STAC Browser was given no basemap
    assert outside == [], "serve --offline: nothing is asked of the internet"


def test_stac_browser_asks_for_openstreetmap_tiles_by_default(built_browser: Path, mirror: Path) -> None:
    """Without --offline the maps have an OpenStreetMap basemap: the page asks for its tiles (the test
    answers those requests itself, so nothing leaves the machine)."""
    tiles: list[str] = []
    with browser_page(mirror, built_browser, offline=False, allowed=("https://tile.openstreetmap.org/",)) as (
        server,
        page,
        elsewhere,
    ):

        def answer(route) -> None:
            tiles.append(route.request.url)
            route.fulfill(status=404, body="")

        page.route(re.compile(r"^https://tile\.openstreetmap\.org/"), answer)
        page.goto(f"{server.base_url}/#/{DATASET}/collection.json")
        page.wait_for_selector(".map canvas", timeout=60_000)
        page.wait_for_timeout(2_000)
        text = page.locator("body").inner_text()
    assert tiles and all(re.fullmatch(r"https://tile\.openstreetmap\.org/\d+/\d+/\d+\.png", t) for t in tiles)
    assert "No basemaps available" not in text and elsewhere == []


@pytest.fixture
def cropped(emulator, tmp_path: Path) -> tuple[Path, str]:
    """A harvested, catalogued and cropped six-scene stack; returns the mirror and its crop collection."""
    from stacmirror.catalog.build import build_catalog
    from stacmirror.cropper.crop import crop_stack
    from stacmirror.cropper.stacks import find_stacks
    from stacmirror.layout import Mirror

    from .helpers import run_harvest

    out = tmp_path / "mirror"
    run_harvest(emulator, out, mode="bands", bands=["red", "green", "blue", "MTL"], max_scenes=6)
    assert build_catalog(out, workers=1).ok
    (stack,), _ = find_stacks(out)
    assert crop_stack(out, stack).errors == []
    return out, Mirror.crop_collection_id(stack.stack_id)


def test_stac_browser_search_finds_crops_by_collection(
    built_browser: Path, cropped: tuple[Path, str]
) -> None:
    """The user picks the crop collection in the search form's collection list and gets its crops,
    not their source scenes, and a result opens the crop's own item page."""
    out, crop_collection = cropped
    crop_ids = {p.stem for p in (out / "crops").glob("*/*/*.json")}
    searches: list[dict] = []
    with browser_page(out, built_browser, offline=True) as (server, page, outside):
        page.on(
            "request",
            lambda r: searches.append(json.loads(r.post_data or "{}")) if "/api/search" in r.url else None,
        )
        page.goto(f"{server.base_url}/#/search")
        page.locator(".filter-collection .multiselect").click()
        page.keyboard.type(crop_collection)
        page.locator(".filter-collection .multiselect__option", has_text=crop_collection).first.click()
        page.locator(".filter button[type=submit]").click()
        page.wait_for_selector(".search .items, .search .alert", timeout=60_000)
        listing = page.locator(".search .items").inner_text()
        page.locator(".search .items a").first.click()
        page.wait_for_url(re.compile(r"#/crops/[^/]+/\w+/\w+\.json$"), timeout=60_000)
        # the URL changes before the item is fetched and drawn ("Loading..."): wait for the item
        page.wait_for_function("document.body.innerText.includes('crop ')", timeout=60_000)
        opened = page.locator("body").inner_text()

    assert [s.get("collections") for s in searches] == [[crop_collection]]
    assert set(PRODUCT_ID.findall(listing)) == crop_ids and len(crop_ids) == 6
    assert listing.count("(crop ") >= len(crop_ids), "the crops' titles, not the sources'"
    assert "crop " in opened and outside == []
