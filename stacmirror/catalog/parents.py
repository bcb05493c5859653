"""The catalog's parents, written from the state database: the root catalog, one collection per
dataset, and its WRS path and row catalogs (at most ``MAX_LINKS`` links a node; rows past that are
split by year, and their items repointed). Collections are summarised in one streaming pass over
their items' state rows, so memory does not grow with the number of items. Only nodes under
changed path/rows are rewritten, and a file is rewritten only when its content changes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ..fileio import relative_href, write_json_atomic
from ..layout import Mirror
from .constants import EXT, STAC_VERSION
from .parquet import partitions_missing, remove_items_parquet, write_items_parquet
from .state import CatalogState
from .templates import load_template

MAX_LINKS = 1_000  # per node: what STAC Browser and people can page through
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
JSON_TYPE = "application/json"


def write_if_changed(path: Path, data: dict[str, Any]) -> bool:
    if path.exists():
        try:
            if json.loads(path.read_text()) == data:
                return False
        except ValueError:
            pass
    write_json_atomic(path, data)
    return True


def write_parents(mirror: Mirror, state: CatalogState, dirty: set[tuple[str, int, int]], result: Any) -> None:
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
    changed = {d for d, _, _ in dirty}
    for dataset in datasets:
        collection_path = mirror.collection_path(dataset)
        if dataset in changed:
            result.parents_written += write_if_changed(collection_path, _collection(mirror, state, dataset))
        # also when a run died between its items and the parquet (items are still pending), or a
        # partition file went missing
        if dataset in changed or state.parquet_pending(dataset) or partitions_missing(mirror, state, dataset):
            write_items_parquet(mirror, state, dataset)
            result.parents_written += 1
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
            remove_items_parquet(mirror.items_parquet(dataset_dir.name))
    result.parents_written += write_if_changed(mirror.catalog_path, root)


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
            written += write_if_changed(
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
    return written + write_if_changed(
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
    return write_if_changed(node, _node(f"{dataset}-{path:03d}", title, f"{len(rows)} WRS row(s)", links))


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
