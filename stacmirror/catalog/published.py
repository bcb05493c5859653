"""A catalog in an object store: its scenes found by listing, its files published from the cache.

The catalog writer works on the store mirror's local cache, exactly as on a disk mirror: item
files, thumbnails, parent catalogs and ``items.parquet`` are written there (the rasters never are;
workers read them from the store). :func:`publish` then brings the store in step with the cache:
each catalog file that changed since it was last published is uploaded (one put: an object
appears whole or not at all), in an order that keeps every link resolvable (items and thumbnails,
then parquet, then parent catalogs from the leaves up to ``catalog.json``), and each one the
cache no longer holds is deleted. What was published, and at which size and time, is kept in
``.stacmirror/published.sqlite`` in the cache, so a no-op build uploads nothing.

Searches read a :func:`read_copy` of the store's collections and ``items.parquet``, refreshed by
e-tag, so any machine can query a store mirror it did not build.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_bytes_atomic, write_json_atomic
from ..landsat import current_products
from ..layout import CROPS_DIR, DATASET_DIR, STATE_DIR
from ..storage import StoreMirror, store_error

UPLOADS_IN_FLIGHT = 8  # small objects: many puts in flight hide the store's latency


@dataclass(frozen=True)
class StoreScene:
    dataset: str
    key: str  # the folder's key: <dataset>/<PPP>/<RRR>/<display id>
    files: tuple[tuple[str, int, str], ...]  # (name, size, e-tag) of every object in it


def store_scenes(store: StoreMirror) -> Iterator[StoreScene]:
    """Every scene folder of the store's datasets (one listing per dataset, 1 000 keys per request),
    the folders of superseded products left out as on disk."""
    import obstore

    try:
        top = obstore.list_with_delimiter(store.store, None)
    except Exception as exc:
        raise store_error(store.url, exc, "list it") from None
    datasets = sorted(p.rstrip("/") for p in top["common_prefixes"] if DATASET_DIR.match(p.rstrip("/")))
    for dataset in datasets:
        folders: dict[str, list[tuple[str, int, str]]] = {}
        for batch in obstore.list(store.store, prefix=f"{dataset}/"):
            for meta in batch:
                parts = meta["path"].split("/")
                if len(parts) != 5 or not parts[1].isdigit() or parts[4].startswith("."):
                    continue  # not <dataset>/<PPP>/<RRR>/<id>/<file> (items.parquet, catalogs)
                folder = "/".join(parts[:4])
                folders.setdefault(folder, []).append((parts[4], meta["size"], meta.get("e_tag") or ""))
        rows: dict[str, list[str]] = {}
        for folder in folders:
            row, _, name = folder.rpartition("/")
            rows.setdefault(row, []).append(name)
        for row in sorted(rows):
            for name in current_products(sorted(rows[row])):
                key = f"{row}/{name}"
                yield StoreScene(dataset, key, tuple(sorted(folders[key])))


def _rank(rel: str) -> tuple[int, int, str]:
    """Upload order: leaves first (items, thumbnails), then parquet, then parents deepest first."""
    name = rel.rsplit("/", 1)[-1]
    if name == "catalog.json" or name == "collection.json" or name.startswith("catalog-"):
        return (2, -rel.count("/"), rel)
    if ".parquet" in rel:
        return (1, 0, rel)
    return (0, 0, rel)


def _cache_files(root: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .stacmirror: the state, published apart
        for name in files:
            if name.startswith("."):  # an atomic write's temporary file
                continue
            path = os.path.join(folder, name)
            stat = os.stat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def publish(store: StoreMirror) -> tuple[int, int]:
    """Upload the cache's changed catalog files and delete the ones it dropped: (uploaded, deleted)."""
    import obstore

    root = store.cache
    (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(store.local.published_db_path)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS published (rel TEXT PRIMARY KEY, size INT, mtime INT)")
        known = {
            rel: (size, mtime) for rel, size, mtime in db.execute("SELECT rel, size, mtime FROM published")
        }
        current = _cache_files(root)
        changed = sorted((rel for rel, seen in current.items() if known.get(rel) != seen), key=_rank)
        gone = sorted(rel for rel in known if rel not in current)

        def put(rel: str) -> str:
            obstore.put(store.store, rel, (root / rel).read_bytes())
            return rel

        try:
            with ThreadPoolExecutor(UPLOADS_IN_FLIGHT) as pool:
                for phase in (0, 1, 2):
                    batch = [rel for rel in changed if _rank(rel)[0] == phase]
                    for rel in pool.map(put, batch):
                        db.execute("INSERT OR REPLACE INTO published VALUES (?, ?, ?)", (rel, *current[rel]))
                    db.commit()
            for start in range(0, len(gone), 1000):
                chunk = gone[start : start + 1000]
                obstore.delete(store.store, chunk)
                db.executemany("DELETE FROM published WHERE rel = ?", [(rel,) for rel in chunk])
                db.commit()
        except Exception as exc:
            raise store_error(store.url, exc, "write to it") from None
        return len(changed), len(gone)
    finally:
        db.close()


def read_copy(store: StoreMirror) -> Path:
    """A local copy of what a search reads from the store: ``catalog.json``, the collections and
    their ``items.parquet`` files. Only objects whose e-tag changed since the last copy are
    fetched, so a repeated query costs a few listings."""
    import obstore

    root = store.local.read_copy_dir
    manifest = root / ".etags.json"
    try:
        known = json.loads(manifest.read_text())
    except (OSError, ValueError):
        known = {}
    wanted: dict[str, str] = {}

    def listed(prefix: str | None) -> tuple[list[str], list[dict]]:
        found = obstore.list_with_delimiter(store.store, prefix)
        return [p.rstrip("/") for p in found["common_prefixes"]], found["objects"]

    try:
        folders, objects = listed(None)
        collections = [f for f in folders if DATASET_DIR.match(f)]
        if CROPS_DIR in folders:
            collections += listed(f"{CROPS_DIR}/")[0]
        for folder in [None, *collections]:
            for meta in objects if folder is None else listed(f"{folder}/")[1]:
                if meta["path"].rsplit("/", 1)[-1] in ("catalog.json", "collection.json", "items.parquet"):
                    wanted[meta["path"]] = meta.get("e_tag") or str(meta["size"])
            if folder is not None:
                for batch in obstore.list(store.store, prefix=f"{folder}/items.parquet/"):
                    wanted.update({m["path"]: m.get("e_tag") or str(m["size"]) for m in batch})
        for key, etag in wanted.items():
            if known.get(key) != etag or not (root / key).is_file():
                write_bytes_atomic(root / key, bytes(obstore.get(store.store, key).bytes()), durable=False)
    except Exception as exc:
        raise store_error(store.url, exc, "read it") from None
    for key in set(known) - set(wanted):
        (root / key).unlink(missing_ok=True)
    write_json_atomic(manifest, wanted)
    return root


def push_catalog_state(store: StoreMirror) -> None:
    """Upload the catalog's state and the list of what was published, after a build: another
    machine then takes both up instead of rebuilding every item and forgetting the crops."""
    import obstore

    local = store.local
    try:
        obstore.put(store.store, local.rel(local.published_db_path), local.published_db_path.read_bytes())
        result = obstore.put(
            store.store, local.rel(local.catalog_db_path), local.catalog_db_path.read_bytes()
        )
    except Exception as exc:
        raise store_error(store.url, exc, "write to it") from None
    write_json_atomic(local.catalog_synced_path, {"url": store.url, "etag": result.get("e_tag")})


def pull_catalog_state(store: StoreMirror) -> int:
    """Bring the cache's catalog in step with the store's, when another machine built it since
    (or this cache is new): the state, and every catalog file published, are fetched; catalog files
    the store no longer lists leave the cache. Returns how many files were fetched (0: the cache
    was current, or the store has no catalog yet)."""
    import obstore

    local = store.local
    state_key, published_key = local.rel(local.catalog_db_path), local.rel(local.published_db_path)
    try:
        meta = obstore.head(store.store, state_key)
    except FileNotFoundError:
        return 0
    except Exception as exc:
        raise store_error(store.url, exc, "read it") from None
    try:
        synced = json.loads(local.catalog_synced_path.read_text())
    except (OSError, ValueError):
        synced = {}
    if synced.get("etag") == meta.get("e_tag") and local.catalog_db_path.exists():
        return 0
    try:
        listing = bytes(obstore.get(store.store, published_key).bytes())
        catalog_state = bytes(obstore.get(store.store, state_key).bytes())
    except Exception as exc:
        raise store_error(store.url, exc, "read it") from None
    for path in (local.published_db_path, local.catalog_db_path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    write_bytes_atomic(local.published_db_path, listing)
    db = sqlite3.connect(local.published_db_path)
    try:
        wanted = [rel for (rel,) in db.execute("SELECT rel FROM published")]
        root = store.cache

        def fetch(rel: str) -> tuple[str, int, int]:
            write_bytes_atomic(root / rel, bytes(obstore.get(store.store, rel).bytes()), durable=False)
            stat = os.stat(root / rel)
            return rel, stat.st_size, stat.st_mtime_ns

        try:
            with ThreadPoolExecutor(UPLOADS_IN_FLIGHT) as pool:
                fetched = list(pool.map(fetch, wanted))
        except Exception as exc:
            raise store_error(store.url, exc, "read it") from None
        db.executemany(
            "INSERT OR REPLACE INTO published VALUES (?, ?, ?)", [(r, s, m) for r, s, m in fetched]
        )
        db.commit()
    finally:
        db.close()
    for rel in set(_cache_files(store.cache)) - set(wanted):  # a stale cache's leftovers
        (store.cache / rel).unlink()
    write_bytes_atomic(local.catalog_db_path, catalog_state)
    write_json_atomic(local.catalog_synced_path, {"url": store.url, "etag": meta.get("e_tag")})
    return len(wanted)
