"""Item geometry: the imaged area, not the product grid rectangle.

In order of preference:

1. the valid-data mask of a raster on disk (QA_PIXEL's fill bit, else a band's
   nodata), read at overview resolution — works for every sensor;
2. the imaged-area corners of ``ANG.txt`` (OLI/TIRS only), taken through the
   scene's UTM grid (line/sample -> metres -> lon/lat);
3. the MTL's grid corners (the full grid, collar included: the coarsest).

Polygons are densified in the projected CRS before reprojection, split at the
antimeridian, wound counter-clockwise and rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import shapes
from rasterio.warp import transform_geom
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..geometry import split_antimeridian, tidy
from .mtl import Groups, numbers, parse_ang_text

OVERVIEW_SIZE = 400  # pixels on the long side of the mask that is polygonised


@dataclass(frozen=True)
class Footprint:
    geometry: BaseGeometry  # lon/lat
    native: BaseGeometry  # in the scene's CRS (for the centroid and for crop stacks)
    epsg: int
    method: str  # "mask", "ang" or "mtl"


def _to_lonlat(native: BaseGeometry, epsg: int) -> BaseGeometry:
    longest = max(native.bounds[2] - native.bounds[0], native.bounds[3] - native.bounds[1])
    dense = native.segmentize(max(longest / 8.0, 1.0))  # UTM edges bend slightly in lon/lat
    lonlat = shape(transform_geom(f"EPSG:{epsg}", "EPSG:4326", mapping(dense)))
    return tidy(split_antimeridian(lonlat))


def from_mask(raster: Path | str, fill_bit: bool) -> Footprint:
    """Polygonise the valid pixels of ``raster`` (a path, or a name GDAL opens) read at overview
    resolution."""
    with rasterio.open(raster) as src:
        factor = max(1, int(np.ceil(max(src.width, src.height) / OVERVIEW_SIZE)))
        out_shape = (max(1, src.height // factor), max(1, src.width // factor))
        data = src.read(1, out_shape=out_shape, resampling=rasterio.enums.Resampling.nearest)
        if fill_bit:
            valid = (data & 1) == 0
        elif src.nodata is not None:
            valid = data != src.nodata
        else:
            valid = np.ones(out_shape, dtype=bool)
        transform = src.transform @ src.transform.scale(src.width / out_shape[1], src.height / out_shape[0])
        epsg = src.crs.to_epsg()
    if not valid.any():
        raise ValueError(f"{raster.name} has no valid pixels")
    outline = _row_outline(valid)
    if outline is not None:
        cols, rows = outline
        xs = transform.c + transform.a * cols + transform.b * rows
        ys = transform.f + transform.d * cols + transform.e * rows
        largest = Polygon(np.column_stack([xs, ys]))
    else:
        polygons = [
            shape(geom)
            for geom, value in shapes(valid.astype("uint8"), mask=valid, transform=transform)
            if value == 1
        ]
        largest = max(polygons, key=lambda p: p.area)
    cell = abs(transform.a)
    native = Polygon(largest.exterior).simplify(2 * cell, preserve_topology=True)  # drop pixel stairs
    return Footprint(_to_lonlat(native, epsg), native, epsg, "mask")


def _row_outline(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The pixel-edge outline of ``valid`` when it is one run per row and the runs touch row to row.

    A Landsat swath is such a shape (a rotated parallelogram), and tracing it from the first and
    last valid column of each row costs a tenth of ``rasterio.features.shapes``, which was most of
    an item's build time on full-size scenes. The region is the same one ``shapes`` outlines, so
    the footprint is too. Anything else (SLC-off gaps, islands, holes) returns None and goes the
    general way.
    """
    rows = np.flatnonzero(valid.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    band = valid[top:bottom]
    if len(rows) != bottom - top:
        return None  # an empty row splits the region
    width = band.shape[1]
    first = band.argmax(axis=1)
    end = width - band[:, ::-1].argmax(axis=1)
    if not np.array_equal(band.sum(axis=1), end - first):
        return None  # some row has more than one run
    if np.any(first[1:] >= end[:-1]) or np.any(first[:-1] >= end[1:]):
        return None  # two rows only meet at a corner, or not at all
    # down the left edges (each row's top and bottom corner), then up the right edges
    row_top = np.arange(top, bottom, dtype=float)
    down = np.column_stack([row_top, row_top + 1]).ravel()
    cols = np.concatenate([np.repeat(first, 2), np.repeat(end, 2)[::-1]]).astype(float)
    rows = np.concatenate([down, down[::-1]])
    # keep the stair corners only: a vertex between two on the same column or row adds nothing
    # (and costs the simplification below)
    before_c, after_c = np.roll(cols, 1), np.roll(cols, -1)
    before_r, after_r = np.roll(rows, 1), np.roll(rows, -1)
    corner = ~(((before_c == cols) & (cols == after_c)) | ((before_r == rows) & (rows == after_r)))
    return cols[corner], rows[corner]


def from_ang(ang_text: str, groups: Groups, epsg: int) -> Footprint | None:
    """OLI/TIRS ANG image corners (top, right, bottom, left) through the UTM grid, from the text of
    ANG.txt."""
    parsed = parse_ang_text(ang_text)
    band = parsed.get("RPC_BAND01", {})
    lines = numbers(band.get("BAND01_L1T_IMAGE_CORNER_LINES", ""))
    samples = numbers(band.get("BAND01_L1T_IMAGE_CORNER_SAMPS", ""))
    if len(lines) != 4 or len(samples) != 4:
        return None  # TM/ETM+ ANG files carry no image corners
    projection = groups["PROJECTION_ATTRIBUTES"]
    ul_x = float(projection["CORNER_UL_PROJECTION_X_PRODUCT"])
    ul_y = float(projection["CORNER_UL_PROJECTION_Y_PRODUCT"])
    gsd = float(projection.get("GRID_CELL_SIZE_REFLECTIVE", "30"))
    corners = [(ul_x + s * gsd, ul_y - line * gsd) for line, s in zip(lines, samples, strict=True)]
    native = Polygon(corners[::-1])  # clockwise in ANG order: reverse for counter-clockwise
    return Footprint(_to_lonlat(native, epsg), native, epsg, "ang")


def from_mtl(groups: Groups, epsg: int) -> Footprint:
    """The product grid's corners (pixel centres widened by half a pixel)."""
    projection = groups["PROJECTION_ATTRIBUTES"]
    half = float(projection.get("GRID_CELL_SIZE_REFLECTIVE", "30")) / 2
    ul = (
        float(projection["CORNER_UL_PROJECTION_X_PRODUCT"]),
        float(projection["CORNER_UL_PROJECTION_Y_PRODUCT"]),
    )
    lr = (
        float(projection["CORNER_LR_PROJECTION_X_PRODUCT"]),
        float(projection["CORNER_LR_PROJECTION_Y_PRODUCT"]),
    )
    native = Polygon(
        [
            (ul[0] - half, ul[1] + half),
            (ul[0] - half, lr[1] - half),
            (lr[0] + half, lr[1] - half),
            (lr[0] + half, ul[1] + half),
        ]
    )
    return Footprint(_to_lonlat(native, epsg), native, epsg, "mtl")
