"""Self-contained HTML maps of footprints: search results, mirrored items, crop rectangles, the AOI.

The page is one file with inline SVG and a few lines of script, in Web Mercator so the footprints
sit on OpenStreetMap's tiles, which the page links (the only thing it fetches). With ``offline`` it
links nothing and draws on a plain background; a graticule is drawn either way. Each footprint shows
its id, date and cloud cover on hover.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shapely import affinity
from shapely.geometry import MultiPolygon, shape
from shapely.geometry.base import BaseGeometry

from ..catalog.walk import item_files
from ..fileio import write_bytes_atomic
from ..layout import CROP_COLLECTION_PREFIX, Mirror

STYLES = {
    "scene": ("#1f77b4", 0.12),
    "search": ("#1f77b4", 0.12),
    "crop": ("#d62728", 0.25),
    "aoi": ("#2ca02c", 0.08),
}
WIDTH, HEIGHT, MARGIN = 960, 640, 30
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
TILE_PX = 256
MAX_ZOOM = 18  # OpenStreetMap's deepest standard tiles
MAX_LAT = 85.0511287798  # where Web Mercator's square world ends
ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'


def feature(geometry: dict[str, Any] | BaseGeometry, kind: str, label: str, **details: Any) -> dict[str, Any]:
    geom = geometry if isinstance(geometry, BaseGeometry) else shape(geometry)
    return {
        "geometry": geom,
        "kind": kind,
        "label": label,
        "details": {k: v for k, v in details.items() if v is not None},
    }


def _shift(geom: BaseGeometry) -> BaseGeometry:
    """The parts west of the antimeridian moved 360° east, so a view across ±180° is contiguous."""
    parts = [
        p if p.centroid.x >= 0 else affinity.translate(p, xoff=360.0) for p in getattr(geom, "geoms", [geom])
    ]
    return parts[0] if len(parts) == 1 else MultiPolygon([q for p in parts for q in getattr(p, "geoms", [p])])


def across_antimeridian(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Features in a frame that centres them: when shifting the western parts east makes the view
    narrower (footprints at 180°, split there), draw them shifted, with longitudes past 180°."""
    parts = [p for f in features for p in getattr(f["geometry"], "geoms", [f["geometry"]])]
    west = min(p.bounds[0] for p in parts)
    east = max(p.bounds[2] for p in parts)
    shifted = [p if p.centroid.x >= 0 else affinity.translate(p, xoff=360.0) for p in parts]
    shifted_width = max(p.bounds[2] for p in shifted) - min(p.bounds[0] for p in shifted)
    if shifted_width >= east - west:
        return features
    return [{**f, "geometry": _shift(f["geometry"])} for f in features]


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """Web Mercator as a fraction of the world: x 0..1 west to east (past 1 beyond 180°), y 0..1
    north to south, the frame of the slippy-map tile grid."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2
    return (lon + 180.0) / 360.0, y


class _Frame:
    """Where the features' bounds (lon/lat, padded) land on the page, in Web Mercator."""

    def __init__(self, features: list[dict[str, Any]]):
        minx = min(f["geometry"].bounds[0] for f in features)
        miny = min(f["geometry"].bounds[1] for f in features)
        maxx = max(f["geometry"].bounds[2] for f in features)
        maxy = max(f["geometry"].bounds[3] for f in features)
        pad_x, pad_y = max((maxx - minx) * 0.05, 0.01), max((maxy - miny) * 0.05, 0.01)
        self.bounds = (minx - pad_x, max(miny - pad_y, -MAX_LAT), maxx + pad_x, min(maxy + pad_y, MAX_LAT))
        west, north = mercator(self.bounds[0], self.bounds[3])
        east, south = mercator(self.bounds[2], self.bounds[1])
        max_scale = TILE_PX * 2**MAX_ZOOM
        self.scale = min(
            (WIDTH - 2 * MARGIN) / (east - west), (HEIGHT - 2 * MARGIN) / (south - north), max_scale
        )
        # centred: the spare room of the narrower axis is split on both sides
        self.left = (WIDTH - (east - west) * self.scale) / 2 - west * self.scale
        self.top = (HEIGHT - (south - north) * self.scale) / 2 - north * self.scale

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = mercator(lon, lat)
        return self.left + x * self.scale, self.top + y * self.scale

    def tiles(self) -> list[str]:
        """``<image>`` elements for the OpenStreetMap tiles under the page, at the zoom whose
        tiles are nearest their natural size."""
        zoom = max(0, min(MAX_ZOOM, round(math.log2(self.scale / TILE_PX))))
        count = 2**zoom
        size = self.scale / count  # a tile's size on the page
        first_x = math.floor((0 - self.left) / size)
        last_x = math.floor((WIDTH - self.left) / size)
        first_y = max(0, math.floor((0 - self.top) / size))
        last_y = min(count - 1, math.floor((HEIGHT - self.top) / size))
        images = []
        for ty in range(first_y, last_y + 1):
            for tx in range(first_x, last_x + 1):
                url = TILES.format(z=zoom, x=tx % count, y=ty)  # x wraps round the antimeridian
                images.append(
                    f'<image class="tile" href="{url}" x="{self.left + tx * size:.2f}" '
                    f'y="{self.top + ty * size:.2f}" width="{size + 0.5:.2f}" height="{size + 0.5:.2f}" '
                    'preserveAspectRatio="none"/>'
                )
        return images


def _path(geom: BaseGeometry, project) -> str:
    parts = []
    for polygon in getattr(geom, "geoms", [geom]):
        for ring in [polygon.exterior, *polygon.interiors]:
            points = [project(x, y) for x, y in ring.coords]
            parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points) + " Z")
    return " ".join(parts)


def _graticule(bounds: tuple[float, float, float, float], project) -> list[str]:
    minx, miny, maxx, maxy = bounds
    span = max(maxx - minx, maxy - miny)
    step = next((s for s in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30) if span / s <= 10), 45)
    lines = []
    x = math.floor(minx / step) * step
    while x <= maxx:
        (x1, y1), (x2, y2) = project(x, miny), project(x, maxy)
        label = x - 360 if x > 180 else x  # the shifted frame across the antimeridian
        lines.append(
            f'<line class="grid" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
            f'<text class="gridlabel" x="{x1 + 2:.1f}" y="{HEIGHT - 8}">{label:g}°</text>'
        )
        x += step
    y = math.floor(miny / step) * step
    while y <= maxy:
        (x1, y1), (x2, y2) = project(minx, y), project(maxx, y)
        lines.append(
            f'<line class="grid" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
            f'<text class="gridlabel" x="4" y="{y1 - 2:.1f}">{y:g}°</text>'
        )
        y += step
    return lines


def render(features: Iterable[dict[str, Any]], title: str, *, offline: bool = False) -> str:
    """The page; with ``offline`` it links no tiles and needs no network to open."""
    features = [f for f in features if not f["geometry"].is_empty]
    body: list[str] = []
    if features:
        features = across_antimeridian(features)
        frame = _Frame(features)
        project, bounds = frame.project, frame.bounds
        if not offline:
            body += frame.tiles()
        body += _graticule(bounds, project)
        order = {"aoi": 0, "scene": 1, "search": 1, "crop": 2}
        for index, item in enumerate(sorted(features, key=lambda f: order.get(f["kind"], 1))):
            colour, opacity = STYLES.get(item["kind"], STYLES["scene"])
            details = {"id": item["label"], "kind": item["kind"], **item["details"]}
            tip = "\n".join(f"{k}: {v}" for k, v in details.items())
            body.append(
                f'<path class="fp {html.escape(item["kind"])}" d="{_path(item["geometry"], project)}" '
                f'fill="{colour}" fill-opacity="{opacity}" stroke="{colour}" data-i="{index}" '
                f"data-info='{html.escape(json.dumps(details), quote=True)}'>"
                f"<title>{html.escape(tip)}</title></path>"
            )
    counts = {}
    for item in features:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    legend = (
        " · ".join(
            f'<span style="color:{STYLES.get(k, STYLES["scene"])[0]}">■</span> {n} {k}'
            for k, n in sorted(counts.items())
        )
        or "nothing to draw"
    )
    credit = "Basemap: none (offline)." if offline else f"Basemap {ATTRIBUTION}."
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
svg {{ background: #f4f1ea; border: 1px solid #ccc; }}
.grid {{ stroke: #ccc; stroke-width: 0.5; }} .gridlabel {{ font-size: 10px; fill: #888; }}
.fp {{ stroke-width: 1.2; cursor: pointer; }} .fp:hover {{ stroke-width: 3; fill-opacity: 0.35; }}
.credit {{ font-size: 12px; color: #666; }}
#info {{ min-height: 3em; white-space: pre; font-family: monospace; margin-top: 8px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{legend}</p>
<svg id="map" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">
{chr(10).join(body)}
</svg>
<div id="info">Hover a footprint for its id, date and cloud cover.</div>
<p class="credit">{credit}</p>
<script>
for (const p of document.querySelectorAll('path.fp')) {{
  p.addEventListener('mouseenter', () => {{
    const info = JSON.parse(p.dataset.info);
    const lines = Object.entries(info).map(([k, v]) => k + ': ' + v);
    document.getElementById('info').textContent = lines.join('\\n');
  }});
}}
</script>
</body></html>
"""


def write_map(path: Path, features: Iterable[dict[str, Any]], title: str, *, offline: bool = False) -> None:
    write_bytes_atomic(Path(path), render(features, title, offline=offline).encode("utf-8"))


def mirror_features(out: Path | str) -> list[dict[str, Any]]:
    """Items of the mirror's collections and the crop rectangles."""
    from ..storage import is_store_url

    if is_store_url(out):
        return _store_features(str(out))
    found = []
    mirror = Mirror(Path(out))
    for collection_file in [*mirror.scene_collections(), *mirror.crop_collections()]:
        collection = json.loads(collection_file.read_text())
        is_crop = mirror.is_crop_collection(collection_file)
        if is_crop:
            first = next(item_files(collection_file), None)
            if first is not None:
                geometry = json.loads(first.read_text())["geometry"]
                found.append(feature(geometry, "crop", collection["id"], title=collection.get("title")))
            continue
        found += [_scene(json.loads(item_file.read_text())) for item_file in item_files(collection_file)]
    return found


def _scene(item: dict[str, Any]) -> dict[str, Any]:
    """A scene's feature, from its item or a search entry (both have id, geometry, properties)."""
    props = item["properties"]
    return feature(
        item["geometry"],
        "scene",
        item["id"],
        date=props.get("datetime", "")[:10],
        cloud=props.get("eo:cloud_cover"),
        collection=item.get("collection"),
    )


def _store_features(url: str) -> list[dict[str, Any]]:
    """The same for a mirror in an object store, from its collections' items.parquet (the search's
    local copy, brought up to date once and then searched as a folder) instead of an item file
    fetched per scene."""
    from ..offline_search import search, searched_mirror

    mirror, _ = searched_mirror(url)
    found = []
    for collection_id in mirror.collection_parquets():
        if collection_id.startswith(CROP_COLLECTION_PREFIX):  # the rectangle: its first item's
            first = search(mirror.root, collection=collection_id, limit=1, sortby=[("id", False)])
            if first.items:
                collection = json.loads(mirror.collection_file(collection_id).read_text())
                geometry = first.items[0]["geometry"]
                found.append(feature(geometry, "crop", collection_id, title=collection.get("title")))
            continue
        found += [_scene(entry) for entry in search(mirror.root, collection=collection_id).items]
    return found
