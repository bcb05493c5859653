"""Items of a mirror, ready for xarray loaders.

odc-stac reads the catalog as pystac writes and reads it. stackstac 0.5 needs
two things pystac takes away: absolute asset hrefs, and ``proj:epsg`` (pystac
migrates items to projection v2 on read and drops it). :func:`items` gives
both back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac


def _epsg(code: Any) -> int | None:
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def items(path: str | Path, collection: str | None = None, **filters: Any) -> pystac.ItemCollection:
    """The catalog's items (optionally of one collection, and with properties equal to ``filters``).

    Keyword filters use property names with ``_`` for ``:``, e.g.
    ``items("mirror", landsat_wrs_path="044", platform="landsat-8")``.
    """
    root = Path(path)
    if root.is_dir():
        root = root / "catalog.json"
    catalog = pystac.read_file(str(root.resolve()))
    wanted = {
        name.replace("_", ":", 1)
        if ":" not in name and name.startswith(("landsat_", "eo_", "view_", "proj_", "grid_", "sci_"))
        else name: value
        for name, value in filters.items()
    }
    selected = []
    for item in catalog.get_items(recursive=True):
        if collection is not None and item.collection_id != collection:
            continue
        if any(item.properties.get(name) != value for name, value in wanted.items()):
            continue
        item.make_asset_hrefs_absolute()
        epsg = _epsg(item.properties.get("proj:code"))
        if epsg is not None:
            item.properties["proj:epsg"] = epsg
        for asset in item.assets.values():
            code = _epsg(asset.extra_fields.get("proj:code"))
            if code is not None:
                asset.extra_fields["proj:epsg"] = code
        selected.append(item)
    return pystac.ItemCollection(selected)
