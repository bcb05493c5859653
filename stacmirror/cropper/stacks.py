"""Stacks of overlapping scenes and the largest rectangle inside all of them.

A stack is a set of items of one collection, in one CRS, on one 30 m lattice, that overlap: by
default the items of one WRS path/row; with ``group_by="overlap"`` any items whose footprints
share at least half of the smaller one's area with the stack's common area (a greedy grouping that,
unlike centre clustering, never chains scenes that do not all overlap).

The common area is computed from the data: each scene's valid pixels (QA_PIXEL fill bit, else a
band's nodata) read row block by row block at full resolution, reduced to the first and last
valid column of every row, and aligned on the stack's lattice by integer offsets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..catalog.walk import item_files
from ..geometry import split_antimeridian, stac_bbox, tidy
from ..layout import Mirror
from .rectangle import EMPTY, Rect, largest_in_mask, largest_in_rows, row_intervals, rows_are_intervals

GROUP_BY = ("path-row", "overlap")
LATTICE = 30.0
ROW_BLOCK = 512
BIG = np.iinfo(np.int64).max // 4


@dataclass
class Member:
    item: dict[str, Any]
    path: Path  # the item's JSON file

    @property
    def id(self) -> str:
        return str(self.item["id"])

    @property
    def epsg(self) -> int:
        return int(str(self.item["properties"]["proj:code"]).split(":")[1])

    @property
    def folder(self) -> Path:
        return self.path.parent

    def mask_raster(self) -> tuple[Path, bool] | None:
        """A 30 m raster telling valid pixels: QA_PIXEL (fill bit) first, else a data band with nodata."""
        assets = self.item["assets"]
        qa = assets.get("qa_pixel")
        if qa and "proj:transform" in qa and abs(qa["proj:transform"][0]) == LATTICE:
            return self.folder / qa["href"], True
        for asset in assets.values():
            bands = asset.get("raster:bands") or [{}]
            if (
                "data" in asset.get("roles", [])
                and "proj:transform" in asset
                and abs(asset["proj:transform"][0]) == LATTICE
                and "nodata" in bands[0]
            ):
                return self.folder / asset["href"], False
        return None


@dataclass
class Stack:
    stack_id: str
    collection: str
    epsg: int
    members: list[Member]
    title: str
    rect: Rect = EMPTY
    origin: tuple[float, float] = (0.0, 0.0)  # upper-left corner of lattice row 0 / column 0
    notes: list[str] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)  # the find_stacks parameters that found it

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the rectangle in the stack's CRS."""
        x0, y0 = self.origin
        r = self.rect
        return (x0 + r.col0 * LATTICE, y0 - r.row1 * LATTICE, x0 + r.col1 * LATTICE, y0 - r.row0 * LATTICE)

    @property
    def area_km2(self) -> float:
        return self.rect.area * LATTICE * LATTICE / 1e6

    def geometry(self) -> BaseGeometry:
        """The rectangle in lon/lat, densified and split at the antimeridian."""
        native = box(*self.bounds).segmentize(max(self.rect.width, self.rect.height) * LATTICE / 8 or 1)
        return tidy(
            split_antimeridian(shape(transform_geom(f"EPSG:{self.epsg}", "EPSG:4326", mapping(native))))
        )

    def to_dict(self) -> dict[str, Any]:
        """What ``stacks --json`` prints for this stack."""
        return self.as_feature()["properties"]

    def as_feature(self) -> dict[str, Any]:
        geometry = self.geometry()
        return {
            "type": "Feature",
            "id": self.stack_id,
            "geometry": mapping(geometry),
            "bbox": stac_bbox(geometry),
            "properties": {
                "stack": self.stack_id,
                "collection": self.collection,
                "scenes": len(self.members),
                "items": [m.id for m in self.members],
                "epsg": self.epsg,
                "width_px": self.rect.width,
                "height_px": self.rect.height,
                "area_km2": round(self.area_km2, 3),
                "bounds": list(self.bounds),
            },
        }


def load_members(
    mirror: Mirror, collection: str | None = None, max_cloud: float | None = None
) -> list[Member]:
    """Items of the mirror's scene collections (crop collections are not stacked again)."""
    members = []
    for collection_file in mirror.scene_collections():
        data = json.loads(collection_file.read_text())
        if collection is not None and data["id"] != collection:
            continue
        for path in item_files(collection_file):
            item = json.loads(path.read_text())
            cloud = item["properties"].get("eo:cloud_cover")
            if max_cloud is not None and cloud is not None and cloud > max_cloud:
                continue
            members.append(Member(item, path))
    return members


def _native_footprint(member: Member) -> BaseGeometry:
    return shape(transform_geom("EPSG:4326", f"EPSG:{member.epsg}", member.item["geometry"])).buffer(0)


def group(members: Iterable[Member], group_by: str = "path-row") -> list[Stack]:
    """Candidate stacks: one collection and one CRS each."""
    stacks: list[Stack] = []
    by_key: dict[tuple[str, int], list[Member]] = {}
    for member in members:
        by_key.setdefault((member.item["collection"], member.epsg), []).append(member)
    for (collection, epsg), found in sorted(by_key.items()):
        if group_by == "path-row":
            by_tile: dict[str, list[Member]] = {}
            for member in found:
                props = member.item["properties"]
                by_tile.setdefault(f"{props['landsat:wrs_path']}{props['landsat:wrs_row']}", []).append(
                    member
                )
            for tile, tile_members in sorted(by_tile.items()):
                stacks.append(
                    Stack(
                        f"{collection}-{tile}",
                        collection,
                        epsg,
                        tile_members,
                        f"{collection} WRS {tile[:3]}/{tile[3:]}",
                    )
                )
        elif group_by == "overlap":
            groups: list[tuple[BaseGeometry, list[Member]]] = []
            for member in sorted(found, key=lambda m: m.id):
                footprint = _native_footprint(member)
                for index, (common, group_members) in enumerate(groups):
                    shared = common.intersection(footprint)
                    if shared.area >= 0.5 * min(common.area, footprint.area):
                        groups[index] = (shared, [*group_members, member])
                        break
                else:
                    groups.append((footprint, [member]))
            for _common, group_members in groups:
                first = group_members[0].item["properties"]
                tile = f"{first['landsat:wrs_path']}{first['landsat:wrs_row']}"
                stacks.append(
                    Stack(
                        f"{collection}-overlap-{tile}",
                        collection,
                        epsg,
                        group_members,
                        f"{collection} overlapping scenes around WRS {tile[:3]}/{tile[3:]}",
                    )
                )
        else:
            raise ValueError(f"unknown grouping {group_by!r}")
    return stacks


def _valid_rows(path: Path | str, fill_bit: bool) -> tuple[Affine, np.ndarray, np.ndarray]:
    """First/last valid column of every row, read block by block at full resolution."""
    with rasterio.open(path) as src:
        lefts, rights = [], []
        for top in range(0, src.height, ROW_BLOCK):
            window = Window(0, top, src.width, min(ROW_BLOCK, src.height - top))
            data = src.read(1, window=window)
            if fill_bit:
                valid = (data & 1) == 0
            elif src.nodata is not None:
                valid = data != src.nodata
            else:
                valid = np.ones(data.shape, dtype=bool)
            first, last = row_intervals(valid)
            lefts.append(first)
            rights.append(last)
        return src.transform, np.concatenate(lefts), np.concatenate(rights)


def _aoi_rows(aoi: BaseGeometry, origin: tuple[float, float], rows: int, cols: int) -> np.ndarray:
    """Lattice cells lying wholly inside the AOI (centres inside the AOI shrunk by half a diagonal)."""
    x0, y0 = origin
    inner = aoi.buffer(-LATTICE * math.sqrt(0.5))
    if inner.is_empty:
        return np.zeros((rows, cols), dtype=bool)
    transform = Affine(LATTICE, 0, x0, 0, -LATTICE, y0)
    return rasterize([mapping(inner)], out_shape=(rows, cols), transform=transform, all_touched=False).astype(
        bool
    )


def compute_rectangle(
    stack: Stack, aoi_lonlat: BaseGeometry | None = None, opened: Callable[[Path], str] = str
) -> Stack:
    """Fill in the stack's lattice origin and its largest common rectangle (members may be dropped).
    ``opened`` gives the name GDAL reads a member's mask by (in a store mirror, its object)."""
    layers = []
    origin: tuple[float, float] | None = None
    kept = []
    for member in stack.members:
        raster = member.mask_raster()
        if raster is None:
            stack.notes.append(f"{member.id}: no 30 m raster on disk to tell valid pixels; left out")
            continue
        transform, left, right = _valid_rows(opened(raster[0]), raster[1])
        if origin is None:
            origin = (transform.c, transform.f)
        col_shift = (transform.c - origin[0]) / LATTICE
        row_shift = (origin[1] - transform.f) / LATTICE
        if abs(col_shift - round(col_shift)) > 1e-6 or abs(row_shift - round(row_shift)) > 1e-6:
            stack.notes.append(
                f"{member.id}: not on the stack's 30 m pixel lattice; left out (would need resampling)"
            )
            continue
        layers.append((round(row_shift), round(col_shift), left, right))
        kept.append(member)
    stack.members = kept
    if not layers or origin is None:
        return stack
    top = min(r for r, _, _, _ in layers)
    bottom = max(r + len(left) for r, _, left, _ in layers)
    lefts = np.full(bottom - top, -BIG, dtype=np.int64)
    rights = np.full(bottom - top, BIG, dtype=np.int64)
    for row_shift, col_shift, left, right in layers:
        scene_left = np.full(bottom - top, BIG, dtype=np.int64)
        scene_right = np.full(bottom - top, -BIG, dtype=np.int64)
        rows = slice(row_shift - top, row_shift - top + len(left))
        empty = left > right
        scene_left[rows] = np.where(empty, BIG, left + col_shift)
        scene_right[rows] = np.where(empty, -BIG, right + col_shift)
        lefts = np.maximum(lefts, scene_left)
        rights = np.minimum(rights, scene_right)
    first_col = int(min(c for _, c, _, _ in layers))
    stack.origin = (origin[0] + first_col * LATTICE, origin[1] - top * LATTICE)
    lefts, rights = lefts - first_col, rights - first_col
    if aoi_lonlat is None:
        stack.rect = largest_in_rows(lefts, rights)
        return stack
    aoi = shape(
        transform_geom("EPSG:4326", f"EPSG:{stack.epsg}", mapping(aoi_lonlat.segmentize(0.05)))
    ).buffer(0)
    valid = rights >= lefts
    if not valid.any():
        return stack
    cols = int(rights[valid].max()) + 1
    mask = _aoi_rows(aoi, stack.origin, len(lefts), cols)
    columns = np.arange(cols)
    mask &= (columns[None, :] >= lefts[:, None]) & (columns[None, :] <= rights[:, None])
    if rows_are_intervals(mask):
        stack.rect = largest_in_rows(*row_intervals(mask))
    else:
        stack.rect = largest_in_mask(mask)
        stack.notes.append(
            "the common area is not convex: rectangle found on a coarse grid (within a few pixels)"
        )
    return stack


def find_stacks(
    mirror: Mirror | Path,
    *,
    collection: str | None = None,
    min_scenes: int = 2,
    aoi: BaseGeometry | None = None,
    max_cloud: float | None = None,
    group_by: str = "path-row",
    only: set[str] | None = None,
    store_url: str | None = None,
) -> tuple[list[Stack], list[str]]:
    """Stacks with their rectangles, and notes for the user (zones, dropped scenes). ``only``: the
    stack ids wanted (no other rectangle is computed). Each stack carries the parameters that found
    it, so that the crops can be redone the same way when a member is replaced (sync). In a store
    mirror (``store_url``; ``mirror`` is then its cache) the masks are read from the store."""
    from ..storage import gdal_env, gdal_name

    mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
    request = {
        "collection": collection,
        "min_scenes": min_scenes,
        "aoi": mapping(aoi) if aoi is not None else None,
        "max_cloud": max_cloud,
        "group_by": group_by,
    }
    members = load_members(mirror, collection, max_cloud)
    notes = []
    zones = sorted({m.epsg for m in members})
    if len(zones) > 1:
        notes.append(
            f"the scenes span {len(zones)} CRSs ({', '.join(f'EPSG:{z}' for z in zones)}); "
            "scenes in different CRSs never share a stack"
        )
    stacks = []
    for stack in group(members, group_by):
        if only is not None and stack.stack_id not in only:
            continue
        stack.request = request
        if aoi is not None:
            footprint_hits = [m for m in stack.members if shape(m.item["geometry"]).intersects(aoi)]
            stack.members = footprint_hits
        if len(stack.members) < min_scenes:
            continue
        with rasterio.Env(**(gdal_env() if store_url else {})):
            compute_rectangle(stack, aoi, lambda path: gdal_name(path, store_url, mirror.root))
        notes += [f"{stack.stack_id}: {note}" for note in stack.notes]
        if len(stack.members) >= min_scenes and stack.rect.area > 0:
            stacks.append(stack)
    return stacks, notes
