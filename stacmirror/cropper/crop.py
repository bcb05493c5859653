"""Cropping every scene of a stack to its rectangle, pixel for pixel, and cataloguing the crops.

Each raster asset gets an integer window snapped *inward* on its own lattice (30 m bands on the
stack lattice, the 15 m pan band on its own), and GDAL copies that window into a COG through a
``vrt://…?srcwin=`` source: no warper, no resampling, nodata/scale/offset/descriptions/tags
kept, memory bounded by GDAL's block cache. Scenes run in parallel threads (GDAL releases the GIL).
Virtual crops (``virtual=True``) write, instead of each COG, a VRT naming the same window of the
source file: the same items and ``proj:*``, and the same pixels through any GDAL reader.

Layout, one collection per stack::

    OUT/crops/<stack id>/collection.json
    OUT/crops/<stack id>/stack.json                    members and rectangle the crops were made for
    OUT/crops/<stack id>/<item id>/<item id>.json      the crop item (same asset keys as its source)
    OUT/crops/<stack id>/<item id>/<source file names>       (or <source stem>.vrt when virtual)
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
from rasterio.warp import transform as warp_transform
from shapely.geometry import mapping

from ..catalog.constants import COG, EXT
from ..catalog.parquet import write_parquet_of
from ..catalog.sources import sha256_file
from ..catalog.stac import THUMBNAIL_SUFFIX, multihash, render_thumbnail
from ..catalog.templates import load_template
from ..errors import InvalidInput
from ..executors import executor_for
from ..fileio import relative_href, write_bytes_atomic, write_json_atomic
from ..geometry import stac_bbox
from ..layout import Mirror
from .stacks import Stack
from .vrt import VRT_MEDIA_TYPE, window_vrt

STATE_VERSION = 1
EPS = 1e-6


@dataclass
class StackCropResult:
    """What cropping one stack did."""

    stack_id: str
    cropped: int = 0
    skipped: bool = False
    files: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack_id,
            "itemsCropped": self.cropped,
            "unchanged": self.skipped,
            "files": self.files,
            "errors": self.errors,
        }


def inward_window(
    transform: rasterio.Affine, bounds: tuple[float, float, float, float]
) -> tuple[int, int, int, int]:
    """(col, row, width, height) of the pixels of a grid lying wholly inside ``bounds``."""
    xmin, ymin, xmax, ymax = bounds
    res_x, res_y = transform.a, -transform.e
    col0 = math.ceil((xmin - transform.c) / res_x - EPS)
    col1 = math.floor((xmax - transform.c) / res_x + EPS)
    row0 = math.ceil((transform.f - ymax) / res_y - EPS)
    row1 = math.floor((transform.f - ymin) / res_y + EPS)
    return col0, row0, col1 - col0, row1 - row0


def source_window(
    src: rasterio.DatasetReader, bounds: tuple[float, float, float, float]
) -> tuple[int, int, int, int]:
    """The inward window of ``bounds`` on an open raster; ValueError when it is not inside it."""
    col, row, width, height = inward_window(src.transform, bounds)
    if (
        col < 0
        or row < 0
        or col + width > src.width
        or row + height > src.height
        or width <= 0
        or height <= 0
    ):
        raise ValueError(f"{Path(src.name).name}: the rectangle is not inside this raster")
    return col, row, width, height


def _proj_fields(src: rasterio.DatasetReader, window: tuple[int, int, int, int]) -> dict[str, Any]:
    col, row, width, height = window
    transform = src.window_transform(rasterio.windows.Window(col, row, width, height))
    return {"proj:shape": [height, width], "proj:transform": [float(v) for v in list(transform)[:6]]}


def virtual_raster(
    source: Path,
    target: Path,
    bounds: tuple[float, float, float, float],
    opened: str | None = None,
    at: Path | None = None,
) -> tuple[dict[str, Any], tuple[int, int, int, int]]:
    """Write a VRT at ``target`` showing the pixels of ``source`` inside ``bounds``, copying none;
    returns the crop's proj fields (those :func:`crop_raster` returns) and the source window
    ``(col, row, width, height)``. ``opened`` is the name GDAL reads the source by, when it is not
    ``source`` (an object in a store); ``at`` is where the VRT sits in the mirror's layout, when
    ``target`` is a temporary file (it names the source from there)."""
    with rasterio.open(opened or source) as src:
        window = source_window(src, bounds)
        write_bytes_atomic(target, window_vrt(src, at or target, window, source))
        return _proj_fields(src, window), window


def check_level(level: int | None, virtual: bool) -> None:
    """A compression effort the codecs of Landsat's rasters all take (DEFLATE, also ZSTD and LZMA)."""
    if level is None:
        return
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9:
        raise InvalidInput("level", f"must be a whole number from 1 to 9, not {level!r}")
    if virtual:
        raise InvalidInput("level", "applies to copied crops; a virtual crop compresses nothing")


def crop_raster(
    source: Path | str, target: Path, bounds: tuple[float, float, float, float], level: int | None = None
) -> dict[str, Any]:
    """Copy the pixels of ``source`` (a path, or a name GDAL opens such as ``/vsis3/…``) inside
    ``bounds`` into a COG, compressed as the source is (at effort ``level``, else GDAL's default:
    6 for DEFLATE); returns the crop's proj fields."""
    with rasterio.open(source) as src:
        window = source_window(src, bounds)
        col, row, width, height = window
        fields = _proj_fields(src, window)
        compress = (src.profile.get("compress") or "deflate").upper()
        predictor = "2" if src.dtypes[0] not in ("float32", "float64") else "3"
    tmp = target.with_name(f".{target.name}.part.tif")
    rasterio.shutil.copy(
        f"vrt://{source}?srcwin={col},{row},{width},{height}",
        tmp,
        driver="COG",
        compress=compress,
        predictor=predictor,
        blocksize="512",
        overview_resampling="nearest",
        num_threads="2",
        **({"level": str(level)} if level is not None else {}),
    )
    os.replace(tmp, target)
    return fields


@dataclass(frozen=True)
class CropFrame:
    """What a worker needs to know of a stack: plain, picklable data."""

    stack_id: str
    epsg: int
    bounds: tuple[float, float, float, float]
    geometry: Any  # the rectangle in lon/lat (shapely)
    catalog_path: Path  # the mirror's root catalog, for the item's root link
    virtual: bool = False  # VRTs over the source windows instead of copied COGs
    store_url: str | None = None  # a store mirror: the sources are read from it, by key
    level: int | None = None  # the copies' compression effort (None: GDAL's default)

    @classmethod
    def of(
        cls,
        stack: Stack,
        mirror: Mirror,
        *,
        virtual: bool = False,
        store_url: str | None = None,
        level: int | None = None,
    ) -> CropFrame:
        return cls(
            stack.stack_id,
            stack.epsg,
            tuple(stack.bounds),
            stack.geometry(),
            mirror.catalog_path,
            virtual,
            store_url,
            level,
        )

    def opened(self, source: Path) -> str:
        """The name GDAL opens a source raster by: its path, or its object in the store."""
        from ..storage import gdal_name

        return gdal_name(source, self.store_url, self.catalog_path.parent)


def crop_member(
    frame: CropFrame,
    source_item: dict[str, Any],
    source_dir: Path,
    folder: Path,
    assets: set[str] | None,
) -> dict[str, Any] | str:
    """A worker's task: crop one scene's rasters into ``folder``; the crop item, or why it failed.

    The rasters (and the thumbnail) are written here, beside each other; the item is returned for
    the one writer to write. In a store mirror the worker writes them to a temporary folder of its
    own and puts each into the store under ``folder``'s keys: it needs no disk shared with the
    writer (a Dask worker on another machine)."""
    from ..storage import gdal_env

    try:
        with rasterio.Env(**(gdal_env() if frame.store_url else {})):
            if frame.store_url is None:
                return _crop_item(frame, source_item, Path(source_dir), Path(folder), assets)
            with tempfile.TemporaryDirectory(prefix="stacmirror-crop-") as scratch:
                return _crop_item(frame, source_item, Path(source_dir), Path(folder), assets, Path(scratch))
    except (ValueError, rasterio.errors.RasterioError, OSError) as exc:
        return f"{source_item['id']}: {exc}"


def _put(frame: CropFrame, path: Path, at: Path) -> None:
    """A crop's file into the store, under the key of where it sits in the layout (one put: the
    object appears whole or not at all)."""
    import obstore

    from ..catalog.sources import store_of

    key = at.relative_to(frame.catalog_path.parent).as_posix()
    with path.open("rb") as handle:
        obstore.put(store_of(frame.store_url), key, handle)


def delete_crop_objects(store_url: str, mirror: Mirror, stack_id: str, *, whole: bool = False) -> None:
    """Delete a stack's crops from the store: the members' folders (what workers put there, which
    the catalog's publishing does not track), or with ``whole`` everything under the stack."""
    import obstore

    from ..catalog.sources import store_of
    from ..storage import delete_objects

    store = store_of(store_url)
    prefix = mirror.rel(mirror.crop_dir(stack_id)) + "/"
    keys = [
        meta["path"]
        for batch in obstore.list(store, prefix=prefix)
        for meta in batch
        if whole or "/" in meta["path"][len(prefix) :]
    ]
    delete_objects(store, keys)


def _crop_item(
    frame: CropFrame,
    source_item: dict[str, Any],
    source_dir: Path,
    folder: Path,
    assets: set[str] | None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    item = copy.deepcopy(source_item)
    out = scratch or folder  # where the files are made: the crop folder, or a store's scratch
    out.mkdir(parents=True, exist_ok=True)
    bounds = frame.bounds
    new_assets: dict[str, Any] = {}
    rasters: dict[str, Path | str] = {}  # what the thumbnail is drawn from
    for key, asset in source_item["assets"].items():
        source = source_dir / asset["href"]
        if "proj:transform" in asset:
            if assets is not None and key not in assets:
                continue
            drawn: Path | str | None = None
            if frame.virtual:
                target = out / f"{source.stem}.vrt"
                fields, window = virtual_raster(
                    source, target, bounds, frame.opened(source), folder / target.name
                )
                media_type = VRT_MEDIA_TYPE
                if frame.store_url:  # the VRT's source is not beside it here: draw from the window
                    col, row, width, height = window
                    drawn = f"vrt://{frame.opened(source)}?srcwin={col},{row},{width},{height}"
            else:
                target = out / source.name
                fields = crop_raster(frame.opened(source), target, bounds, frame.level)
                media_type = COG
            cropped = {**asset, **fields, "href": f"./{target.name}", "type": media_type}
            cropped["file:size"] = target.stat().st_size
            cropped["file:checksum"] = multihash(sha256_file(target))
            if scratch is not None:
                _put(frame, target, folder / target.name)
            new_assets[key] = cropped
            rasters[source.name[len(item["id"]) + 1 :]] = drawn or target
        elif key != "thumbnail":
            new_assets[key] = {
                **asset,
                "href": relative_href(source, folder),
            }  # metadata stays with the source
    thumb = out / f"{item['id']}_{THUMBNAIL_SUFFIX}"
    if render_thumbnail(rasters, thumb):
        if scratch is not None:
            _put(frame, thumb, folder / thumb.name)
        new_assets["thumbnail"] = {
            "href": f"./{thumb.name}",
            "type": "image/png",
            "title": "Thumbnail of the crop",
            "roles": ["thumbnail"],
            "file:size": thumb.stat().st_size,
            "file:checksum": multihash(sha256_file(thumb)),
        }
    geometry = frame.geometry
    item["geometry"] = mapping(geometry)
    item["bbox"] = [round(v, 6) for v in stac_bbox(geometry)]
    item["collection"] = Mirror.crop_collection_id(frame.stack_id)
    item["assets"] = new_assets
    props = item["properties"]
    for name in ("proj:shape", "proj:transform"):
        props.pop(name, None)
    xmin, ymin, xmax, ymax = bounds
    (lon,), (lat,) = warp_transform(
        f"EPSG:{frame.epsg}", "EPSG:4326", [(xmin + xmax) / 2], [(ymin + ymax) / 2]
    )
    props["proj:centroid"] = {"lat": round(lat, 5), "lon": round(lon, 5)}
    props["proj:bbox"] = [xmin, ymin, xmax, ymax]
    props["title"] = f"{props.get('title', item['id'])} (crop {frame.stack_id})"
    props["created"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    collection_path = folder.parent / "collection.json"
    item["links"] = [
        {"rel": "root", "href": relative_href(frame.catalog_path, folder), "type": "application/json"},
        {"rel": "parent", "href": relative_href(collection_path, folder), "type": "application/json"},
        {"rel": "collection", "href": relative_href(collection_path, folder), "type": "application/json"},
        {
            "rel": "derived_from",
            "href": relative_href(Mirror.item_path(source_dir), folder),
            "type": "application/geo+json",
            "title": f"Source scene {item['id']}",
        },
        *[link for link in source_item.get("links", []) if link.get("rel") in ("cite-as", "via")],
    ]
    return item


def _collection(stack: Stack, items: list[dict[str, Any]], mirror: Mirror) -> dict[str, Any]:
    template = load_template(f"collections/{stack.collection}.json") or {"license": "other", "links": []}
    times = sorted(i["properties"]["datetime"] for i in items)
    geometry = stack.geometry()
    item_assets: dict[str, Any] = {}
    for item in items:
        for key, asset in item["assets"].items():
            item_assets.setdefault(
                key,
                {
                    k: v
                    for k, v in asset.items()
                    if k not in ("href", "file:size", "file:checksum", "proj:shape", "proj:transform")
                },
            )
    folder = mirror.crop_dir(stack.stack_id)
    links = [
        {"rel": "root", "href": relative_href(mirror.catalog_path, folder), "type": "application/json"},
        {"rel": "parent", "href": relative_href(mirror.catalog_path, folder), "type": "application/json"},
        *[link for link in template.get("links", []) if link.get("rel") in ("license", "cite-as")],
    ]
    links += [
        {
            "rel": "item",
            "href": f"./{i['id']}/{i['id']}.json",
            "type": "application/geo+json",
            "title": i["id"],
        }
        for i in sorted(items, key=lambda i: i["id"])
    ]
    links.append(
        {
            "rel": "derived_from",
            "href": relative_href(mirror.collection_path(stack.collection), folder),
            "type": "application/json",
            "title": f"Source collection {stack.collection}",
        }
    )
    extensions = ["eo", "raster", "proj", "view", "classification"] + (
        ["sci"] if "sci:doi" in template else []
    )
    collection = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": sorted(EXT[e] for e in extensions),
        "id": Mirror.crop_collection_id(stack.stack_id),
        "title": f"Crops of {stack.title} ({len(items)} scenes, {stack.rect.width} x {stack.rect.height} px)",
        "description": (
            f"Every scene of the stack {stack.stack_id} cropped, without resampling, to the largest "
            f"axis-aligned rectangle inside all of their valid areas ({stack.area_km2:.1f} km2 in "
            f"EPSG:{stack.epsg}). Pixels equal their source pixels; the crops stack pixel for pixel."
        ),
        "license": template.get("license", "other"),
        "providers": template.get("providers", []),
        "keywords": [*template.get("keywords", []), "crop", "stack"],
        "extent": {
            "spatial": {"bbox": [stac_bbox(geometry)]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "summaries": {
            "proj:code": [f"EPSG:{stack.epsg}"],
            "proj:bbox": [list(stack.bounds)],
            "platform": sorted({i["properties"]["platform"] for i in items}),
        },
        "item_assets": dict(sorted(item_assets.items())),
        "links": links,
    }
    if "sci:doi" in template:
        collection["sci:doi"] = template["sci:doi"]
    return collection


def raster_asset_keys(stacks: list[Stack]) -> set[str]:
    """The asset keys that can be cropped: those with a pixel grid."""
    return {
        key
        for stack in stacks
        for member in stack.members
        for key, asset in member.item["assets"].items()
        if "proj:transform" in asset
    }


def _write_parquet(mirror: Mirror, stack_id: str) -> None:
    """The crop collection's items.parquet, from its item files: what ``query``, the STAC API
    and STAC Browser's search read."""
    folder = mirror.crop_dir(stack_id)
    items = sorted(p for p in folder.glob("*/*.json") if p.stem == p.parent.name)  # not temp files
    write_parquet_of(mirror, items, mirror.crop_parquet(stack_id))


def crop_stack(
    mirror: Mirror | Path,
    stack: Stack,
    *,
    assets: set[str] | None = None,
    workers: int | None = 2,
    executor: Executor | None = None,
    virtual: bool = False,
    store_url: str | None = None,
    level: int | None = None,
) -> StackCropResult:
    """Crop (or keep, when its members and rectangle did not change) one stack.

    Scenes are cropped in ``executor`` (else a pool of ``workers`` processes); this function writes
    the items, the collection and the stack's state. With ``virtual``, each cropped asset is a VRT
    over its source's window (:mod:`.vrt`) and no pixel is copied; switching modes re-crops. Copies
    are compressed at effort ``level`` (GDAL's default when None); another level re-crops too. The
    root catalog is not touched here: :func:`stacmirror.crop` links the crop collections afterwards.
    """
    mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
    if virtual:
        level = None  # nothing is compressed
    if executor is None:
        with executor_for(workers=workers) as (pool, _):
            return crop_stack(
                mirror,
                stack,
                assets=assets,
                executor=pool,
                virtual=virtual,
                store_url=store_url,
                level=level,
            )
    folder = mirror.crop_dir(stack.stack_id)
    result = StackCropResult(stack.stack_id)
    plan = {
        "version": STATE_VERSION,
        "members": sorted(m.id for m in stack.members),
        "bounds": list(stack.bounds),
        "epsg": stack.epsg,
        "assets": sorted(assets) if assets else None,
        "virtual": virtual,
        "level": level,
    }
    state_path = mirror.crop_state_path(stack.stack_id)
    saved = json.loads(state_path.read_text()) if state_path.exists() else None
    if (
        saved is not None
        # a state from before a field existed: copies, at GDAL's default level
        and {"virtual": False, "level": None, **{k: v for k, v in saved.items() if k != "request"}} == plan
        and (folder / "collection.json").exists()
    ):
        if stack.request and saved.get("request") != stack.request:
            write_json_atomic(state_path, {**plan, "request": stack.request})
        if not mirror.crop_parquet(stack.stack_id).exists():  # cropped by a version without one
            _write_parquet(mirror, stack.stack_id)
        result.skipped = True
        return result
    if folder.exists():  # membership or rectangle changed: the old crops are stale
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
    if store_url is not None:  # and their objects, which the workers put there themselves
        delete_crop_objects(store_url, mirror, stack.stack_id)
    folder.mkdir(parents=True, exist_ok=True)

    frame = CropFrame.of(stack, mirror, virtual=virtual, store_url=store_url, level=level)
    futures = [
        executor.submit(crop_member, frame, m.item, m.folder, folder / m.id, assets) for m in stack.members
    ]
    items = []
    for future in futures:  # in member order, whatever finished first
        cropped = future.result()
        if isinstance(cropped, str):
            result.errors.append(cropped)
            continue
        write_json_atomic(folder / cropped["id"] / f"{cropped['id']}.json", cropped)
        items.append(cropped)
    if not items:
        mirror.crop_parquet(stack.stack_id).unlink(missing_ok=True)
        return result
    result.cropped = len(items)
    result.files = sum(1 for i in items for a in i["assets"].values() if a["href"].startswith("./"))
    write_json_atomic(folder / "collection.json", _collection(stack, items, mirror))
    _write_parquet(mirror, stack.stack_id)
    if not result.errors:  # how the stack was found, for sync to find it again: not part of the plan
        write_json_atomic(state_path, {**plan, "request": stack.request} if stack.request else plan)
    return result
