"""Searching a mirror offline: items.parquet kept in step by the catalog step, `stacmirror query`
and `stacmirror.items(bbox=, datetime=, query=)` against a brute-force scan of the item files."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import stac_geoparquet.arrow
from shapely.geometry import box, shape

import stacmirror
from stacmirror.catalog.parquet import _centre, _to_arrow, z_order
from stacmirror.catalog.walk import item_files
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror
from stacmirror.layout import Mirror
from stacmirror.offline_search import search
from stacmirror.property_filter import from_query, matches
from stacmirror.sort_keys import key_token, token_key

from .helpers import STACMIRROR, run_harvest

DATASET = "landsat_ot_c2_l2"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "m"
    write_metadata_mirror(out, synthetic_records(400, seed=7))
    assert stacmirror.build_catalog(out, workers=1).ok
    return out


def brute_force(out: Path, *, area=None, start=None, end=None, cloud_max=None, path=None, platform=None):
    found = []
    for item_file in item_files(Mirror(out).collection_path(DATASET)):
        item = json.loads(item_file.read_text())
        props = item["properties"]
        when = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
        if area is not None and not shape(item["geometry"]).intersects(area):
            continue
        if start and when < dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc):
            continue
        if end and when >= dt.datetime.fromisoformat(end).replace(tzinfo=dt.timezone.utc) + dt.timedelta(
            days=1
        ):
            continue
        if cloud_max is not None and not (
            props.get("eo:cloud_cover") is not None and props["eo:cloud_cover"] <= cloud_max
        ):
            continue
        if path is not None and props["landsat:wrs_path"] != f"{path:03d}":
            continue
        if platform is not None and props["platform"] != platform:
            continue
        found.append(item["id"])
    return sorted(found)


def _partitions(out: Path) -> list[Path]:
    return sorted(Mirror(out).items_parquet(DATASET).glob("*.parquet"))


def _assert_sorted_partitions(out: Path) -> list[dict]:
    """Each partition holds one WRS path's items, sorted by space, then time; all share one schema.
    Returns every item, in the folder's order."""
    files = _partitions(out)
    schemas = {str(pq.read_schema(f).remove_metadata()) for f in files}
    assert len(schemas) == 1, "every partition in the collection's schema"
    everything = []
    for file in files:
        items = list(stac_geoparquet.arrow.stac_table_to_items(pq.read_table(file)))
        assert {i["properties"]["landsat:wrs_path"] for i in items} == {file.stem}
        keys = [(z_order(*_centre(i["bbox"])), i["properties"]["datetime"]) for i in items]
        assert keys == sorted(keys)
        everything += items
    return everything


def test_parquet_holds_every_item_sorted_by_space_then_time(mirror: Path) -> None:
    table = pq.read_table(Mirror(mirror).items_parquet(DATASET))  # the folder reads as one table
    assert table.num_rows == 400
    items = _assert_sorted_partitions(mirror)
    assert [i["id"] for i in items] == table.column("id").to_pylist()
    on_disk = {p.stem for p in item_files(Mirror(mirror).collection_path(DATASET))}
    assert {i["id"] for i in items} == on_disk
    assert len(_partitions(mirror)) == len({i["properties"]["landsat:wrs_path"] for i in items}) > 10
    first = items[0]
    assert first["assets"]["mtl.txt"]["href"].startswith("./")  # relative to the collection folder
    assert (Mirror(mirror).collection_path(DATASET).parent / first["assets"]["mtl.txt"]["href"]).exists()


def test_parquet_reads_in_geopandas_and_rustac(mirror: Path) -> None:
    import geopandas
    import rustac

    parquet = Mirror(mirror).items_parquet(DATASET)
    frame = geopandas.read_parquet(parquet)
    assert len(frame) == 400 and frame.crs.to_epsg() == 4326
    assert frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    on_disk = {p.stem: json.loads(p.read_text()) for p in item_files(Mirror(mirror).collection_path(DATASET))}
    for row in frame.head(20).itertuples():
        assert row.geometry.equals(shape(on_disk[row.id]["geometry"]))
    features = [f for part in _partitions(mirror) for f in rustac.read_sync(str(part))["features"]]
    assert {item["id"] for item in features} == set(on_disk)
    first = features[0]
    assert first["properties"]["eo:cloud_cover"] == on_disk[first["id"]]["properties"]["eo:cloud_cover"]


def test_the_arrow_table_is_stac_geoparquets_own_and_the_items_are_left_alone(mirror: Path) -> None:
    """The writer's converter (geometries to WKB on shallow copies, then stac-geoparquet's batch
    converter) gives the table stac-geoparquet's public parser gives, proj:geometry included."""
    import copy

    catalog = Mirror(mirror).catalog_path
    items = [json.loads(f.read_text()) for f in itertools.islice(item_files(catalog), 12)]
    footprint = items[0]["geometry"]
    items[0]["properties"]["proj:geometry"] = footprint
    next(iter(items[1]["assets"].values()))["proj:geometry"] = footprint
    before = copy.deepcopy(items)
    ours = _to_arrow(items)
    theirs = stac_geoparquet.arrow.parse_stac_items_to_arrow(items).read_all()
    assert ours.schema.equals(theirs.schema) and ours.to_pylist() == theirs.to_pylist()
    assert "proj:geometry" in ours.column_names
    assert items == before, "the items handed in are not changed"


def test_a_parquet_of_many_batches_stays_in_order(tmp_path: Path, monkeypatch) -> None:
    """More than ten spilled batches: their files are read back in number order, not name order."""
    from stacmirror.catalog import parquet as parquet_module

    monkeypatch.setattr(parquet_module, "BATCH", 7)
    out = tmp_path / "m"
    # one WRS path (three rows), so that its partition takes many batches
    write_metadata_mirror(out, synthetic_records(120, seed=13, tiles=[(42, 30), (42, 31), (42, 32)]))
    stacmirror.build_catalog(out, workers=1)
    assert [p.name for p in _partitions(out)] == ["042.parquet"]
    assert len(_assert_sorted_partitions(out)) == 120


@pytest.mark.parametrize(
    "filters",
    [
        {"bbox": "-100,20,-60,50"},
        {"bbox": "-100,20,-60,50", "start": "2015-01-01", "end": "2019-12-31", "cloud_max": 40},
        {"start": "2020-06-01", "end": "2020-06-30"},
        {"path": 100},
        {"platform": "landsat-9", "cloud_max": 10},
        {"bbox": "170,-60,-170,60"},  # across the antimeridian
    ],
)
def test_query_equals_a_brute_force_scan(mirror: Path, filters: dict) -> None:
    area = (
        stacmirror.Selection(DATASET, "2000-01-01", "2030-01-01", bbox=filters["bbox"]).area
        if "bbox" in filters
        else None
    )
    expected = brute_force(
        mirror, area=area, start=filters.get("start"), end=filters.get("end"),
        cloud_max=filters.get("cloud_max"), path=filters.get("path"), platform=filters.get("platform"),
    )  # fmt: skip
    result = search(mirror, **filters)
    assert sorted(result.ids) == expected
    assert expected or "path" in filters  # most cases find something: the test has teeth


def test_query_command_prints_ids_json_and_geojson(mirror: Path, tmp_path: Path) -> None:
    ids = subprocess.run(
        [*STACMIRROR, "query", str(mirror), "--bbox=-100,20,-60,50", "--ids"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    area = box(-100, 20, -60, 50)
    assert sorted(ids.stdout.split()) == brute_force(mirror, area=area)
    geojson = tmp_path / "found.geojson"
    as_json = subprocess.run(
        [*STACMIRROR, "query", str(mirror), "--start", "2016-01-01", "--end", "2016-12-31", "--limit", "3",
         "--json", "--geojson", str(geojson)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    report = json.loads(as_json.stdout)
    assert report["count"] == 3 and len(json.loads(geojson.read_text())["features"]) == 3
    assert report["matched"] == len(brute_force(mirror, start="2016-01-01", end="2016-12-31")) > 3
    sunny = '{"op": ">", "args": [{"property": "view:sun_elevation"}, 40]}'
    filtered = subprocess.run(
        [*STACMIRROR, "query", str(mirror), "--platform", "landsat-8", "--filter", sunny, "--ids"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    on_disk = [json.loads(p.read_text())["properties"] | {"id": p.stem}
               for p in item_files(Mirror(mirror).collection_path(DATASET))]  # fmt: skip
    expected = sorted(
        p["id"] for p in on_disk if p["platform"] == "landsat-8" and p["view:sun_elevation"] > 40
    )
    assert expected and sorted(filtered.stdout.split()) == expected
    for bad in ("{not json", '{"op": "<", "args": [{"property": "no:such"}, 1]}'):
        refused = subprocess.run(
            [*STACMIRROR, "query", str(mirror), "--filter", bad], capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2 and refused.stderr.startswith("stacmirror: error: --filter"), bad
    bad = subprocess.run(
        [*STACMIRROR, "query", str(mirror), "--start", "2016-13-01"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("stacmirror: error: --start")


def _full_rewrite(out: Path) -> pa.Table:
    """What a full rewrite of the collection's items.parquet holds: every partition rebuilt from the
    item files (the folder removed first, so no partition can be merged)."""
    from stacmirror.catalog.parquet import remove_items_parquet, write_items_parquet
    from stacmirror.catalog.state import CatalogState

    mirror = Mirror(out)
    remove_items_parquet(mirror.items_parquet(DATASET))
    state = CatalogState(mirror)
    write_items_parquet(mirror, state, DATASET)
    state.close()
    return pq.read_table(mirror.items_parquet(DATASET))


TILES = [(p, r) for p in (17, 18, 120, 200) for r in (30, 31)]


def test_parquet_follows_added_changed_and_removed_scenes_by_merging(tmp_path: Path, monkeypatch) -> None:
    from stacmirror.catalog import parquet as parquet_module

    rewrites, merges = [], []
    real_rewrite, real_merge = parquet_module._rewrite, parquet_module._merge
    monkeypatch.setattr(parquet_module, "_rewrite", lambda *a: rewrites.append(a[1]) or real_rewrite(*a))
    monkeypatch.setattr(parquet_module, "_merge", lambda *a: merges.append(a[2]) or real_merge(*a))
    out = tmp_path / "m"
    mirror = Mirror(out)
    records = list(synthetic_records(60, seed=9, tiles=TILES))
    write_metadata_mirror(out, [r for r in records[:50] if r.path != 200])
    stacmirror.build_catalog(out, workers=1)
    assert len(rewrites) == 3 and not merges  # each partition built whole from its items
    assert [p.name for p in _partitions(out)] == ["017.parquet", "018.parquet", "120.parquet"]

    # 10 new scenes (on paths 17, 18, 120 and the new 200), one scene of path 18 removed, one of
    # path 17 changed (its cloud cover); path 120 gets no change but its new scenes
    write_metadata_mirror(out, [r for r in records if r.path == 200 or r in records[50:]])
    on_18 = [r.display_id(2) for r in records[:50] if r.path == 18]
    gone = on_18[0]
    shutil.rmtree(mirror.scene_dir(DATASET, gone))
    changed = next(r.display_id(2) for r in records[:50] if r.path == 17)
    mtl = next(mirror.scene_dir(DATASET, changed).glob("*_MTL.txt"))
    text = mtl.read_text()
    old_cloud = re.search(r"CLOUD_COVER = (\S+)", text)[1]
    new_cloud = "12.34" if old_cloud != "12.34" else "56.78"
    mtl.write_text(re.sub(r"CLOUD_COVER = \S+", f"CLOUD_COVER = {new_cloud}", text))
    rewrites.clear()
    stacmirror.build_catalog(out, workers=1)
    assert len(rewrites) == 1 and rewrites[0].name == ".200.parquet.tmp"  # a new path: built whole
    assert sorted(m.name for m in merges) == [".017.parquet.tmp", ".018.parquet.tmp", ".120.parquet.tmp"]
    merged = pq.read_table(mirror.items_parquet(DATASET))
    assert merged.num_rows == 59 and gone not in merged.column("id").to_pylist()
    row = merged.column("id").to_pylist().index(changed)
    assert merged.column("eo:cloud_cover")[row].as_py() == float(new_cloud)
    _assert_sorted_partitions(out)
    full = _full_rewrite(out)
    assert merged.equals(full) and merged.schema.equals(full.schema, check_metadata=True)

    from stacmirror.catalog.parquet import write_items_parquet
    from stacmirror.catalog.state import CatalogState

    # a removal alone is seen by the partition's row count, and only that partition is written
    untouched = {p.name: p.stat().st_mtime_ns for p in _partitions(out)}
    shutil.rmtree(mirror.scene_dir(DATASET, on_18[1]))
    rewrites.clear(), merges.clear()
    stacmirror.build_catalog(out, workers=1)
    assert [m.name for m in merges] == [".018.parquet.tmp"] and not rewrites
    assert {p.name for p in _partitions(out) if p.stat().st_mtime_ns != untouched[p.name]} == {"018.parquet"}
    assert on_18[1] not in pq.read_table(mirror.items_parquet(DATASET)).column("id").to_pylist()

    # an item lacking a property the others have is merged: its column takes a null
    state = CatalogState(mirror)
    entries = iter([e for e in state.entries(DATASET) if e["wrs_path"] == 120][:2])
    entry = next(entries)
    lacking = json.loads((out / entry["item"]).read_text())
    del lacking["properties"]["view:sun_azimuth"]
    (out / entry["item"]).write_text(json.dumps(lacking))
    state.put(entry)
    rewrites.clear()
    write_items_parquet(mirror, state, DATASET)
    assert not rewrites, "merged, not rebuilt"
    merged = pq.read_table(mirror.items_parquet(DATASET))
    row = merged.column("id").to_pylist().index(lacking["id"])
    assert merged.column("view:sun_azimuth")[row].as_py() is None
    assert merged.equals(_full_rewrite(out))

    # an item with a property no other item has: its partition is merged, and every other one is
    # brought to the new schema, so the folder still reads as one table
    entry = next(entries)
    item_file = out / entry["item"]
    item = json.loads(item_file.read_text())
    item["properties"]["test:extra"] = 1.5
    item_file.write_text(json.dumps(item))
    state.put(entry)  # as the catalog step does when it writes an item
    rewrites.clear()
    write_items_parquet(mirror, state, DATASET)
    state.close()
    assert not rewrites
    _assert_sorted_partitions(out)
    table = pq.read_table(mirror.items_parquet(DATASET))
    assert table.num_rows == 58 and "test:extra" in table.column_names
    row = table.column("id").to_pylist().index(item["id"])
    assert table.column("test:extra")[row].as_py() == 1.5
    assert table.equals(_full_rewrite(out))


def test_a_damaged_parquet_is_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "m"
    records = list(synthetic_records(10, seed=14))
    write_metadata_mirror(out, records[:9])
    stacmirror.build_catalog(out, workers=1)
    damaged = _partitions(out)[0]
    damaged.write_bytes(b"not parquet")
    write_metadata_mirror(out, records[9:])
    assert stacmirror.build_catalog(out, workers=1).ok
    assert pq.read_table(Mirror(out).items_parquet(DATASET)).num_rows == 10
    assert pq.read_table(damaged).num_rows >= 1
    lost = _partitions(out)[-1]
    lost.unlink()  # a partition lost: the next run writes it again, though no item changed
    assert stacmirror.build_catalog(out, workers=1).ok and lost.exists()
    assert pq.read_table(Mirror(out).items_parquet(DATASET)).num_rows == 10


def test_a_single_file_from_an_earlier_version_becomes_partitions(tmp_path: Path) -> None:
    out = tmp_path / "m"
    records = list(synthetic_records(10, seed=15))
    write_metadata_mirror(out, records[:9])
    stacmirror.build_catalog(out, workers=1)
    folder = Mirror(out).items_parquet(DATASET)
    table = pq.read_table(folder)
    shutil.rmtree(folder)
    pq.write_table(table, folder)  # one file where the folder goes, as versions before wrote
    write_metadata_mirror(out, records[9:])
    assert stacmirror.build_catalog(out, workers=1).ok
    assert folder.is_dir() and pq.read_table(folder).num_rows == 10


def test_a_parquet_write_that_never_happened_is_made_up_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    from stacmirror.catalog import parents

    out = tmp_path / "m"
    records = list(synthetic_records(12, seed=10))
    write_metadata_mirror(out, records[:8])
    stacmirror.build_catalog(out, workers=1)
    write_metadata_mirror(out, records[8:])
    real = parents.write_items_parquet

    def killed(*args):
        raise KeyboardInterrupt  # the run dies after the items, before the parquet

    monkeypatch.setattr(parents, "write_items_parquet", killed)
    with pytest.raises(KeyboardInterrupt):
        stacmirror.build_catalog(out, workers=1)
    monkeypatch.setattr(parents, "write_items_parquet", real)
    result = stacmirror.build_catalog(out, workers=1)  # nothing new on disk: only the parquet is owed
    assert result.ok
    ids = sorted(pq.read_table(Mirror(out).items_parquet(DATASET), columns=["id"]).column("id").to_pylist())
    assert ids == sorted(r.display_id(2) for r in records)


def test_items_select_through_the_parquet_and_load(emulator, tmp_path: Path) -> None:
    import stackstac

    run_harvest(
        emulator, tmp_path, mode="bands", bands=["red", "qa_pixel", "MTL"], max_scenes=4, browse=False
    )
    stacmirror.build_catalog(tmp_path, workers=1)
    every = stacmirror.items(tmp_path)
    dates = sorted(i.properties["datetime"][:10] for i in every)
    window = f"{dates[1]}/{dates[-1]}"
    chosen = stacmirror.items(
        tmp_path, bbox="-122.6,38.0,-120.0,39.6", datetime=window, query={"eo:cloud_cover": {"lte": 100}}
    )
    assert {i.id for i in chosen} == {i.id for i in every if dates[1] <= i.properties["datetime"][:10]}
    cube = stackstac.stack(chosen, assets=["red"], epsg=chosen[0].properties["proj:epsg"])
    assert cube.shape[0] == len(chosen)
    with pytest.raises(stacmirror.InvalidInput):
        stacmirror.items(tmp_path, bbox="-122.6,38.0,-120.0,39.6", query={"eo:cloud_cover": {"about": 3}})


def _cloud(p: dict) -> float:
    return p["eo:cloud_cover"] if p.get("eo:cloud_cover") is not None else float("nan")


FILTER_CASES = [
    (
        {"op": "and", "args": [
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]},
            {"op": "=", "args": [{"property": "platform"}, "landsat-9"]},
        ]},
        lambda p: _cloud(p) < 20 and p["platform"] == "landsat-9",
    ),
    (
        {"op": "or", "args": [
            {"op": "in", "args": [{"property": "landsat:wrs_row"}, ["030", "031", "032"]]},
            {"op": "not", "args": [{"op": ">=", "args": [{"property": "view:sun_elevation"}, 20]}]},
        ]},
        lambda p: p["landsat:wrs_row"] in ("030", "031", "032") or not p["view:sun_elevation"] >= 20,
    ),
    (
        {"op": "between", "args": [
            {"property": "datetime"},
            {"timestamp": "2016-01-01T00:00:00Z"},
            {"timestamp": "2016-12-31T23:59:59Z"},
        ]},
        lambda p: "2016-01-01" <= p["datetime"][:10] <= "2016-12-31",
    ),
    (
        from_query({"landsat:cloud_cover_land": {"gte": 50}, "platform": "landsat-8"}),
        lambda p: p["landsat:cloud_cover_land"] >= 50 and p["platform"] == "landsat-8",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
def test_property_filters_match_a_brute_force_scan(mirror: Path, case: int) -> None:
    """A CQL2 JSON tree compiled to SQL over the parquet, and evaluated on items read from the tree,
    finds what a hand-written test of every item's JSON finds."""
    tree, wanted = FILTER_CASES[case]
    on_disk = [json.loads(p.read_text()) for p in item_files(Mirror(mirror).collection_path(DATASET))]
    expected = sorted(i["id"] for i in on_disk if wanted(i["properties"]))
    assert 0 < len(expected) < len(on_disk)
    assert sorted(search(mirror, filter=tree).ids) == expected
    assert sorted(i["id"] for i in on_disk if matches(i["properties"], tree)) == expected


def test_bad_property_filters_are_input_errors(mirror: Path) -> None:
    for tree in (
        {"op": "<", "args": [{"property": "no:such"}, 3]},
        {"op": "a_contains", "args": [{"property": "platform"}, ["landsat"]]},
        {"op": "<", "args": [3, {"property": "eo:cloud_cover"}]},
        {"op": "=", "args": [{"property": "platform"}, {"interval": ["2016", "2017"]}]},
    ):
        with pytest.raises(stacmirror.InvalidInput) as caught:
            search(mirror, filter=tree)
        assert caught.value.field == "filter"
    with pytest.raises(stacmirror.InvalidInput):
        from_query({"eo:cloud_cover": {"about": 3}})


@pytest.mark.parametrize("bbox", [None, "-100,20,-60,50", "170,-60,-170,60"])
def test_pages_of_a_search_are_slices_of_the_whole(mirror: Path, bbox: str | None) -> None:
    whole = search(mirror, bbox=bbox)
    assert whole.matched == len(whole.items) > 10
    pages = [search(mirror, bbox=bbox, limit=4, offset=start) for start in range(0, whole.matched, 4)]
    assert [i for p in pages for i in p.ids] == whole.ids
    assert {p.matched for p in pages} == {whole.matched}
    assert search(mirror, bbox=bbox, limit=3, offset=whole.matched).items == []
    with pytest.raises(stacmirror.InvalidInput):
        search(mirror, offset=-1)


@pytest.fixture(scope="module")
def ties_and_nulls(tmp_path_factory) -> Path:
    """A mirror whose cloud cover has ties (three values) and nulls (six items without it)."""
    from stacmirror.catalog.parquet import write_items_parquet
    from stacmirror.catalog.state import CatalogState

    out = tmp_path_factory.mktemp("keys") / "m"
    write_metadata_mirror(out, synthetic_records(90, seed=5))
    assert stacmirror.build_catalog(out, workers=1).ok
    mirror = Mirror(out)
    state = CatalogState(mirror)
    for n, entry in enumerate(state.entries(DATASET)):
        path = out / entry["item"]
        item = json.loads(path.read_text())
        if n % 7 == 0:
            del item["properties"]["eo:cloud_cover"]
        else:
            item["properties"]["eo:cloud_cover"] = float(n % 3 * 10)
        path.write_text(json.dumps(item))
        state.put(entry)
    write_items_parquet(mirror, state, DATASET)
    state.close()
    return out


def _by_keys(out: Path, **request) -> list[list[str]]:
    """Every page of a search, each started after the sort key of the page before."""
    pages, key = [], None
    while True:
        page = search(out, limit=4, after_key=key, **request)
        pages.append(page.ids)
        if page.next_key is None:
            assert page.next_after is None
            return pages
        key = token_key(key_token(page.next_key))  # as the API carries it: through its token
        assert isinstance(key, list) and len(key) == len(page.next_key)


@pytest.mark.parametrize(
    "sortby",
    [
        None,
        [("eo:cloud_cover", False)],
        [("eo:cloud_cover", True), ("datetime", False)],
        [("platform", False)],
        [("id", True)],
    ],
)
@pytest.mark.parametrize("bbox", [None, "-180,-35,180,35"])
def test_pages_by_sort_key_are_slices_of_the_whole(ties_and_nulls: Path, sortby, bbox) -> None:
    """Ties, nulls (sorted last either way), ascending and descending, with and without an area
    whose candidates need an exact test: pages started after the last key cover the whole once."""
    whole = search(ties_and_nulls, sortby=sortby, bbox=bbox)
    assert len(whole.items) > 8
    if sortby and sortby[0][0] == "eo:cloud_cover":
        clouds = [i["properties"]["eo:cloud_cover"] for i in whole.items]
        assert clouds[-1] is None and len(set(clouds)) <= 4, "nulls last, and ties"
    pages = _by_keys(ties_and_nulls, sortby=sortby, bbox=bbox)
    assert [i for p in pages for i in p] == whole.ids
    assert all(len(p) == 4 for p in pages[:-1])


def test_a_sort_key_that_does_not_fit_is_an_input_error(ties_and_nulls: Path) -> None:
    first = search(ties_and_nulls, limit=3)
    assert first.next_key is not None and isinstance(first.next_key[0], dt.datetime)
    for key in (first.next_key[:1], ["not a time", "x", "y"], [*first.next_key, 1]):
        with pytest.raises(stacmirror.InvalidInput) as caught:
            search(ties_and_nulls, limit=3, after_key=key)
        assert caught.value.field == "after_key"
    for text in ("", "!!", key_token(["a"])[:-2] + "~~", "bnVsbA"):  # not base64 JSON of a list
        with pytest.raises(stacmirror.InvalidInput):
            token_key(text)


def test_partitions_caught_between_two_schemas_are_still_searched(tmp_path: Path) -> None:
    """A killed write can leave one partition without a column the others have: DuckDB refuses
    to read them as one schema, so the search reads them unified by name instead."""
    out = tmp_path / "m"
    write_metadata_mirror(out, synthetic_records(30, seed=3, tiles=TILES))
    assert stacmirror.build_catalog(out, workers=1).ok
    whole = search(out)
    later = _partitions(out)[-1]
    table = pq.read_table(later)
    pq.write_table(table.drop_columns(["view:sun_azimuth"]), later)
    again = search(out)
    assert again.ids == whole.ids and again.matched == whole.matched
    assert "view:sun_azimuth" in stacmirror.offline_search.queryables(out)


def _recorded_queries(monkeypatch, wanted=lambda sql: True) -> list[str]:
    """The SQL the searches after this call send to DuckDB (those ``wanted``), in order."""
    from stacmirror import offline_search

    queries: list[str] = []
    real_connect = offline_search.connect

    class Recording:
        def __init__(self) -> None:
            self.inner = real_connect()

        def execute(self, sql: str, *args):
            if wanted(sql):
                queries.append(sql)
            return self.inner.execute(sql, *args)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    monkeypatch.setattr(offline_search, "connect", Recording)
    return queries


def test_an_area_page_reads_candidates_in_chunks_and_misses_none(mirror: Path, monkeypatch) -> None:
    """A thin diagonal strip: its box holds many candidates, few of them meet the strip. A page asks
    DuckDB for a chunk of candidates at a time (top rows, not a sort of all), the next chunk after
    the last one's sort key; the pages still cover the whole result once, in order."""
    from shapely.geometry import Polygon

    strip = Polygon([(-120, -50), (-110, -50), (130, 60), (120, 60)])
    whole = search(mirror, intersects=strip)
    candidates = search(mirror, bbox=",".join(map(str, strip.bounds)))
    assert 3 < len(whole.items) < len(candidates.items) / 3
    queries = _recorded_queries(monkeypatch, lambda sql: "ORDER BY" in sql)
    pages, key = [], None
    while True:
        page = search(mirror, intersects=strip, limit=1, after_key=key)
        pages += page.ids
        if page.next_key is None:
            break
        key = page.next_key
    assert pages == whole.ids
    assert len(queries) > len(pages), "some page needed more than one chunk of candidates"
    by_offset = [search(mirror, intersects=strip, limit=2, offset=n).ids for n in range(0, len(whole.ids), 2)]
    assert [i for p in by_offset for i in p] == whole.ids


def test_a_box_of_the_whole_globe_is_a_search_without_an_area(mirror: Path, monkeypatch) -> None:
    """-180,-90,180,90 holds every item: its pages and count come from DuckDB alone, with no box
    compared and no geometry tested, and equal both the search with no area and one through the
    exact path (a box a little smaller, which still holds every item of this mirror)."""

    everything = search(mirror)
    assert everything.matched > 10
    queries = _recorded_queries(monkeypatch)
    globe = search(mirror, bbox="-180,-90,180,90")
    assert globe.ids == everything.ids and globe.matched == everything.matched
    page = search(mirror, bbox="-180,-90,180,90", limit=5, offset=5)
    assert page.ids == everything.ids[5:10] and page.matched == everything.matched
    assert queries and not any("bbox.xmin" in q or "bbox.ymax" in q for q in queries)
    queries.clear()
    nearly = search(mirror, bbox="-179.999,-89.999,179.999,89.999")
    assert nearly.ids == everything.ids and nearly.matched == everything.matched
    assert any("bbox.xmin" in q for q in queries), "a smaller box still takes the exact path"


def test_result_entries_carry_the_item_files_geometry_and_path(mirror: Path) -> None:
    found = search(mirror, bbox="-100,20,-60,50", limit=10)
    assert len(found.items) == 10
    for entry in found.items:
        path = Mirror(mirror).item_file(entry["collection"], entry["id"])
        assert entry["item"] == str(path)
        item = json.loads(path.read_text())
        assert entry["geometry"] == json.loads(json.dumps(item["geometry"]))  # every coordinate, exact
        assert entry["bbox"] == item["bbox"]
