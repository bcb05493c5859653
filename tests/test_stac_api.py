"""The STAC API that `stacmirror serve` offers at /api/, over HTTP on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from shapely.geometry import box, shape

import stacmirror
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror
from stacmirror.layout import Mirror
from stacmirror.offline_search import search

from .helpers import serving

DATASET = "landsat_ot_c2_l2"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api") / "m"


@pytest.fixture(scope="module")
def api(mirror: Path) -> str:
    out = mirror
    write_metadata_mirror(out, synthetic_records(150, seed=11))
    assert stacmirror.build_catalog(out, workers=1).ok
    with serving(out) as server:
        yield server.base_url + "/api"


def everything(out_api: str, method: str = "GET", **request) -> list[dict]:
    """Every page of a search, following next links."""
    found: list[dict] = []
    if method == "GET":
        page = requests.get(f"{out_api}/search", params=request, timeout=30).json()
    else:
        page = requests.post(f"{out_api}/search", json=request, timeout=30).json()
    while True:
        found += page["features"]
        nxt = next((link for link in page["links"] if link["rel"] == "next"), None)
        if nxt is None:
            return found
        if nxt.get("method") == "POST":
            page = requests.post(nxt["href"], json=nxt["body"], timeout=30).json()
        else:
            page = requests.get(nxt["href"], timeout=30).json()


def test_landing_conformance_and_collections(api: str) -> None:
    landing = requests.get(f"{api}/", timeout=30).json()
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    assert {link["rel"] for link in landing["links"]} >= {"self", "conformance", "data", "search", "child"}
    conformance = requests.get(f"{api}/conformance", timeout=30).json()
    assert conformance["conformsTo"] == landing["conformsTo"]
    collections = requests.get(f"{api}/collections", timeout=30).json()["collections"]
    assert [c["id"] for c in collections] == [DATASET]
    one = requests.get(f"{api}/collections/{DATASET}", timeout=30).json()
    assert any(link["rel"] == "items" for link in one["links"])
    assert requests.get(f"{api}/collections/nope", timeout=30).status_code == 404
    answer = requests.get(f"{api}/queryables", timeout=30)
    assert answer.headers["Content-Type"] == "application/schema+json"
    fields = answer.json()["properties"]
    assert fields["eo:cloud_cover"]["type"] == "number" and fields["landsat:wrs_path"]["type"] == "string"
    assert (
        fields["datetime"]["format"] == "date-time" and "assets" not in fields and "proj:shape" not in fields
    )
    assert requests.get(f"{api}/collections/{DATASET}/queryables", timeout=30).json()["properties"] == fields
    assert requests.get(f"{api}/collections/nope/queryables", timeout=30).status_code == 404


def test_paging_covers_every_item_once(api: str) -> None:
    items = everything(api, limit=40)
    ids = [i["id"] for i in items]
    assert len(ids) == 150 == len(set(ids))
    first = requests.get(f"{api}/collections/{DATASET}/items", params={"limit": 5}, timeout=30).json()
    assert first["numberReturned"] == 5 and any(link["rel"] == "next" for link in first["links"])
    item = requests.get(f"{api}/collections/{DATASET}/items/{ids[0]}", timeout=30).json()
    assert item["id"] == ids[0] and item["assets"]["mtl.txt"]["href"].startswith("http://127.0.0.1")
    asset = requests.get(item["assets"]["mtl.txt"]["href"], timeout=30)
    assert asset.status_code == 200 and asset.text.lstrip().startswith("GROUP")
    self_link = next(link["href"] for link in item["links"] if link["rel"] == "self")
    assert "/catalog/" in self_link and requests.get(self_link, timeout=30).json()["id"] == ids[0]


def test_the_served_root_catalog_offers_search_and_the_file_is_unchanged(api: str, mirror: Path) -> None:
    on_disk = (mirror / "catalog.json").read_bytes()
    served = requests.get(api.removesuffix("/api") + "/catalog/catalog.json", timeout=30).json()
    assert "https://api.stacspec.org/v1.0.0/item-search" in served["conformsTo"]
    searches = [link for link in served["links"] if link["rel"] == "search"]
    assert {link["method"] for link in searches} == {"GET", "POST"}
    assert all(
        link["href"] == f"{api}/search" and link["type"] == "application/geo+json" for link in searches
    )
    children = [link["href"] for link in served["links"] if link["rel"] == "child"]
    assert children == [link["href"] for link in json.loads(on_disk)["links"] if link["rel"] == "child"]
    assert (mirror / "catalog.json").read_bytes() == on_disk and b"conformsTo" not in on_disk


def test_search_filters_match_the_offline_search(api: str, mirror: Path) -> None:
    area = box(-100, 20, -60, 50)
    by_bbox = everything(api, bbox="-100,20,-60,50", datetime="2015-01-01T00:00:00Z/2020-12-31T23:59:59Z")
    assert by_bbox and all(shape(i["geometry"]).intersects(area) for i in by_bbox)
    assert all("2015" <= i["properties"]["datetime"][:4] <= "2020" for i in by_bbox)
    posted = everything(
        api,
        "POST",
        intersects=area.__geo_interface__,
        datetime="2015-01-01T00:00:00Z/2020-12-31T23:59:59Z",
        limit=7,
    )
    assert sorted(i["id"] for i in posted) == sorted(i["id"] for i in by_bbox)
    clear_query = everything(api, "POST", query={"eo:cloud_cover": {"lt": 20}}, limit=100)
    clear_filter = everything(
        api, "POST", filter={"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}, limit=100
    )
    assert clear_query and all(i["properties"]["eo:cloud_cover"] < 20 for i in clear_query)
    assert sorted(i["id"] for i in clear_query) == sorted(i["id"] for i in clear_filter)
    cloudy = everything(api, "POST", query={"eo:cloud_cover": {"gte": 20}}, limit=100)
    assert len(clear_query) + len(cloudy) == 150
    picked = [i["id"] for i in clear_query[:3]]
    by_ids = everything(api, ids=",".join(picked))
    assert sorted(i["id"] for i in by_ids) == sorted(picked)
    assert everything(api, collections="nope") == []
    row_and_sun = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "landsat:wrs_path"}, "100"]},
            {"op": ">", "args": [{"property": "view:sun_elevation"}, 10]},
        ],
    }
    posted = everything(api, "POST", filter=row_and_sun, limit=100)
    assert sorted(i["id"] for i in posted) == sorted(search(mirror, filter=row_and_sun).ids)
    assert posted and all(i["properties"]["landsat:wrs_path"] == "100" for i in posted)


def test_bad_requests_are_400(api: str) -> None:
    for params in (
        {"limit": "0"},
        {"bbox": "1,2,3"},
        {"datetime": "not-a-date"},
        {"query": json.dumps({"no:such_property": {"lt": 3}})},
        {"query": json.dumps({"eo:cloud_cover": {"about": 3}})},
        {"filter": json.dumps({"op": "<", "args": [{"property": "platform"}, 3]})},  # string vs number
        {"filter": "eo:cloud_cover <", "filter-lang": "cql2-text"},  # not CQL2 text
        {"filter": "eo:cloud_cover < 3", "filter-lang": "cql3"},
    ):
        answer = requests.get(f"{api}/search", params=params, timeout=30)
        assert answer.status_code == 400, params
    bad_filter = requests.post(f"{api}/search", json={"filter": {"op": "like", "args": []}}, timeout=30)
    assert bad_filter.status_code == 400


def test_the_api_answers_what_the_offline_search_finds(api: str, mirror: Path) -> None:
    for bbox in ("170,-60,-170,60", "-100,20,-60,50", "0,-90,180,90"):
        served = sorted(i["id"] for i in everything(api, bbox=bbox, limit=100))
        assert served == sorted(search(mirror, bbox=bbox).ids), bbox
    assert sorted(search(mirror, bbox="0,-90,180,90").ids)  # the comparison is not between empties


def test_pystac_client_and_rustac_search_the_api(api: str, mirror: Path) -> None:
    """Two independent STAC API clients page through the API and get what the offline search finds."""
    import pystac_client
    import rustac

    window = "2015-01-01T00:00:00Z/2020-12-31T23:59:59Z"
    expected = sorted(search(mirror, bbox="-170,0,-30,70", start="2015-01-01", end="2020-12-31").ids)
    assert len(expected) > 7  # more than one page of 7
    client = pystac_client.Client.open(f"{api}/")
    found = client.search(bbox=[-170, 0, -30, 70], datetime=window, limit=7)
    assert sorted(item.id for item in found.items()) == expected and found.matched() == len(expected)
    posted = rustac.search_sync(api, bbox=[-170, 0, -30, 70], datetime=window, limit=7)
    assert sorted(item["id"] for item in posted) == expected
    clear = rustac.search_sync(api, filter={"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]})
    assert sorted(i["id"] for i in clear) == sorted(search(mirror, cloud_max=20).ids)


def test_the_api_follows_an_incremental_catalog_update(tmp_path: Path) -> None:
    out = tmp_path / "m"
    records = list(synthetic_records(12, seed=12))
    write_metadata_mirror(out, records[:8])
    assert stacmirror.build_catalog(out, workers=1).ok
    with serving(out) as server:
        api = server.base_url + "/api"
        assert len(everything(api, limit=100)) == 8
        write_metadata_mirror(out, records[8:])
        shutil.rmtree(Mirror(out).scene_dir(DATASET, records[0].display_id(2)))
        assert stacmirror.build_catalog(out, workers=1).ok
        ids = sorted(i["id"] for i in everything(api, limit=100))
        assert ids == sorted(r.display_id(2) for r in records[1:])


def test_pystac_client_pages_sorted_fields_and_cql2_text_as_a_brute_force_scan(
    api: str, mirror: Path
) -> None:
    """Sorted by cloud cover (then newest first), only a few fields, filtered by CQL2 text, and
    paged by pystac-client: the same items, in the same order, as sorting every item by hand."""
    import pystac_client

    items = [json.loads(p.read_text()) for p in sorted(mirror.glob(f"{DATASET}/*/*/*/*.json"))]
    wanted = [
        i
        for i in items
        if i["properties"]["eo:cloud_cover"] < 60
        and i["properties"]["platform"] in ("landsat-8", "landsat-9")
    ]
    by_date = sorted(wanted, key=lambda i: (i["collection"], i["id"]))  # the tie-break, last
    by_date.sort(key=lambda i: i["properties"]["datetime"], reverse=True)
    expected = sorted(by_date, key=lambda i: i["properties"]["eo:cloud_cover"])
    assert 7 < len(expected) < len(items)  # several pages, and the filter selects
    client = pystac_client.Client.open(f"{api}/")
    for method in ("GET", "POST"):
        found = client.search(
            method=method,
            filter="eo:cloud_cover < 60 AND platform IN ('landsat-8', 'landsat-9')",
            filter_lang="cql2-text",
            sortby=["+properties.eo:cloud_cover", "-properties.datetime"],
            fields=["id", "properties.eo:cloud_cover", "-geometry"],
            limit=7,
        )
        pages = list(found.pages_as_dicts())
        assert len(pages) > 1
        got = [f for page in pages for f in page["features"]]
        assert [f["id"] for f in got] == [i["id"] for i in expected], method
        assert all("geometry" not in f and set(f["properties"]) == {"eo:cloud_cover"} for f in got)


def test_datetimes_bboxes_and_limits_as_the_spec_reads_them(api: str) -> None:
    def status(**params) -> int:
        return requests.get(f"{api}/search", params=params, timeout=30).status_code

    for good in ("2020-07-23T00:00:00Z", "1985-04-12t23:20:50.52z", "2018-01-01T00:00:00+03:00/..",
                 "/2020-01-01T00:00:00.123456789Z"):  # fmt: skip
        assert status(datetime=good) == 200, good
    for bad in ("/", "../..", "2020-01-01", "2020-01-01T00:00:00", "2020-01-01T00:00:00+0100",
                "2020-13-01T00:00:00Z", "2021-01-01T00:00:00Z/2020-01-01T00:00:00Z"):  # fmt: skip
        assert status(datetime=bad) == 400, bad
    assert status(bbox="-180,-90,0,180,90,1000") == 200  # 3D
    page = requests.get(f"{api}/search", params={"limit": 5000}, timeout=30).json()
    assert page["numberReturned"] == 150  # clamped to the maximum (1000), not refused
    posted = requests.post(f"{api}/search", json={"bbox": "0,0,1,1"}, timeout=30)
    assert posted.status_code == 400 and set(posted.json()) == {"code", "description"}


def test_cql2_bbox_literals_in_3d_and_across_the_antimeridian(api: str, mirror: Path) -> None:
    """A CQL2 ``BBOX(...)`` is read as the ``bbox`` parameter is: six numbers drop their heights, and
    W > E wraps round the antimeridian (here the whole world but a 20° strip through the mirror)."""
    items = [json.loads(p.read_text()) for p in mirror.glob(f"{DATASET}/*/*/*/*.json")]
    lons = sorted(c[0] for i in items for c in shape(i["geometry"]).exterior.coords)
    strip_west = lons[len(lons) // 2]  # a strip in the middle of the mirror's longitudes
    strip_east = strip_west + 20.0
    outside_strip = box(strip_east, -90, 180, 90).union(box(-180, -90, strip_west, 90))
    wrapped = {i["id"] for i in items if shape(i["geometry"]).intersects(outside_strip)}
    west_half = {i["id"] for i in items if shape(i["geometry"]).intersects(box(-180, -90, strip_west, 90))}
    assert 0 < len(west_half) < len(wrapped) < len(items)  # each box selects some, not all
    cases = {
        f"S_INTERSECTS(geometry, BBOX({strip_east}, -90, {strip_west}, 90))": wrapped,
        f"S_INTERSECTS(geometry, BBOX(-180, -90, -50, {strip_west}, 90, 9000))": west_half,
    }
    for text, expected in cases.items():
        for method in ("GET", "POST"):
            request = {"filter": text, "filter-lang": "cql2-text", "limit": 1000}
            found = {f["id"] for f in everything(api, method, **request)}
            assert found == expected, (text, method)


def test_next_pages_start_after_the_last_items_sort_key(api: str) -> None:
    """Next links carry the last item's sort key ("k" tokens), so a deep page costs what the first
    does; position tokens ("p") are still read; a token altered, or from another sort order, is a 400."""
    first = requests.get(
        f"{api}/search", params={"limit": 10, "sortby": "-eo:cloud_cover"}, timeout=30
    ).json()
    nxt = next(link["href"] for link in first["links"] if link["rel"] == "next")
    token = dict(p.split("=", 1) for p in nxt.split("?", 1)[1].split("&"))["token"]
    assert token.startswith("k")
    second = requests.get(nxt, timeout=30).json()
    by_position = requests.get(
        f"{api}/search", params={"limit": 10, "sortby": "-eo:cloud_cover", "token": "p10"}, timeout=30
    ).json()
    assert [f["id"] for f in second["features"]] == [f["id"] for f in by_position["features"]]
    assert not {f["id"] for f in first["features"]} & {f["id"] for f in second["features"]}
    for params in (
        {"token": token[:-3] + "!!!"},  # not base64
        {"token": "k" + "A" * 12},  # base64, but not of a key
        {"token": token, "sortby": "+platform,-datetime"},  # a number for the platform
        {"token": token},  # four values, for the default order's three keys
    ):
        answer = requests.get(f"{api}/search", params={"limit": 10, **params}, timeout=30)
        assert answer.status_code == 400, params
        assert answer.json()["description"].startswith("token:"), answer.json()
