"""``OUT/<collection>/items.parquet``: the collection's items as stac-geoparquet, one row per item.

Rewritten by the catalog step whenever the collection's items change, from the state database and
the item files, streaming: items are read a batch at a time and stac-geoparquet spills its batches
to disk to unify their schema, so memory does not grow with the number of items. Rows are sorted by
space (a Z-order curve over the footprint's centre) and then time, so that row groups cover compact
areas and readers can skip most of the file for a spatial query. Asset hrefs are made relative to
the collection folder, where the file lives; relative links are left out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..fileio import relative_href
from ..layout import Mirror
from .state import CatalogState

BATCH = 2_000


def z_order(lon: float, lat: float, bits: int = 16) -> int:
    """Interleaved bits of the quantised lon/lat: nearby places get nearby keys."""
    x = int((min(max(lon, -180.0), 180.0) + 180.0) / 360.0 * ((1 << bits) - 1))
    y = int((min(max(lat, -90.0), 90.0) + 90.0) / 180.0 * ((1 << bits) - 1))
    key = 0
    for bit in range(bits):
        key |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return key


def _centre(bbox: list[float]) -> tuple[float, float]:
    west, south, east, north = bbox[:4]
    if west > east:  # across the antimeridian
        lon = (west + east + 360.0) / 2.0
        lon = lon - 360.0 if lon > 180.0 else lon
    else:
        lon = (west + east) / 2.0
    return lon, (south + north) / 2.0


def _items(
    mirror: Mirror, order: list[tuple[int, str, str]], collection_dir: Path
) -> Iterator[dict[str, Any]]:
    for _, _, rel in order:
        path = mirror.root / rel
        item = orjson.loads(path.read_bytes())
        for asset in item.get("assets", {}).values():
            href = str(asset.get("href", ""))
            if "://" not in href:  # normpath, not resolve(): no file-system call per asset
                asset["href"] = relative_href(Path(os.path.normpath(path.parent / href)), collection_dir)
        item["links"] = [link for link in item.get("links", []) if "://" in str(link.get("href", ""))]
        yield item


def write_items_parquet(mirror: Mirror, state: CatalogState, dataset: str) -> int:
    """(Re)write the dataset's items.parquet; returns its row count (0: the file is removed)."""
    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    target = mirror.items_parquet(dataset)
    order = sorted(
        (z_order(*_centre(e["bbox"])), e["datetime"], e["item"])
        for e in state.entries(dataset, columns=("bbox", "datetime", "item"))
    )
    if not order:
        target.unlink(missing_ok=True)
        return 0
    collection_dir = mirror.collection_path(dataset).parent
    tmp = target.with_name(f".{target.name}.tmp")
    mirror.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=mirror.state_dir, prefix="parquet-") as spill:
        reader = parse_stac_items_to_arrow(
            _items(mirror, order, collection_dir), chunk_size=BATCH, schema="ChunksToDisk", tmpdir=spill
        )
        to_parquet(reader, tmp)
    os.replace(tmp, target)
    return len(order)
