"""Items of a mirror, ready for xarray loaders.

odc-stac reads the catalog as pystac writes and reads it. stackstac 0.5 needs
two things pystac takes away: absolute asset hrefs, and ``proj:epsg`` (pystac
migrates items to projection v2 on read and drops it). :func:`items` gives
both back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pystac

from ..property_filter import from_query, matches


def _epsg(code: Any) -> int | None:
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def items(
    path: str | Path,
    collection: str | None = None,
    *,
    bbox: Any = None,
    datetime: str | None = None,
    query: dict[str, Any] | None = None,
    **filters: Any,
) -> pystac.ItemCollection:
    """The catalog's items (optionally of one collection, and with properties equal to ``filters``).

    Keyword filters use property names with ``_`` for ``:``, e.g.
    ``items("mirror", landsat_wrs_path="044", platform="landsat-8")``. ``bbox`` (W,S,E,N: items
    whose geometry intersects it), ``datetime`` (``"2021-01-01/2021-12-31"``, either end may be
    ``..``) and ``query`` (the STAC API query extension, e.g. ``{"eo:cloud_cover": {"lt": 30}}``)
    select through the collections' ``items.parquet`` (the datasets' and the crop stacks') without
    walking the tree; ``query`` alone is applied while walking it.
    """
    root = Path(path)
    if root.is_dir():
        root = root / "catalog.json"
    tree = from_query(query)  # read first: a bad query is an error before anything is loaded
    if bbox is not None or datetime is not None:
        return _selected(root.parent, collection, bbox, datetime, tree, filters)
    catalog = pystac.read_file(str(root.resolve()))
    candidates = (
        item
        for item in catalog.get_items(recursive=True)
        if collection is None or item.collection_id == collection
    )
    return _keep(candidates, filters, tree)


def _keep(candidates: Iterable[pystac.Item], filters: dict[str, Any], tree: dict[str, Any] | None = None):
    """The candidates whose properties equal ``filters`` and pass ``tree``, ready for the loaders."""
    wanted = _wanted(filters)
    selected = []
    for item in candidates:
        if any(item.properties.get(name) != value for name, value in wanted.items()):
            continue
        if tree is not None and not matches(item.properties, tree, field="query"):
            continue
        selected.append(_for_loaders(item))
    return pystac.ItemCollection(selected)


def _wanted(filters: dict[str, Any]) -> dict[str, Any]:
    return {
        name.replace("_", ":", 1)
        if ":" not in name and name.startswith(("landsat_", "eo_", "view_", "proj_", "grid_", "sci_"))
        else name: value
        for name, value in filters.items()
    }


def _selected(out: Path, collection, bbox, datetime, tree, filters) -> pystac.ItemCollection:
    from ..offline_search import search

    start, _, end = (datetime or "..").partition("/")
    found = search(
        out,
        collection=collection,
        bbox=bbox,
        start=None if start in ("", "..") else start,
        end=None if end in ("", "..") else (end or start),
        filter=tree,
    )
    return _keep((pystac.Item.from_file(entry["item"]) for entry in found.items), filters)


def _for_loaders(item: pystac.Item) -> pystac.Item:
    """Absolute asset hrefs and ``proj:epsg`` back, as stackstac needs them."""
    item.make_asset_hrefs_absolute()
    epsg = _epsg(item.properties.get("proj:code"))
    if epsg is not None:
        item.properties["proj:epsg"] = epsg
    for asset in item.assets.values():
        code = _epsg(asset.extra_fields.get("proj:code"))
        if code is not None:
            asset.extra_fields["proj:epsg"] = code
    return item
