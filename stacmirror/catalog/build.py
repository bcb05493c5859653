"""Build (or bring up to date) the static STAC catalog of a mirror, from disk and the ledger.

A browsable tree, every node with at most 1 000 child or item links::

    OUT/catalog.json                                   root: one child per collection
    OUT/<dataset>/collection.json                      one child per WRS path
    OUT/<dataset>/<PPP>/catalog.json                   one child per WRS row
    OUT/<dataset>/<PPP>/<RRR>/catalog.json             the items (or, past 1 000, one child per year)
    OUT/<dataset>/<PPP>/<RRR>/catalog-<YYYY>.json      a year's items, when the row is split
    OUT/<dataset>/<PPP>/<RRR>/<id>/<id>.json           the item, next to its assets (hrefs ./<file>)

Links and hrefs are relative, so the folder can move. Items are built by workers (a process pool,
or any ``concurrent.futures.Executor``, such as a Dask cluster's) that turn scene folders into item
dictionaries; this module is the one writer: item files, thumbnails, parents and the state. Results
are written in submission order, so the output does not depend on the executor. A scene is rebuilt
only when its files changed (names, sizes and mtimes, kept in the state database): a no-op rebuild
opens no raster and writes no file. Parents are rewritten only under changed path/rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import events as ev
from ..executors import check_workers, executor_for
from ..fileio import relative_href, sync_all, write_bytes_atomic, write_json_atomic
from ..landsat import ProductId
from ..layout import Mirror
from ..ledger import Ledger
from .constants import EXT, STAC_VERSION
from .stac import GENERATED_SUFFIXES, ItemResult, build_item
from .state import CatalogState
from .templates import load_template

MAX_LINKS = 1_000  # per node: what STAC Browser and people can page through
SMALL_BUILD = 8  # at most this many items to build: no pool
COMMIT_EVERY = 500  # items between syncing their files and recording them in the state
SUMMARY_FIELDS = (
    "platform",
    "instruments",
    "gsd",
    "landsat:correction",
    "landsat:wrs_type",
    "landsat:collection_category",
    "proj:code",
    "sci:doi",
    "view:off_nadir",
)
RANGE_FIELDS = ("eo:cloud_cover", "view:sun_elevation", "view:sun_azimuth")
PER_FILE_FIELDS = ("href", "proj:shape", "proj:transform", "file:size", "file:checksum")
JSON_TYPE = "application/json"


@dataclass
class CatalogResult:
    """What a catalog build did; ``to_dict()`` is what ``catalog --json`` prints."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    rasters_opened: int = 0
    parents_written: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "itemsWritten": self.written,
            "itemsUnchanged": self.unchanged,
            "itemsRemoved": self.removed,
            "collections": self.collections,
            "errors": self.errors,
            "elapsedSeconds": round(self.elapsed, 3),
        }


@dataclass(frozen=True)
class _Task:
    key: str
    dataset: str
    folder: Path
    signature: list[Any]


def signature(folder: Path | str) -> list[list[Any]]:
    """What the item depends on: the product files' names, sizes and modification times."""
    name = os.path.basename(folder)
    own = {f"{name}.json", *(f"{name}_{s}" for s in GENERATED_SUFFIXES)}
    entries = []
    with os.scandir(folder) as found:
        for entry in found:
            if entry.name.startswith(".") or entry.name in own or not entry.is_file():
                continue
            stat = entry.stat()
            entries.append([entry.name, stat.st_size, stat.st_mtime_ns])
    return sorted(entries)


def _checksums(ledger: Ledger | None, mirror: Mirror, folder: Path) -> dict[str, str]:
    """sha256 values the ledger verified at download time for a scene's files, by file name.

    The worker trusts them while the size still agrees; the writer looks them up so that workers
    never need the ledger (a Dask worker may not see it)."""
    if ledger is None:
        return {}
    found = {}
    for record in ledger.files_of(folder.name):
        if record.state == "done" and record.sha256 and record.size is not None:
            found[Path(record.path).name] = f"{record.size}:{record.sha256}"
    return found


def _scan(
    mirror: Mirror, state: CatalogState, result: CatalogResult, seen: set[str], force: bool
) -> Iterator[_Task]:
    """Scene folders whose item must be (re)built; unchanged ones are counted and skipped."""
    root = str(mirror.root)
    for dataset, folder, key in mirror.scene_folder_keys():
        seen.add(key)
        sig = signature(folder)
        known = None if force else state.signature(key)
        if known is not None and known[0] == sig and os.path.exists(os.path.join(root, known[1])):
            result.unchanged += 1
            continue
        yield _Task(key, dataset, Path(folder), sig)


def _ordered(executor: Executor, tasks: Iterable[_Task], submit, window: int) -> Iterator[tuple[_Task, Any]]:
    """Results in submission order with at most ``window`` tasks in flight (bounded memory)."""
    pending: deque[tuple[_Task, Future[Any]]] = deque()
    for task in tasks:
        pending.append((task, submit(executor, task)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


def build_catalog(
    out: Path | str,
    *,
    force: bool = False,
    on_event: ev.EventHandler | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    dask: str | None = None,
) -> CatalogResult:
    """Bring ``OUT/catalog.json`` and everything below it up to date, from disk and the ledger.

    Items are built in ``executor`` when given, else in a Dask cluster at ``dask`` (a scheduler
    address), else in a process pool of ``workers`` processes (default: the CPU count; 1 builds
    in this process).
    """
    started = time.monotonic()
    check_workers(workers)
    emit = ev.emitter(on_event)
    mirror = Mirror(Path(out))
    result = CatalogResult()
    mirror.legacy_catalog_state_path.unlink(missing_ok=True)  # replaced by the state database
    state = CatalogState(mirror, fresh=force)
    ledger = Ledger.open_existing(mirror)
    seen: set[str] = set()
    dirty: set[tuple[str, int, int]] = set()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    def submit(pool: Executor, task: _Task) -> Future[Any]:
        return pool.submit(
            build_item, str(task.folder), task.dataset, _checksums(ledger, mirror, task.folder)
        )

    tasks = _scan(mirror, state, result, seen, force)
    first = list(itertools.islice(tasks, SMALL_BUILD + 1))
    if len(first) <= SMALL_BUILD and executor is None and dask is None:
        workers = 1  # a pool's start-up would cost more than these few items
    try:
        with executor_for(executor, workers=workers, dask=dask) as (pool, window):
            state.begin()
            for task, built in _ordered(pool, itertools.chain(first, tasks), submit, window):
                previous = state.node_of(task.key)
                if isinstance(built, str):  # the scene cannot be catalogued: say why, drop its old item
                    result.errors.append(built)
                    emit(ev.ItemFailed(task.key, built))
                    if previous:
                        (mirror.root / state.signature(task.key)[1]).unlink(missing_ok=True)  # type: ignore[index]
                        state.delete(task.key)
                        dirty.add(previous)
                    continue
                node = _write_item(mirror, state, task, built, created)
                result.written += 1
                result.rasters_opened += built.rasters_opened
                dirty.add(node)
                if previous and previous != node:
                    dirty.add(previous)
                emit(ev.ItemWritten(built.item["id"], mirror.rel(mirror.item_path(task.folder))))
                if result.written % COMMIT_EVERY == 0:
                    sync_all()
                    state.commit()
                    state.begin()
            for key, item in list(_vanished(state, seen)):
                dirty.add(state.node_of(key))  # type: ignore[arg-type]
                (mirror.root / item).unlink(missing_ok=True)
                state.delete(key)
                result.removed += 1
            sync_all()
            state.commit()
        _write_parents(mirror, state, dirty, result)
    finally:
        state.close()
        if ledger is not None:
            ledger.close()
    result.elapsed = time.monotonic() - started
    emit(ev.CatalogDone(result.written, result.unchanged, result.removed, len(result.errors)))
    return result


def _vanished(state: CatalogState, seen: set[str]) -> Iterator[tuple[str, str]]:
    for key, item in state.scenes():
        if key not in seen:
            yield key, item


def _write_item(mirror: Mirror, state: CatalogState, task: _Task, built: ItemResult, created: str):
    folder = task.folder
    pid = ProductId.parse(folder.name)
    if built.thumbnail_png is not None:
        write_bytes_atomic(
            folder / f"{folder.name}_{GENERATED_SUFFIXES[0]}", built.thumbnail_png, durable=False
        )
    item = built.item
    item_path = mirror.item_path(folder)
    year = int(item["properties"]["datetime"][:4])
    parent = mirror.row_catalog(task.dataset, pid.path, pid.row)  # _write_row repoints split rows
    item["links"] = [
        {"rel": "root", "href": relative_href(mirror.catalog_path, folder), "type": JSON_TYPE},
        {"rel": "parent", "href": relative_href(parent, folder), "type": JSON_TYPE},
        {
            "rel": "collection",
            "href": relative_href(mirror.collection_path(task.dataset), folder),
            "type": JSON_TYPE,
        },
        *item["links"],
    ]
    item["properties"]["created"] = created
    write_json_atomic(item_path, item, durable=False)  # synced in batches, before the state says so
    props = item["properties"]
    thumbnail = item["assets"].get("thumbnail")
    state.put(
        {
            "key": task.key,
            "dataset": task.dataset,
            "wrs_path": pid.path,
            "wrs_row": pid.row,
            "year": year,
            "id": item["id"],
            "item": mirror.rel(item_path),
            "signature": task.signature,
            "bbox": item["bbox"],
            "datetime": props["datetime"],
            "summary": {f: props[f] for f in SUMMARY_FIELDS + RANGE_FIELDS if f in props},
            "assets": {k: _asset_definition(a) for k, a in item["assets"].items()},
            "thumbnail": {"href": mirror.rel(folder / thumbnail["href"]), "type": thumbnail["type"]}
            if thumbnail
            else None,
            "footprint": built.native_wkt,
            "footprint_method": built.footprint_method,
        }
    )
    return (task.dataset, pid.path, pid.row)


def _asset_definition(asset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in asset.items() if k not in PER_FILE_FIELDS}


def _write_if_changed(path: Path, data: dict[str, Any]) -> bool:
    if path.exists():
        try:
            if json.loads(path.read_text()) == data:
                return False
        except ValueError:
            pass
    write_json_atomic(path, data)
    return True


# -- parents --------------------------------------------------------------------------------------


def _write_parents(
    mirror: Mirror, state: CatalogState, dirty: set[tuple[str, int, int]], result: CatalogResult
) -> None:
    datasets = state.datasets()
    for dataset in datasets:  # a deleted collection file is written again, whole
        if not mirror.collection_path(dataset).exists():
            dirty |= {(dataset, p, r) for p in state.paths(dataset) for r in state.rows(dataset, p)}
    for dataset, path, row in sorted(dirty):
        result.parents_written += _write_row(mirror, state, dataset, path, row)
    for dataset, path in sorted({(d, p) for d, p, _ in dirty}):
        result.parents_written += _write_path(mirror, state, dataset, path)
    root = load_template("catalog.json", required=True)
    assert root is not None
    root["links"] = [{"rel": "root", "href": "./catalog.json", "type": JSON_TYPE, "title": root["title"]}]
    for dataset in datasets:
        collection_path = mirror.collection_path(dataset)
        if dataset in {d for d, _, _ in dirty}:
            result.parents_written += _write_if_changed(collection_path, _collection(mirror, state, dataset))
        title = json.loads(collection_path.read_text()).get("title", dataset)
        root["links"].append(
            {
                "rel": "child",
                "href": relative_href(collection_path, mirror.root),
                "type": JSON_TYPE,
                "title": title,
            }
        )
        result.collections.append(dataset)
    for crop_collection in mirror.crop_collections():  # written by `stacmirror crop`
        title = json.loads(crop_collection.read_text()).get("title", crop_collection.parent.name)
        root["links"].append(
            {
                "rel": "child",
                "href": relative_href(crop_collection, mirror.root),
                "type": JSON_TYPE,
                "title": title,
            }
        )
    for dataset_dir in mirror.dataset_dirs():
        if dataset_dir.name not in datasets:
            mirror.collection_path(dataset_dir.name).unlink(missing_ok=True)
    result.parents_written += _write_if_changed(mirror.catalog_path, root)


def _node(node_id: str, title: str, description: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": node_id,
        "title": title,
        "description": description,
        "links": links,
    }


def _tree_links(mirror: Mirror, node: Path, parent: Path, dataset: str) -> list[dict[str, Any]]:
    return [
        {"rel": "root", "href": relative_href(mirror.catalog_path, node.parent), "type": JSON_TYPE},
        {"rel": "parent", "href": relative_href(parent, node.parent), "type": JSON_TYPE},
        {
            "rel": "collection",
            "href": relative_href(mirror.collection_path(dataset), node.parent),
            "type": JSON_TYPE,
        },
    ]


def _item_link(mirror: Mirror, entry: dict[str, Any], node: Path) -> dict[str, Any]:
    return {
        "rel": "item",
        "href": relative_href(mirror.root / entry["item"], node.parent),
        "type": "application/geo+json",
        "title": entry["id"],
    }


def _write_row(mirror: Mirror, state: CatalogState, dataset: str, path: int, row: int) -> int:
    """The row's catalog (items, or years past MAX_LINKS); 0 files when the row is gone."""
    node = mirror.row_catalog(dataset, path, row)
    count = state.count(dataset, path, row)
    written = 0
    stale_years = set(mirror.year_catalogs(dataset, path, row))
    if count == 0:
        for stale in [node, *stale_years]:
            stale.unlink(missing_ok=True)
        return 0
    links = _tree_links(mirror, node, mirror.path_catalog(dataset, path), dataset)
    entries = state.entries(dataset, path, row, columns=("id", "item", "year"))
    if count <= MAX_LINKS:
        members = list(entries)
        links += [_item_link(mirror, e, node) for e in members]
        if stale_years:  # the row was split by year before: its items point at the row again
            _repoint_parents(mirror, members, node)
    else:
        by_year: dict[int, list[dict[str, Any]]] = {}
        for entry in entries:
            by_year.setdefault(entry["year"], []).append(entry)
        for year, members in sorted(by_year.items()):
            year_node = mirror.year_catalog(dataset, path, row, year)
            stale_years.discard(year_node)
            year_links = _tree_links(mirror, year_node, node, dataset)
            year_links += [_item_link(mirror, e, year_node) for e in members]
            title = f"WRS {path:03d}/{row:03d}, {year}"
            written += _write_if_changed(
                year_node,
                _node(f"{dataset}-{path:03d}{row:03d}-{year}", title, f"{len(members)} scenes", year_links),
            )
            _repoint_parents(mirror, members, year_node)
            links.append(
                {
                    "rel": "child",
                    "href": relative_href(year_node, node.parent),
                    "type": JSON_TYPE,
                    "title": str(year),
                }
            )
    for stale in stale_years:
        stale.unlink(missing_ok=True)
    title = f"WRS path {path:03d}, row {row:03d}"
    description = f"{count} scene(s) of {dataset} on WRS-2 path {path:03d}, row {row:03d}"
    return written + _write_if_changed(
        node, _node(f"{dataset}-{path:03d}{row:03d}", title, description, links)
    )


def _repoint_parents(mirror: Mirror, members: list[dict[str, Any]], parent: Path) -> None:
    """Items of a row split by year point at their year's catalog (only rewritten when they do not)."""
    for entry in members:
        item_path = mirror.root / entry["item"]
        item = json.loads(item_path.read_text())
        href = relative_href(parent, item_path.parent)
        links = item["links"]
        current = next((link for link in links if link.get("rel") == "parent"), None)
        if current is not None and current["href"] != href:
            current["href"] = href
            write_json_atomic(item_path, item)


def _write_path(mirror: Mirror, state: CatalogState, dataset: str, path: int) -> int:
    node = mirror.path_catalog(dataset, path)
    rows = state.rows(dataset, path)
    if not rows:
        node.unlink(missing_ok=True)
        return 0
    links = _tree_links(mirror, node, mirror.collection_path(dataset), dataset)
    for row in rows:
        links.append(
            {
                "rel": "child",
                "href": relative_href(mirror.row_catalog(dataset, path, row), node.parent),
                "type": JSON_TYPE,
                "title": f"row {row:03d}",
            }
        )
    title = f"WRS path {path:03d}"
    return _write_if_changed(node, _node(f"{dataset}-{path:03d}", title, f"{len(rows)} WRS row(s)", links))


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _collection(mirror: Mirror, state: CatalogState, dataset: str) -> dict[str, Any]:
    """The collection, summarised in one streaming pass over its items' state rows."""
    collection = load_template(f"collections/{dataset}.json") or {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": dataset,
        "title": dataset,
        "description": f"Landsat Collection 2 products of the M2M dataset {dataset}",
        "license": "other",
        "links": [],
    }
    west = south = float("inf")
    east = north = float("-inf")
    first = last = None
    values: dict[str, list[Any]] = {name: [] for name in SUMMARY_FIELDS}
    ranges: dict[str, list[float]] = {}
    item_assets: dict[str, Any] = {}
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    columns = ("bbox", "datetime", "summary", "assets", "thumbnail")
    for entry in state.entries(dataset, columns=columns):
        w, s, e, n = entry["bbox"]
        west, south, east, north = min(west, w), min(south, s), max(east, e), max(north, n)
        first = entry["datetime"] if first is None or entry["datetime"] < first else first
        last = entry["datetime"] if last is None or entry["datetime"] > last else last
        summary = entry["summary"]
        for name in SUMMARY_FIELDS:
            value = summary.get(name)
            for v in value if isinstance(value, list) and name != "instruments" else [value]:
                if v is not None and v not in values[name]:
                    values[name].append(v)
        for name in RANGE_FIELDS:
            if name in summary:
                low, high = ranges.get(name, [summary[name], summary[name]])
                ranges[name] = [min(low, summary[name]), max(high, summary[name])]
        for key, definition in entry["assets"].items():
            item_assets.setdefault(key, definition)
        if entry["thumbnail"]:  # the clearest, newest scene makes the collection's preview
            rank = (summary.get("eo:cloud_cover", 100.0), -_epoch(entry["datetime"]))
            if best is None or rank < best[0]:
                best = (rank, entry["thumbnail"])
    collection["extent"] = {
        "spatial": {"bbox": [[west, south, east, north]]},
        "temporal": {"interval": [[first, last]]},
    }
    summaries: dict[str, Any] = {}
    for name in SUMMARY_FIELDS:
        if values[name]:
            summaries[name] = sorted(values[name], key=str) if name != "instruments" else values[name]
    for name in RANGE_FIELDS:
        if name in ranges:
            summaries[name] = {"minimum": ranges[name][0], "maximum": ranges[name][1]}
    collection["summaries"] = summaries
    collection["item_assets"] = dict(sorted(item_assets.items()))
    used = {"eo", "raster", "proj", "view", "sci"}  # the landsat schema applies to Items only
    if any("classification:bitfields" in d for d in item_assets.values()):
        used.add("classification")
    collection["stac_extensions"] = sorted(EXT[e] for e in used)
    here = mirror.collection_path(dataset)
    links = [
        {"rel": "root", "href": relative_href(mirror.catalog_path, here.parent), "type": JSON_TYPE},
        {"rel": "parent", "href": relative_href(mirror.catalog_path, here.parent), "type": JSON_TYPE},
    ]
    links += [
        link
        for link in collection.get("links", [])
        if link.get("rel") not in ("root", "parent", "item", "child")
    ]
    for path in state.paths(dataset):
        links.append(
            {
                "rel": "child",
                "href": relative_href(mirror.path_catalog(dataset, path), here.parent),
                "type": JSON_TYPE,
                "title": f"WRS path {path:03d}",
            }
        )
    collection["links"] = links
    if best is not None:
        thumbnail = best[1]
        collection["assets"] = {
            "thumbnail": {
                "href": relative_href(mirror.root / thumbnail["href"], here.parent),
                "type": thumbnail["type"],
                "title": "Thumbnail of the clearest scene",
                "roles": ["thumbnail"],
            }
        }
    return collection
