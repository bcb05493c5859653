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

import orjson
import pystac

from ..errors import NotACatalog
from ..property_filter import from_query, matches
from ..storage import is_store_url


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
    tree = from_query(query)  # read first: a bad query is an error before anything is loaded
    if is_store_url(path):  # a store is always read through its items.parquet (no tree walk)
        return _selected(str(path), collection, bbox, datetime, tree, filters)
    root = Path(path)
    if root.is_dir():
        root = root / "catalog.json"
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


def _selected(out: Path | str, collection, bbox, datetime, tree, filters) -> pystac.ItemCollection:
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
    hrefs = [entry["item"] for entry in found.items]
    if isinstance(out, str):
        return _keep(_store_items(out, hrefs), filters)
    return _keep((pystac.Item.from_file(href) for href in hrefs), filters)


def _store_items(url: str, hrefs: list[str]) -> Iterable[pystac.Item]:
    """Items read from a store (a GET each, 16 in flight), with their hrefs in the store, so that
    their assets become ``s3://`` URLs the loaders open through GDAL (see ``gdal_env``)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..storage import StoreMirror
    from .sources import store_of

    store = StoreMirror(url.rstrip("/"), store_of(url))  # opened and checked by the search already
    # the root, read once and set on every item: pystac resolves it when an item is serialised
    # (stackstac does), and its own reader cannot open an s3:// href
    data = store.get_bytes("catalog.json")
    if data is None:
        raise NotACatalog(f"{url} has no catalog.json")
    root = pystac.Catalog.from_dict(orjson.loads(data), href=f"{store.url}/catalog.json")

    def read(href: str) -> pystac.Item:
        data = store.get_bytes(href[len(store.url) + 1 :])
        if data is None:
            raise NotACatalog(f"{href}: the item is listed in items.parquet but missing from the store")
        item = pystac.Item.from_dict(orjson.loads(data), preserve_dict=False)
        item.set_self_href(href)
        item.set_root(root)
        return item

    with ThreadPoolExecutor(16) as pool:
        yield from pool.map(read, hrefs)


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
