"""Build (or bring up to date) the static STAC catalog of a mirror, from disk and the ledger.

Layout (relative links and hrefs throughout, so the folder can move)::

    OUT/catalog.json
    OUT/<dataset>/collection.json
    OUT/<dataset>/<PPP>/<RRR>/<id>/<id>.json      (next to its assets: hrefs are ./<file>)

A scene is rebuilt only when its files changed (names, sizes and mtimes, kept
in ``OUT/.stacmirror/catalog-state.json``): re-running on an unchanged mirror
opens no raster and rewrites no file. Parents are rewritten only when their
content changes. A scene that cannot be catalogued is reported and skipped;
the others are still written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import events as ev
from ..fileio import relative_href, write_json_atomic
from ..layout import Mirror
from ..ledger import Ledger
from .constants import EXT, STAC_VERSION
from .stac import GENERATED_SUFFIXES, SceneError, create_item
from .templates import load_template

STATE_VERSION = 1
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


@dataclass
class CatalogResult:
    """What a catalog build did; ``to_dict()`` is what ``catalog --json`` prints."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    rasters_opened: int = 0
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


def signature(folder: Path) -> list[list[Any]]:
    """What the item depends on: the product files' names, sizes and modification times."""
    own = {f"{folder.name}.json"} | {f"{folder.name}_{s}" for s in GENERATED_SUFFIXES}
    entries = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or entry.name in own or not entry.is_file():
            continue
        stat = entry.stat()
        entries.append([entry.name, stat.st_size, stat.st_mtime_ns])
    return sorted(entries)


class _Checksums:
    """sha256 values the ledger verified at download time, trusted while size and mtime agree."""

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self.ledger = Ledger.open_existing(mirror)

    def __call__(self, path: Path) -> str | None:
        if self.ledger is None:
            return None
        record = self.ledger.file(self.mirror.rel(path))
        if record is None or record.state != "done" or record.size != path.stat().st_size:
            return None
        return record.sha256

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()


def _write_if_changed(path: Path, data: dict[str, Any]) -> bool:
    if path.exists():
        try:
            if json.loads(path.read_text()) == data:
                return False
        except ValueError:
            pass
    write_json_atomic(path, data)
    return True


def _asset_definition(asset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in asset.items() if k not in PER_FILE_FIELDS}


def build_catalog(
    out: Path | str, *, force: bool = False, on_event: ev.EventHandler | None = None
) -> CatalogResult:
    """Bring ``OUT/catalog.json`` and everything below it up to date, from disk and the ledger."""
    started = time.monotonic()
    emit = ev.emitter(on_event)
    mirror = Mirror(Path(out))
    out = mirror.root
    result = CatalogResult()
    state_path = mirror.catalog_state_path
    state: dict[str, Any] = {"version": STATE_VERSION, "scenes": {}}
    if state_path.exists() and not force:
        try:
            loaded = json.loads(state_path.read_text())
            if loaded.get("version") == STATE_VERSION:
                state = loaded
        except ValueError:
            pass
    scenes: dict[str, Any] = state["scenes"]
    checksums = _Checksums(mirror)
    seen: set[str] = set()
    try:
        for dataset, folder in mirror.scene_folders():
            key = mirror.rel(folder)
            seen.add(key)
            item_path = mirror.item_path(folder)
            sig = signature(folder)
            entry = scenes.get(key)
            if entry and entry.get("signature") == sig and item_path.exists():
                result.unchanged += 1
                continue
            try:
                built = create_item(folder, dataset, checksums)
            except SceneError as exc:
                result.errors.append(str(exc))
                emit(ev.ItemFailed(key, str(exc)))
                if entry:
                    item_path.unlink(missing_ok=True)
                    scenes.pop(key, None)
                continue
            result.rasters_opened += sum(1 for a in built.item["assets"].values() if "proj:shape" in a)
            item = built.item
            collection_path = mirror.collection_path(dataset)
            item["links"] = [
                {
                    "rel": "root",
                    "href": relative_href(mirror.catalog_path, folder),
                    "type": "application/json",
                    "title": "Landsat Collection 2 mirror",
                },
                {
                    "rel": "parent",
                    "href": relative_href(collection_path, folder),
                    "type": "application/json",
                },
                {
                    "rel": "collection",
                    "href": relative_href(collection_path, folder),
                    "type": "application/json",
                },
                *item["links"],
            ]
            item["properties"]["created"] = (
                dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            )
            write_json_atomic(item_path, item)
            result.written += 1
            emit(ev.ItemWritten(item["id"], mirror.rel(item_path)))
            props = item["properties"]
            scenes[key] = {
                "signature": signature(folder),  # after a generated thumbnail, if any, was written
                "dataset": dataset,
                "id": item["id"],
                "item": mirror.rel(item_path),
                "bbox": item["bbox"],
                "datetime": props["datetime"],
                "summary": {f: props[f] for f in SUMMARY_FIELDS + RANGE_FIELDS if f in props},
                "assets": {k: _asset_definition(a) for k, a in item["assets"].items()},
                "footprint": built.native_wkt,
                "footprint_method": built.footprint_method,
            }
        for key in [k for k in scenes if k not in seen]:
            (out / scenes[key]["item"]).unlink(missing_ok=True)
            del scenes[key]
            result.removed += 1
        _write_parents(mirror, scenes, result)
        _write_if_changed(state_path, state)
    finally:
        checksums.close()
    result.elapsed = time.monotonic() - started
    emit(ev.CatalogDone(result.written, result.unchanged, result.removed, len(result.errors)))
    return result


def _write_parents(mirror: Mirror, scenes: dict[str, Any], result: CatalogResult) -> None:
    out = mirror.root
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for entry in scenes.values():
        by_dataset.setdefault(entry["dataset"], []).append(entry)
    root = load_template("catalog.json", required=True)
    root["links"] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json", "title": root["title"]}
    ]
    for dataset in sorted(by_dataset):
        collection = _collection(mirror, dataset, by_dataset[dataset])
        _write_if_changed(mirror.collection_path(dataset), collection)
        root["links"].append(
            {
                "rel": "child",
                "href": f"./{dataset}/collection.json",
                "type": "application/json",
                "title": collection["title"],
            }
        )
        result.collections.append(dataset)
    for crop_collection in mirror.crop_collections():  # written by `stacmirror crop`
        title = json.loads(crop_collection.read_text()).get("title", crop_collection.parent.name)
        root["links"].append(
            {
                "rel": "child",
                "href": relative_href(crop_collection, out),
                "type": "application/json",
                "title": title,
            }
        )
    for dataset_dir in mirror.dataset_dirs():
        if dataset_dir.name not in by_dataset:
            mirror.collection_path(dataset_dir.name).unlink(missing_ok=True)
    _write_if_changed(mirror.catalog_path, root)


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _collection(mirror: Mirror, dataset: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    out = mirror.root
    collection = load_template(f"collections/{dataset}.json")
    if collection is None:
        collection = {
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "id": dataset,
            "title": dataset,
            "description": f"Landsat Collection 2 products of the M2M dataset {dataset}",
            "license": "other",
            "links": [],
        }
    entries = sorted(entries, key=lambda e: e["item"])
    west = min(e["bbox"][0] for e in entries)
    south = min(e["bbox"][1] for e in entries)
    east = max(e["bbox"][2] for e in entries)
    north = max(e["bbox"][3] for e in entries)
    times = sorted(e["datetime"] for e in entries)
    collection["extent"] = {
        "spatial": {"bbox": [[west, south, east, north]]},
        "temporal": {"interval": [[times[0], times[-1]]]},
    }
    summaries: dict[str, Any] = {}
    for name in SUMMARY_FIELDS:
        values: list[Any] = []
        for entry in entries:
            value = entry["summary"].get(name)
            for v in value if isinstance(value, list) and name != "instruments" else [value]:
                if v is not None and v not in values:
                    values.append(v)
        if values:
            summaries[name] = sorted(values, key=str) if name != "instruments" else values
    for name in RANGE_FIELDS:
        values = [e["summary"][name] for e in entries if name in e["summary"]]
        if values:
            summaries[name] = {"minimum": min(values), "maximum": max(values)}
    collection["summaries"] = summaries
    item_assets: dict[str, Any] = {}
    for entry in entries:
        for key, definition in entry["assets"].items():
            item_assets.setdefault(key, definition)
    collection["item_assets"] = dict(sorted(item_assets.items()))
    used = {"eo", "raster", "proj", "view", "sci"}  # the landsat schema applies to Items only
    if any("classification:bitfields" in d for d in item_assets.values()):
        used.add("classification")
    collection["stac_extensions"] = sorted(EXT[e] for e in used)
    dataset_dir = mirror.collection_path(dataset).parent
    links = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    links += [
        link for link in collection.get("links", []) if link.get("rel") not in ("root", "parent", "item")
    ]
    for entry in entries:
        links.append(
            {
                "rel": "item",
                "href": relative_href(out / entry["item"], dataset_dir),
                "type": "application/geo+json",
                "title": entry["id"],
            }
        )
    collection["links"] = links
    with_thumbnail = [e for e in entries if "thumbnail" in e["assets"]]
    # the clearest, newest scene makes the collection's preview
    thumb = min(
        with_thumbnail,
        key=lambda e: (e["summary"].get("eo:cloud_cover", 100.0), -_epoch(e["datetime"])),
        default=None,
    )
    if thumb is not None:
        item_dir = (out / thumb["item"]).parent
        item = json.loads((out / thumb["item"]).read_text())
        href = item["assets"]["thumbnail"]["href"]
        collection["assets"] = {
            "thumbnail": {
                "href": relative_href(item_dir / href, dataset_dir),
                "type": item["assets"]["thumbnail"]["type"],
                "title": "Thumbnail of the clearest scene",
                "roles": ["thumbnail"],
            }
        }
    return collection
