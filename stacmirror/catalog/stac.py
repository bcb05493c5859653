"""One STAC Item per scene folder, from the files on disk (and checksums the ledger verified).

Raster facts (shape, transform, CRS, data type, nodata, COG layout) come from
each GeoTIFF's header via rio-stac/rasterio; band names, scale/offset and QA
bit meanings from :mod:`.constants` and the MTL; properties from the MTL; the
footprint from :mod:`.footprint`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from shapely.geometry import mapping

from ..fileio import write_bytes_atomic
from ..geometry import stac_bbox
from ..landsat import ProductId, is_product_id
from . import footprint as fp
from .constants import BITFIELDS, COG, EXT, GEOTIFF, MEDIA_TYPES, STAC_VERSION, AssetSpec, asset_specs
from .mtl import MTLError, parse_mtl_bytes
from .properties import epsg_of, mtl_number, properties, sensor_of
from .sources import GdalRaster, SceneFile, local_files, store_files

Checksum = Callable[[SceneFile], str | None]  # a verified sha256 for a file, if one is known
THUMBNAIL_SUFFIX = "thumb.png"
BROWSE_SUFFIXES = ("browse.jpg", "browse.png", "browse.webp", "browse.gif")  # named by their bytes
GENERATED_SUFFIXES = (THUMBNAIL_SUFFIX,)


class SceneError(Exception):
    """A scene folder cannot be catalogued; the message says why."""


@dataclass
class ItemResult:
    """What a worker returns for one scene: data only; the catalog writer writes it."""

    item: dict[str, Any]
    footprint_method: str
    native_wkt: str
    thumbnail_png: bytes | None = None  # a rendered thumbnail the writer must save beside the item
    rasters_opened: int = 0


def multihash(sha256_hex: str) -> str:
    return "1220" + sha256_hex  # multihash: 0x12 = sha2-256, 0x20 = 32 bytes


def is_cog(src: rasterio.DatasetReader) -> bool:
    """Written by GDAL's COG driver, or tiled with overviews (or small enough to need none)."""
    if src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG":
        return True
    if src.driver != "GTiff" or not src.profile.get("tiled"):
        return False
    return bool(src.overviews(1)) or max(src.width, src.height) <= max(src.block_shapes[0])


def usgs_item_urls(pid: ProductId) -> list[str]:
    """USGS's own STAC items for a product: one per Level-2 family (SR, ST), one for Level-1."""
    base = "https://landsatlook.usgs.gov/stac-server/collections"
    if pid.level == 1:
        return [f"{base}/landsat-c2l1/items/{pid.text}"]
    suffixes = ["_SR", "_ST"] if pid.correction == "L2SP" else ["_SR"]
    return [f"{base}/landsat-c2l2-{s[1:].lower()}/items/{pid.text}{s}" for s in suffixes]


def predecessor_links(replaced: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``predecessor-version`` links to the products this one replaced (USGS reprocessed the
    acquisition): to USGS's item of the old product, as the replaced files are no longer in the
    mirror, titled with the old id and the day it was replaced."""
    links = []
    for old_id, when in replaced:
        old = ProductId.maybe(old_id)
        if old is not None:
            links.append(
                {
                    "rel": "predecessor-version",
                    "type": "application/geo+json",
                    "title": f"{old_id} (replaced {when[:10]})",
                    "href": usgs_item_urls(old)[0],
                }
            )
    return links


@functools.lru_cache(maxsize=64)
def _epsg_of(crs_wkt: str) -> int | None:
    """EPSG code of a CRS, worked out once per distinct CRS (a scene's rasters share one)."""
    return CRS.from_wkt(crs_wkt).to_epsg() if crs_wkt else None


def _raster_asset(file: SceneFile, spec: AssetSpec, groups, asset: dict[str, Any], verified: bool) -> None:
    header = file.header() if verified else None
    if header is not None:  # bytes verified at download: the header is all we need, read directly
        asset["type"] = COG if header.is_cog else GEOTIFF
        asset["proj:shape"] = [header.height, header.width]
        asset["proj:transform"] = [float(v) for v in header.transform]
        asset["proj:code"] = f"EPSG:{header.epsg}"
        band: dict[str, Any] = {"data_type": header.dtype}
        if header.nodata is not None:
            band["nodata"] = int(header.nodata) if float(header.nodata).is_integer() else header.nodata
        _finish_band(band, spec, groups, abs(header.transform[0]))
        asset["raster:bands"] = [band]
        return
    with rasterio.open(file.gdal) as src:
        if not verified:
            # full-resolution tiles come last in a COG: reading the last one catches a truncated
            # file. A file whose sha256 the ledger verified, still at that size, needs no such read.
            block_h, block_w = src.block_shapes[0]
            last = Window(
                max(0, src.width - block_w),
                max(0, src.height - block_h),
                min(block_w, src.width),
                min(block_h, src.height),
            )
            src.read(1, window=last)
        asset["type"] = COG if is_cog(src) else GEOTIFF
        asset["proj:shape"] = [src.height, src.width]
        asset["proj:transform"] = [float(v) for v in list(src.transform)[:6]]
        epsg = _epsg_of(src.crs.to_wkt() if src.crs else "")
        if epsg:
            asset["proj:code"] = f"EPSG:{epsg}"
        band = {"data_type": src.dtypes[0]}
        if src.nodata is not None:
            band["nodata"] = int(src.nodata) if float(src.nodata).is_integer() else src.nodata
        resolution = abs(src.transform.a)
    _finish_band(band, spec, groups, resolution)
    asset["raster:bands"] = [band]


def _finish_band(band: dict[str, Any], spec: AssetSpec, groups, resolution: float) -> None:
    if spec.unit:
        band["unit"] = spec.unit
    scale, offset = spec.scale, spec.offset
    if spec.mtl_scale:
        group, mult, add = spec.mtl_scale
        scale, offset = mtl_number(groups, group, mult), mtl_number(groups, group, add)
    if scale is not None:
        band["scale"] = scale
    if offset is not None:
        band["offset"] = offset
    band["spatial_resolution"] = resolution


def _asset(
    file: SceneFile, spec: AssetSpec | None, suffix: str, groups, checksum: Checksum
) -> tuple[str, dict]:
    extension = Path(file.name).suffix.lower()
    if spec is None:
        key = Path(suffix).stem.lower()
        roles = ["data"] if extension == ".tif" else ["metadata"]
        asset: dict[str, Any] = {"href": f"./{file.name}", "title": Path(suffix).stem, "roles": roles}
    else:
        key = spec.key
        asset = {
            "href": f"./{file.name}",
            "title": spec.title,
            "description": spec.description,
            "roles": list(spec.roles),
        }
    verified = checksum(file)
    if extension != ".tif":
        asset["type"] = MEDIA_TYPES.get(extension, "application/octet-stream")
    else:
        _raster_asset(file, spec or AssetSpec(key, key, key, ("data",)), groups, asset, verified is not None)
        if spec and spec.band:
            asset["eo:bands"] = [spec.band.eo()]
        if spec and spec.bitfields:
            asset["classification:bitfields"] = BITFIELDS[spec.bitfields]
        if spec and spec.gsd:
            asset["gsd"] = spec.gsd
    asset["file:size"] = file.size
    asset["file:checksum"] = multihash(verified or file.sha256())
    return key, asset


def render_thumbnail(files: Mapping[str, Path | str], target: Path) -> bool:
    """Write :func:`thumbnail_png` to ``target`` atomically; False when there is nothing to draw.
    ``files`` are paths, or names GDAL opens (such as a ``vrt://`` window of a store object)."""
    png = thumbnail_png({suffix: GdalRaster(str(name)) for suffix, name in files.items()})
    if png is None:
        return False
    write_bytes_atomic(target, png)
    return True


def thumbnail_png(files: Mapping[str, SceneFile | GdalRaster]) -> bytes | None:
    """A small RGBA PNG from the red/green/blue bands (or one band) when no browse image exists."""
    rgb = [files.get(s) for s in ("SR_B4.TIF", "SR_B3.TIF", "SR_B2.TIF")]
    if not all(rgb):
        rgb = [files.get(s) for s in ("B4.TIF", "B3.TIF", "B2.TIF")]
    if not all(rgb):
        single = next((p for s, p in sorted(files.items()) if s.endswith(".TIF") and "QA" not in s), None)
        if single is None:
            return None
        rgb = [single] * 3
    channels, valid = [], None
    for file in rgb:
        assert file is not None
        with rasterio.open(file.gdal) as src:
            scale = max(src.width, src.height) / 256
            shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale)))
            data = src.read(1, out_shape=shape).astype("float64")
            mask = data != src.nodata if src.nodata is not None else np.ones(shape, dtype=bool)
        valid = mask if valid is None else valid & mask
        channels.append(data)
    assert valid is not None
    out = []
    for data in channels:
        values = data[valid]
        low, high = np.percentile(values, [2, 98]) if values.size else (0.0, 1.0)
        stretched = np.clip((data - low) / max(high - low, 1e-9), 0, 1) * 254 + 1
        out.append(np.where(valid, stretched, 0).astype("uint8"))
    out.append(np.where(valid, 255, 0).astype("uint8"))
    height, width = out[0].shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a thumbnail has no CRS
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=width, height=height, count=4, dtype="uint8") as dst:
                dst.write(np.stack(out))
            return bytes(memory.read())


def build_item(folder: str, dataset: str, checksums: Mapping[str, str]) -> ItemResult | str:
    """A worker's task: the item of one scene folder, or why it cannot be catalogued.

    ``checksums`` maps file names to the ``"<size>:<sha256>"`` the ledger verified at download time;
    a file whose size no longer agrees is hashed again. Plain data in, plain data out, so the task
    runs the same in this process, a process pool or a Dask worker.
    """
    name = os.path.basename(folder)
    # no directory listing on each open: a scene folder holds twenty files, none of them sidecars
    # GDAL would need
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        return _built(name, folder, local_files(Path(folder), name), dataset, checksums)


def build_store_item(
    url: str, folder_key: str, listing: list[tuple[str, int]], dataset: str, checksums: Mapping[str, str]
) -> ItemResult | str:
    """The same task for a scene folder in an object store: ``listing`` holds its files' names and
    sizes; headers are read with range requests, and pixels (masks, thumbnails) through GDAL's
    virtual file system, so the worker needs no local path."""
    from ..storage import gdal_env

    name = folder_key.rsplit("/", 1)[-1]
    with rasterio.Env(**gdal_env(), GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        return _built(name, f"{url}/{folder_key}", store_files(url, folder_key, listing), dataset, checksums)


def _built(pid: str, where: str, files: dict[str, SceneFile], dataset: str, checksums) -> ItemResult | str:
    def checksum(file: SceneFile) -> str | None:
        size, _, digest = checksums.get(file.name, "").partition(":")
        return digest if digest and size == str(file.size) else None

    try:
        return create_item(pid, where, files, dataset, checksum)
    except SceneError as exc:
        return str(exc)
    except OSError as exc:  # a store that failed mid-read (after its own retries)
        return f"{pid}: cannot read {where}: {type(exc).__name__}"


def create_item(
    pid: str, where: str, files: dict[str, SceneFile], dataset: str, checksum: Checksum
) -> ItemResult:
    """The STAC Item of one scene, ``files`` by suffix (after ``<pid>_``) in the folder (or store
    prefix) ``where`` ``…/<PPP>/<RRR>/<product id>``; writes nothing."""
    if not is_product_id(pid):
        raise SceneError(f"{where}: not a scene folder (expected a Landsat product id as its name)")
    parsed_id = ProductId.parse(pid)
    mtl = next((files[s] for s in ("MTL.json", "MTL.xml", "MTL.txt") if s in files), None)
    if mtl is None:
        raise SceneError(f"{pid}: no MTL file (txt, xml or json) in {where}")
    try:
        groups = parse_mtl_bytes(mtl.read_bytes(), mtl.name)
        props = properties(groups)
        epsg = epsg_of(groups)
    except (MTLError, KeyError, ValueError) as exc:
        raise SceneError(f"{pid}: unreadable {mtl.name}: {exc}") from None
    mtl_pid = groups["PRODUCT_CONTENTS"].get("LANDSAT_PRODUCT_ID")
    if mtl_pid != pid:
        raise SceneError(f"{pid}: {mtl.name} describes {mtl_pid}, not this folder's product")
    specs = asset_specs(sensor_of(parsed_id), parsed_id.level, parsed_id.satellite)

    try:
        if "QA_PIXEL.TIF" in files:
            footprint = fp.from_mask(files["QA_PIXEL.TIF"].gdal, fill_bit=True)
        elif any(s.endswith(".TIF") for s in files):
            band = next(p for s, p in sorted(files.items()) if s.endswith(".TIF") and "QA" not in s)
            footprint = fp.from_mask(band.gdal, fill_bit=False)
        else:
            footprint = None
        if footprint is None and "ANG.txt" in files:
            footprint = fp.from_ang(files["ANG.txt"].read_bytes().decode("utf-8"), groups, epsg)
        if footprint is None:
            footprint = fp.from_mtl(groups, epsg)
    except (RasterioError, MTLError, ValueError, KeyError) as exc:
        raise SceneError(f"{pid}: cannot read the footprint: {exc}") from None

    rendered = None
    if not any(s in files for s in (*BROWSE_SUFFIXES, THUMBNAIL_SUFFIX)):
        try:
            rendered = thumbnail_png(files)
        except RasterioError as exc:
            raise SceneError(f"{pid}: cannot render a thumbnail: {exc}") from None

    assets: dict[str, dict[str, Any]] = {}
    order = list(specs)
    rasters_opened = 0
    for suffix in sorted(files, key=lambda s: (order.index(s) if s in order else len(order), s)):
        file = files[suffix]
        if suffix in (*BROWSE_SUFFIXES, THUMBNAIL_SUFFIX):
            if "thumbnail" in assets:
                continue
            assets["thumbnail"] = {
                "href": f"./{file.name}",
                "type": MEDIA_TYPES[Path(file.name).suffix.lower()],
                "title": "Thumbnail" if suffix == THUMBNAIL_SUFFIX else "Natural colour browse image",
                "roles": ["thumbnail"],
                "file:size": file.size,
                "file:checksum": multihash(checksum(file) or file.sha256()),
            }
            continue
        rasters_opened += suffix.endswith(".TIF")
        try:
            key, asset = _asset(file, specs.get(suffix), suffix, groups, checksum)
        except RasterioError as exc:
            raise SceneError(f"{pid}: {file.name} is not a readable GeoTIFF ({exc})") from None
        assets[key if key not in assets else Path(suffix).stem.lower()] = asset

    geometry = footprint.geometry
    centre = footprint.native.centroid  # computed in the native CRS, then projected
    (lon,), (lat,) = warp_transform(f"EPSG:{epsg}", "EPSG:4326", [centre.x], [centre.y])
    props["proj:code"] = f"EPSG:{epsg}"
    props["proj:epsg"] = epsg
    props["proj:centroid"] = {"lat": round(lat, 5), "lon": round(lon, 5)}
    if not any(a.get("proj:shape") for a in assets.values()):
        projection = groups["PROJECTION_ATTRIBUTES"]
        gsd = float(projection.get("GRID_CELL_SIZE_REFLECTIVE", "30"))
        props["proj:shape"] = [int(projection["REFLECTIVE_LINES"]), int(projection["REFLECTIVE_SAMPLES"])]
        props["proj:transform"] = [
            gsd,
            0.0,
            float(projection["CORNER_UL_PROJECTION_X_PRODUCT"]) - gsd / 2,
            0.0,
            -gsd,
            float(projection["CORNER_UL_PROJECTION_Y_PRODUCT"]) + gsd / 2,
        ]
    extensions = ["eo", "raster", "proj", "view", "landsat", "grid", "file", "processing"]
    if any("classification:bitfields" in a for a in assets.values()):
        extensions.append("classification")
    if "sci:doi" in props:
        extensions.append("sci")
    if any(k.startswith("accuracy:") for k in props):
        extensions.append("accuracy")
    links = []
    if "sci:doi" in props:
        links.append(
            {
                "rel": "cite-as",
                "href": f"https://doi.org/{props['sci:doi']}",
                "title": "Landsat Collection 2 DOI",
            }
        )
    links += [
        {"rel": "via", "type": "application/geo+json", "title": "USGS STAC Item", "href": href}
        for href in usgs_item_urls(parsed_id)
    ]
    if rendered is not None and "thumbnail" not in assets:
        assets["thumbnail"] = {
            "href": f"./{pid}_{THUMBNAIL_SUFFIX}",
            "type": "image/png",
            "title": "Thumbnail",
            "roles": ["thumbnail"],
            "file:size": len(rendered),
            "file:checksum": multihash(hashlib.sha256(rendered).hexdigest()),
        }
    item = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(EXT[e] for e in extensions),
        "id": pid,
        "geometry": mapping(geometry),
        "bbox": [round(v, 6) for v in stac_bbox(geometry)],
        "properties": props,
        "links": links,
        "assets": assets,
        "collection": dataset,
    }
    return ItemResult(item, footprint.method, footprint.native.wkt, rendered, rasters_opened)
