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
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .. import events as ev
from ..executors import check_workers, executor_for
from ..fileio import relative_href, sync_all, write_bytes_atomic, write_json_atomic
from ..landsat import ProductId
from ..layout import Mirror
from ..ledger import Ledger
from ..storage import StoreMirror, is_store_url
from .parents import JSON_TYPE, RANGE_FIELDS, SUMMARY_FIELDS, write_parents
from .published import publish, pull_catalog_state, push_catalog_state, store_scenes
from .stac import GENERATED_SUFFIXES, ItemResult, build_item, build_store_item, predecessor_links
from .state import CatalogState

SMALL_BUILD = 8  # at most this many items to build: no pool
COMMIT_EVERY = 500  # items between syncing their files and recording them in the state
PER_FILE_FIELDS = ("href", "proj:shape", "proj:transform", "file:size", "file:checksum")


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
    folder: Path  # where the writer writes the item (in a store mirror: the cache)
    signature: list[Any]
    listing: list[tuple[str, int]] | None = None  # a store scene's files (name, size): read from the store


def signature(folder: Path | str) -> list[list[Any]]:
    """What the item depends on: the product files' names, sizes and modification times."""
    return _listing(str(folder))[0]


def _listing(folder: str) -> tuple[list[list[Any]], bool]:
    """The folder's signature, and whether its item file is there (one directory read for both)."""
    name = os.path.basename(folder)
    own = _own_files(name)
    item = f"{name}.json"
    has_item = False
    entries = []
    with os.scandir(folder) as found:
        for entry in found:
            if entry.name in own or entry.name.startswith(".") or not entry.is_file():
                has_item = has_item or (entry.name == item and entry.is_file())
                continue
            stat = entry.stat()
            entries.append([entry.name, stat.st_size, stat.st_mtime_ns])
    return sorted(entries), has_item


def _own_files(name: str) -> set[str]:
    """The files the catalog writes into a scene folder: the item, and a thumbnail it rendered."""
    return {f"{name}.json", *(f"{name}_{s}" for s in GENERATED_SUFFIXES)}


def ledger_checksums(ledger: Ledger | None, mirror: Mirror, folder: Path) -> dict[str, str]:
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
    row: str | None = None
    known_in_row: dict[str, tuple[str, str]] = {}
    for dataset, folder, key in mirror.scene_folder_keys():
        seen.add(key)
        sig, has_item = _listing(folder)
        if not force and (row is None or not key.startswith(row)):  # a new row folder: its state at once
            row = key[: key.rindex("/") + 1]
            known_in_row = state.signatures_under(row)
        known = None if force else known_in_row.get(key)
        if known is not None and orjson.loads(known[0]) == sig:
            # the item the state names: normally the one in the folder, seen by the listing
            named = known[1] == f"{key}/{os.path.basename(folder)}.json"
            if has_item if named else os.path.exists(os.path.join(root, known[1])):
                result.unchanged += 1
                continue
        yield _Task(key, dataset, Path(folder), sig)


def _scan_store(
    store: StoreMirror, state: CatalogState, result: CatalogResult, seen: set[str], force: bool
) -> Iterator[_Task]:
    """The same for a store: its listing stands in for the folders, e-tags for modification times."""
    root = str(store.cache)
    for scene in store_scenes(store):
        seen.add(scene.key)
        own = _own_files(scene.key.rsplit("/", 1)[-1])
        files = [f for f in scene.files if f[0] not in own]
        sig = [list(f) for f in files]
        known = None if force else state.signature(scene.key)
        if known is not None and known[0] == sig and os.path.exists(os.path.join(root, known[1])):
            result.unchanged += 1
            continue
        listing = [(name, size) for name, size, _ in scene.files]
        yield _Task(scene.key, scene.dataset, Path(root, scene.key), sig, listing)


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

    ``out`` may be a store URL (``s3://bucket/prefix``): the scenes are found by listing the store,
    the workers read the rasters' headers and masks from it (no shared disk), the catalog is
    written in the local cache and then published to the store, all under the store's lock.
    """
    if is_store_url(out):
        emit = ev.emitter(on_event)
        store = StoreMirror.open(str(out))
        store.acquire()
        try:
            store.pull_state()
            pulled = pull_catalog_state(store)  # another machine built it since: take its state up
            if pulled:
                emit(ev.Note(f"fetched the store's catalog state ({pulled} file(s))", "info"))
            result = _build(store.local, store, force, on_event, workers, executor, dask)
            uploaded, deleted = publish(store)
            push_catalog_state(store)
            emit(ev.Note(f"published {uploaded} catalog file(s), deleted {deleted}", "info"))
            return result
        finally:
            store.release()
    return _build(Mirror(Path(out)), None, force, on_event, workers, executor, dask)


def _build(
    mirror: Mirror,
    store: StoreMirror | None,
    force: bool,
    on_event: ev.EventHandler | None,
    workers: int | None,
    executor: Executor | None,
    dask: str | None,
) -> CatalogResult:
    started = time.monotonic()
    check_workers(workers)
    emit = ev.emitter(on_event)
    result = CatalogResult()
    mirror.legacy_catalog_state_path.unlink(missing_ok=True)  # replaced by the state database
    state = CatalogState(mirror, fresh=force)
    ledger = Ledger.open_existing(mirror)
    seen: set[str] = set()
    dirty: set[tuple[str, int, int]] = set()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    def submit(pool: Executor, task: _Task) -> Future[Any]:
        checksums = ledger_checksums(ledger, mirror, task.folder)
        if store is not None:  # the worker reads the scene from the store, by key
            return pool.submit(build_store_item, store.url, task.key, task.listing, task.dataset, checksums)
        return pool.submit(build_item, str(task.folder), task.dataset, checksums)

    tasks = (
        _scan_store(store, state, result, seen, force) if store else _scan(mirror, state, result, seen, force)
    )
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
                replaced = ledger.predecessors(built.item["id"]) if ledger is not None else []
                node = _write_item(mirror, state, task, built, created, replaced)
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
        write_parents(mirror, state, dirty, result)
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


def _write_item(
    mirror: Mirror,
    state: CatalogState,
    task: _Task,
    built: ItemResult,
    created: str,
    replaced: list[tuple[str, str]],
):
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
        *predecessor_links(replaced),
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
