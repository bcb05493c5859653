"""Catalogs that scale: a browsable tree of at most 1 000 links a node, state in SQLite, and the
same output from every executor (in-process, a process pool, a Dask LocalCluster)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pystac
import pytest

import stacmirror
from stacmirror.catalog import parents as parents_module
from stacmirror.catalog.walk import item_files
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror
from stacmirror.layout import Mirror

from .helpers import run_harvest


def links_per_node(root: Path) -> dict[Path, int]:
    counts = {}
    for node in root.rglob("*.json"):
        data = json.loads(node.read_text())
        if data.get("type") in ("Catalog", "Collection"):
            counts[node] = sum(1 for link in data["links"] if link["rel"] in ("child", "item"))
    return counts


def test_rows_past_the_link_limit_split_by_year_and_still_load(tmp_path: Path, shared, monkeypatch) -> None:
    monkeypatch.setattr(parents_module, "MAX_LINKS", 10)
    out = tmp_path / "m"
    records = list(synthetic_records(24, seed=3, tiles=[(40, 33)], start=dt.date(2018, 1, 1), years=4))
    records += list(synthetic_records(5, seed=4, tiles=[(41, 34)]))
    write_metadata_mirror(out, records)
    result = stacmirror.build_catalog(out, workers=1)
    assert result.written == 29 and not result.errors
    counts = links_per_node(out)
    assert counts and max(counts.values()) <= 10
    mirror = Mirror(out)
    years = mirror.year_catalogs("landsat_ot_c2_l2", 40, 33)
    assert len(years) == 4 and not mirror.year_catalogs("landsat_ot_c2_l2", 41, 34)
    for year_node in years:  # every item of a split row names its year's catalog as its parent
        for item_file in item_files(year_node):
            item = json.loads(item_file.read_text())
            parent = next(link["href"] for link in item["links"] if link["rel"] == "parent")
            assert (item_file.parent / parent).resolve() == year_node.resolve()
    loaded = list(pystac.read_file(str(out / "catalog.json")).get_items(recursive=True))
    assert len(loaded) == 29 and len(stacmirror.items(out)) == 29
    report = stacmirror.validate(out, schemas=shared / "stac-schemas")
    assert report.ok, report.problems
    # the row shrinks below the limit: its years go, its items point at the row again
    for record in records[:20]:
        pid = record.display_id(2)
        if pid.split("_")[2] == "040033":
            shutil.rmtree(mirror.scene_dir("landsat_ot_c2_l2", pid))
    again = stacmirror.build_catalog(out, workers=1)
    assert again.removed >= 14 and not mirror.year_catalogs("landsat_ot_c2_l2", 40, 33)
    row = mirror.row_catalog("landsat_ot_c2_l2", 40, 33)
    for item_file in item_files(row):
        item = json.loads(item_file.read_text())
        parent = next(link["href"] for link in item["links"] if link["rel"] == "parent")
        assert (item_file.parent / parent).resolve() == row.resolve()
    assert stacmirror.validate(out, schemas=shared / "stac-schemas").ok


def test_state_lives_in_sqlite_and_is_updated_incrementally(tmp_path: Path) -> None:
    out = tmp_path / "m"
    records = list(synthetic_records(13, seed=5))
    write_metadata_mirror(out, records[:12])
    mirror = Mirror(out)
    mirror.state_dir.mkdir(parents=True)
    mirror.legacy_catalog_state_path.write_text("{}")  # a 0.1 mirror's state is replaced
    first = stacmirror.build_catalog(out, workers=1)
    assert first.written == 12 and mirror.catalog_db_path.exists()
    assert not mirror.legacy_catalog_state_path.exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    noop = stacmirror.build_catalog(out, workers=1)
    assert (noop.written, noop.unchanged, noop.parents_written) == (0, 12, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == stamps
    write_metadata_mirror(out, records[12:])  # one more scene
    more = stacmirror.build_catalog(out, workers=1)
    assert (more.written, more.unchanged) == (1, 12)
    changed = [p for p in out.rglob("*.json") if stamps.get(p) != p.stat().st_mtime_ns]
    assert len(changed) <= 5  # the item, its row, its path, the collection (and perhaps the root)
    lost = mirror.item_path(mirror.scene_dir("landsat_ot_c2_l2", records[3].display_id(2)))
    lost.unlink()  # an item file gone while its scene's files are unchanged: written again
    mended = stacmirror.build_catalog(out, workers=1)
    assert (mended.written, mended.unchanged) == (1, 12) and lost.is_file()


def _normalised(root: Path) -> dict[str, bytes]:
    """Every catalog file with `created` blanked, and every other file's bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or ".stacmirror" in path.parts:
            continue
        if path.suffix == ".parquet":  # its rows hold `created`; test_search checks its content
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            text = json.loads(data)
            if isinstance(text, dict) and "created" in text.get("properties", {}):
                text["properties"]["created"] = "-"
            data = json.dumps(text, sort_keys=True).encode()
        found[str(path.relative_to(root))] = data
    return found


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_every_executor_writes_the_same_catalog_and_crops(emulator, tmp_path: Path, dask_cluster) -> None:
    source = tmp_path / "source"
    run_harvest(
        emulator, source, mode="bands", bands=["red", "green", "blue", "qa_pixel", "MTL"], max_scenes=4
    )
    for thumb in source.rglob("*_browse.jpg"):
        thumb.unlink()  # rendered thumbnails come from the workers too
    runs = {
        "inline": {"workers": 1},
        "pool": {"executor": "pool"},
        "dask": {"dask": dask_cluster},
    }
    outputs = {}
    for name, options in runs.items():
        out = tmp_path / name
        shutil.copytree(source, out)
        # forkserver, as stacmirror's own pools: a forked child of a process running the cluster's
        # threads can deadlock
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(2, mp_context=context) if options.get("executor") == "pool" else None
        try:
            kwargs = {**options, "executor": pool} if pool else options
            built = stacmirror.build_catalog(out, **kwargs)
            assert built.written == 4 and not built.errors
            stacks = stacmirror.find_stacks(out)
            cropped = stacmirror.crop(out, stacks, assets=["red", "qa_pixel"], **kwargs)
            assert cropped.ok and cropped.stacks[0].cropped == 4
        finally:
            if pool:
                pool.shutdown()
        outputs[name] = _normalised(out)
    assert any(name.endswith("_thumb.png") for name in outputs["inline"])
    assert outputs["inline"].keys() == outputs["pool"].keys() == outputs["dask"].keys()
    for name in outputs["inline"]:
        assert outputs["inline"][name] == outputs["pool"][name] == outputs["dask"][name], name


def test_bad_parallel_options_are_input_errors(tmp_path: Path) -> None:
    write_metadata_mirror(tmp_path, synthetic_records(10, seed=6))
    with pytest.raises(stacmirror.InvalidInput) as caught:
        stacmirror.build_catalog(tmp_path, workers=0)
    assert caught.value.field == "workers"
    with pytest.raises(stacmirror.InvalidInput) as caught:
        stacmirror.build_catalog(tmp_path, dask="tcp://127.0.0.1:9")
    assert caught.value.field == "dask"
    assert not Mirror(tmp_path).catalog_path.exists()
