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
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import relative_href, write_json_atomic
from ..harvest.layout import STATE_DIR
from ..harvest.ledger import Ledger
from .constants import EXT, STAC_VERSION
from .stac import GENERATED_SUFFIXES, SceneError, create_item

DATASET_DIR = re.compile(r"^landsat_[a-z]+_c2_l[12]$")
STATE_FILE = "catalog-state.json"
STATE_VERSION = 1
TEMPLATES = Path(__file__).resolve().parents[2] / "catalog-template"
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
class BuildResult:
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    rasters_opened: int = 0
    elapsed: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "itemsWritten": self.written,
            "itemsUnchanged": self.unchanged,
            "itemsRemoved": self.removed,
            "collections": self.collections,
            "errors": self.errors,
            "elapsedSeconds": round(self.elapsed, 3),
        }


def load_template(name: str) -> dict[str, Any]:
    path = TEMPLATES / name
    if not path.exists():
        raise FileNotFoundError(
            f"catalog template {path} is missing (run stacmirror from its source checkout)"
        )
    return json.loads(path.read_text())


def scene_folders(out: Path) -> Iterator[tuple[str, Path]]:
    """(dataset, folder) for every folder at ``OUT/<dataset>/<PPP>/<RRR>/<name>``."""
    for dataset_dir in sorted(p for p in out.iterdir() if p.is_dir() and DATASET_DIR.match(p.name)):
        for path_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for row_dir in sorted(p for p in path_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for folder in sorted(
                    p for p in row_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                ):
                    yield dataset_dir.name, folder


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

    def __init__(self, out: Path):
        self.out = out
        self.ledger = Ledger.open_existing(out)

    def __call__(self, path: Path) -> str | None:
        if self.ledger is None:
            return None
        record = self.ledger.file(str(path.relative_to(self.out)))
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


def build_catalog(out: Path, *, reporter: Any = None, force: bool = False) -> BuildResult:
    """Bring ``OUT/catalog.json`` and everything below it up to date."""
    started = time.monotonic()
    out = Path(out)
    result = BuildResult()
    state_path = out / STATE_DIR / STATE_FILE
    state: dict[str, Any] = {"version": STATE_VERSION, "scenes": {}}
    if state_path.exists() and not force:
        try:
            loaded = json.loads(state_path.read_text())
            if loaded.get("version") == STATE_VERSION:
                state = loaded
        except ValueError:
            pass
    scenes: dict[str, Any] = state["scenes"]
    checksums = _Checksums(out)
    seen: set[str] = set()
    try:
        for dataset, folder in scene_folders(out):
            key = str(folder.relative_to(out))
            seen.add(key)
            item_path = folder / f"{folder.name}.json"
            sig = signature(folder)
            entry = scenes.get(key)
            if entry and entry.get("signature") == sig and item_path.exists():
                result.unchanged += 1
                continue
            try:
                built = create_item(folder, dataset, checksums)
            except SceneError as exc:
                result.errors.append(str(exc))
                if reporter:
                    reporter.note(f"catalog: {exc}")
                if entry:
                    item_path.unlink(missing_ok=True)
                    scenes.pop(key, None)
                continue
            result.rasters_opened += sum(1 for a in built.item["assets"].values() if "proj:shape" in a)
            item = built.item
            dataset_dir = out / dataset
            item["links"] = [
                {
                    "rel": "root",
                    "href": relative_href(out / "catalog.json", folder),
                    "type": "application/json",
                    "title": "Landsat Collection 2 mirror",
                },
                {
                    "rel": "parent",
                    "href": relative_href(dataset_dir / "collection.json", folder),
                    "type": "application/json",
                },
                {
                    "rel": "collection",
                    "href": relative_href(dataset_dir / "collection.json", folder),
                    "type": "application/json",
                },
                *item["links"],
            ]
            item["properties"]["created"] = (
                dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            )
            write_json_atomic(item_path, item)
            result.written += 1
            props = item["properties"]
            scenes[key] = {
                "signature": signature(folder),  # after a generated thumbnail, if any, was written
                "dataset": dataset,
                "id": item["id"],
                "item": str(item_path.relative_to(out)),
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
        _write_parents(out, scenes, result)
        _write_if_changed(state_path, state)
    finally:
        checksums.close()
    result.elapsed = time.monotonic() - started
    return result


def _write_parents(out: Path, scenes: dict[str, Any], result: BuildResult) -> None:
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for entry in scenes.values():
        by_dataset.setdefault(entry["dataset"], []).append(entry)
    root = load_template("catalog.json")
    root["links"] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json", "title": root["title"]}
    ]
    for dataset in sorted(by_dataset):
        collection = _collection(out, dataset, by_dataset[dataset])
        _write_if_changed(out / dataset / "collection.json", collection)
        root["links"].append(
            {
                "rel": "child",
                "href": f"./{dataset}/collection.json",
                "type": "application/json",
                "title": collection["title"],
            }
        )
        result.collections.append(dataset)
    for crop_collection in sorted((out / "crops").glob("*/collection.json")):  # written by `stacmirror crop`
        title = json.loads(crop_collection.read_text()).get("title", crop_collection.parent.name)
        root["links"].append(
            {
                "rel": "child",
                "href": relative_href(crop_collection, out),
                "type": "application/json",
                "title": title,
            }
        )
    for dataset_dir in out.iterdir():
        if (
            dataset_dir.is_dir()
            and DATASET_DIR.match(dataset_dir.name)
            and dataset_dir.name not in by_dataset
        ):
            (dataset_dir / "collection.json").unlink(missing_ok=True)
    _write_if_changed(out / "catalog.json", root)


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _collection(out: Path, dataset: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        collection = load_template(f"collections/{dataset}.json")
    except FileNotFoundError:
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
    dataset_dir = out / dataset
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
