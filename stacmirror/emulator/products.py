"""Real files for emulator scenes: COG bands, MTL/ANG, browse JPEG and tar bundles.

Files are generated on first use and cached under the emulator's data folder
(``<data>/<displayId>/``), so a huge archive costs nothing until fetched. A
product is written into a temporary folder and renamed into place, so a killed
emulator never leaves a half-made product behind.

Pixel values come from one smooth "terrain" field in UTM coordinates, so
overlapping scenes of the same zone show the same ground; the valid-data area
is the scene's rotated imaged rectangle, and QA_PIXEL marks fill, clear, water
and the scene's cloud discs with the real Collection 2 bit values.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.windows import Window

from .metadata import (
    L1_FILES,
    L2_FILES,
    SR_ADD,
    SR_MULT,
    ST_ADD,
    ST_MULT,
    ang_txt,
    mtl_json,
    mtl_tree,
    mtl_txt,
    mtl_xml,
)
from .scenes import PIXEL, SceneRecord

# Real QA_PIXEL values (Collection 2, OLI): fill, clear land, clear water, high-confidence cloud
QA_FILL, QA_CLEAR, QA_WATER, QA_CLOUD = 1, 21824, 21952, 22280

BLOCK_ROWS = 512


@dataclass(frozen=True)
class Layers:
    """Per-pixel facts for one block of a band, from which every band's values follow."""

    inside: np.ndarray
    cloud: np.ndarray
    water: np.ndarray
    terrain: np.ndarray  # 0..1


def terrain(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = (
        0.5
        + 0.22 * np.sin(x / 7300.0 + 1.3) * np.cos(y / 5100.0 - 0.4)
        + 0.15 * np.sin((x + y) / 2900.0)
        + 0.08 * np.cos((x - 2.0 * y) / 1700.0)
        + 0.05 * np.sin(x / 430.0) * np.sin(y / 610.0)
    )
    return np.clip(t, 0.0, 1.0)


def layers(scene: SceneRecord, x: np.ndarray, y: np.ndarray) -> Layers:
    u, v = scene.to_scene(x, y)  # vectorised: plain arithmetic on arrays
    hu, hv = scene.size.across * PIXEL / 2, scene.size.along * PIXEL / 2
    inside = (np.abs(u) <= hu) & (np.abs(v) <= hv)
    cloud = np.zeros(x.shape, dtype=bool)
    for cu, cv, radius in scene.clouds:
        cloud |= (u - cu) ** 2 + (v - cv) ** 2 <= radius**2
    t = terrain(x, y)
    return Layers(inside, cloud & inside, (t < 0.22) & inside & ~cloud, t)


def _sr(base: float, gain: float, water: float) -> Callable[[Layers], np.ndarray]:
    def make(layer: Layers) -> np.ndarray:
        refl = base + gain * layer.terrain
        refl = np.where(layer.water, water, refl)
        refl = np.where(layer.cloud, 0.55, refl)
        dn = np.clip(np.round((refl - SR_ADD) / SR_MULT), 1, 65535)
        return np.where(layer.inside, dn, 0)

    return make


def _linear(
    offset: float, gain: float, fill: float, cloud: float | None = None
) -> Callable[[Layers], np.ndarray]:
    def make(layer: Layers) -> np.ndarray:
        value = offset + gain * layer.terrain
        if cloud is not None:
            value = np.where(layer.cloud, cloud, value)
        return np.where(layer.inside, np.round(value), fill)

    return make


def _qa_pixel(layer: Layers) -> np.ndarray:
    qa = np.where(layer.water, QA_WATER, QA_CLEAR)
    qa = np.where(layer.cloud, QA_CLOUD, qa)
    return np.where(layer.inside, qa, QA_FILL)


def _aerosol(layer: Layers) -> np.ndarray:
    value = 2 + 64 + np.where(layer.water, 4, 0)
    return np.where(layer.inside, value, 1)


def _temperature(layer: Layers) -> np.ndarray:
    kelvin = np.where(layer.cloud, 262.0, 283.0 + 18.0 * layer.terrain)
    return np.where(layer.inside, np.round((kelvin - ST_ADD) / ST_MULT), 0)


@dataclass(frozen=True)
class BandSpec:
    dtype: str
    nodata: float | None
    values: Callable[[Layers], np.ndarray]
    pixel: float = PIXEL


_SR_LOOK = {
    1: (0.03, 0.05, 0.04),
    2: (0.04, 0.06, 0.04),
    3: (0.06, 0.08, 0.04),
    4: (0.06, 0.12, 0.03),
    5: (0.22, 0.18, 0.01),
    6: (0.15, 0.15, 0.005),
    7: (0.09, 0.12, 0.003),
}

L2_SPECS: dict[str, BandSpec] = {
    **{f"SR_B{b}.TIF": BandSpec("uint16", 0, _sr(*_SR_LOOK[b])) for b in range(1, 8)},
    "ST_B10.TIF": BandSpec("uint16", 0, _temperature),
    "ST_TRAD.TIF": BandSpec("int16", -9999, _linear(780, 260, -9999, 520)),
    "ST_URAD.TIF": BandSpec("int16", -9999, _linear(120, 60, -9999)),
    "ST_DRAD.TIF": BandSpec("int16", -9999, _linear(210, 90, -9999)),
    "ST_ATRAN.TIF": BandSpec("int16", -9999, _linear(7800, 900, -9999)),
    "ST_EMIS.TIF": BandSpec("int16", -9999, _linear(9700, 250, -9999)),
    "ST_EMSD.TIF": BandSpec("int16", -9999, _linear(40, 80, -9999)),
    "ST_CDIST.TIF": BandSpec("int16", -9999, _linear(20, 900, -9999, 0)),
    "SR_QA_AEROSOL.TIF": BandSpec("uint8", 1, _aerosol),
    "ST_QA.TIF": BandSpec("int16", -9999, _linear(150, 250, -9999)),
    "QA_PIXEL.TIF": BandSpec("uint16", 1, _qa_pixel),
    "QA_RADSAT.TIF": BandSpec("uint16", None, lambda layer: np.zeros(layer.inside.shape)),
}
L1_SPECS: dict[str, BandSpec] = {
    **{f"B{b}.TIF": BandSpec("uint16", 0, _linear(6000 + 300 * b, 16000, 0, 30000)) for b in range(1, 12)},
    "QA_PIXEL.TIF": L2_SPECS["QA_PIXEL.TIF"],
    "QA_RADSAT.TIF": L2_SPECS["QA_RADSAT.TIF"],
    "VAA.TIF": BandSpec("int16", 0, _linear(10300, 40, 0)),
    "VZA.TIF": BandSpec("int16", 0, _linear(200, 500, 0)),
    "SAA.TIF": BandSpec("int16", 0, _linear(14500, 30, 0)),
    "SZA.TIF": BandSpec("int16", 0, _linear(5500, 60, 0)),
}
L1_SPECS["B8.TIF"] = BandSpec("uint16", 0, _linear(8000, 18000, 0, 31000), pixel=PIXEL / 2)
assert set(L2_SPECS) == {f for f, _, _ in L2_FILES} and set(L1_SPECS) == {f for f, _, _ in L1_FILES}


def band_grid(scene: SceneRecord, pixel: float) -> tuple[Affine, int, int]:
    """Transform and shape of a band: the UL pixel centre is shared by all grids."""
    ul_x, ul_y, lines, samples = scene.grid
    factor = round(PIXEL / pixel)
    shape = ((lines - 1) * factor + 1, (samples - 1) * factor + 1)
    transform = Affine(pixel, 0.0, ul_x - pixel / 2, 0.0, -pixel, ul_y + pixel / 2)
    return transform, shape[0], shape[1]


def write_band(path: Path, scene: SceneRecord, spec: BandSpec, blocksize: int) -> None:
    """Write one band as a COG, block by block so memory stays flat for full-size scenes."""
    transform, height, width = band_grid(scene, spec.pixel)
    profile = {
        "driver": "GTiff",
        "dtype": spec.dtype,
        "count": 1,
        "height": height,
        "width": width,
        "crs": f"EPSG:{scene.epsg}",
        "transform": transform,
        "nodata": spec.nodata,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 1,
    }
    staging = path.with_suffix(".staging.tif")
    cols = np.arange(width, dtype=np.float64)
    with rasterio.open(staging, "w", **profile) as dst:
        for top in range(0, height, BLOCK_ROWS):
            rows = np.arange(top, min(top + BLOCK_ROWS, height), dtype=np.float64)
            x = transform.c + (cols[None, :] + 0.5) * transform.a
            y = transform.f + (rows[:, None] + 0.5) * transform.e
            x, y = np.broadcast_arrays(x, y)
            data = spec.values(layers(scene, x, y)).astype(spec.dtype)
            dst.write(data, 1, window=Window(0, top, width, len(rows)))
    rasterio.shutil.copy(
        staging,
        path,
        driver="COG",
        compress="DEFLATE",
        predictor="2",
        level="1",
        blocksize=str(blocksize),
        overview_resampling="nearest",
    )
    staging.unlink()


def write_browse_jpeg(path: Path, scene: SceneRecord, size: int = 300) -> None:
    """A natural-colour browse image of the product grid, like LandsatLook's."""
    ul_x, ul_y, lines, samples = scene.grid
    scale = max(lines, samples) / size
    height, width = max(1, int(lines / scale)), max(1, int(samples / scale))
    x = ul_x + (np.arange(width)[None, :] + 0.5) * scale * PIXEL
    y = ul_y - (np.arange(height)[:, None] + 0.5) * scale * PIXEL
    x, y = np.broadcast_arrays(x, y)
    layer = layers(scene, x, y)
    rgb = []
    for band in (4, 3, 2):
        dn = _sr(*_SR_LOOK[band])(layer).astype(np.float64)
        refl = np.clip((dn * SR_MULT + SR_ADD) / 0.3, 0, 1)
        rgb.append(np.where(layer.inside, refl * 254 + 1, 0).astype("uint8"))
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a browse image has no CRS
        with mem.open(driver="GTiff", width=width, height=height, count=3, dtype="uint8") as tmp:
            tmp.write(np.stack(rgb))
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="JPEG", quality="85")


@dataclass(frozen=True)
class ProductFile:
    name: str
    path: Path
    size: int
    sha256: str
    cksum: int


class ProductStore:
    """Makes and caches the files of products; safe to use from many server threads."""

    def __init__(self, root: Path, blocksize: int = 256):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.blocksize = blocksize
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._index: dict[str, dict[str, ProductFile]] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def files(self, scene: SceneRecord, level: int) -> dict[str, ProductFile]:
        """All files of the product (suffix -> file), generating them on first use."""
        pid = scene.display_id(level)
        if pid in self._index:
            return self._index[pid]
        with self._lock(pid):
            if pid not in self._index:
                folder = self.root / pid
                if not (folder / "checksums.json").exists():
                    self._generate(scene, level, folder)
                manifest = json.loads((folder / "checksums.json").read_text())
                self._index[pid] = {
                    suffix: ProductFile(
                        name=entry["name"],
                        path=folder / entry["name"],
                        size=entry["size"],
                        sha256=entry["sha256"],
                        cksum=entry["cksum"],
                    )
                    for suffix, entry in manifest.items()
                }
        return self._index[pid]

    def _generate(self, scene: SceneRecord, level: int, folder: Path) -> None:
        pid = scene.display_id(level)
        staging = Path(tempfile.mkdtemp(prefix=f".{pid}.", dir=self.root))
        try:
            specs = L2_SPECS if level == 2 else L1_SPECS
            for suffix, spec in specs.items():
                write_band(staging / f"{pid}_{suffix}", scene, spec, self.blocksize)
            tree = mtl_tree(scene, level)
            (staging / f"{pid}_MTL.txt").write_text(mtl_txt(tree))
            (staging / f"{pid}_MTL.xml").write_text(mtl_xml(tree))
            (staging / f"{pid}_MTL.json").write_text(mtl_json(tree))
            (staging / f"{pid}_ANG.txt").write_text(ang_txt(scene, level))
            members = sorted(p.name for p in staging.iterdir())
            with tarfile.open(staging / f"{pid}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
                for name in members:
                    tar.add(staging / name, arcname=name)
            manifest = {}
            for path in sorted(staging.iterdir()):
                key = "tar" if path.name == f"{pid}.tar" else path.name[len(pid) + 1 :]
                manifest[key] = {"name": path.name, **_digest(path)}
            (staging / "checksums.json").write_text(json.dumps(manifest, indent=1))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def browse(self, scene: SceneRecord, image_format: str = "jpeg") -> Path:
        """The natural-colour browse image, as JPEG (or PNG or WebP, re-encoded from it)."""
        path = self.root / "browse" / f"{scene.entity_id}.jpg"
        if not path.exists():
            with self._lock("browse/" + scene.entity_id):
                if not path.exists():
                    path.parent.mkdir(exist_ok=True)
                    tmp = path.with_name(f".{path.stem}.part.jpg")
                    write_browse_jpeg(tmp, scene)
                    tmp.with_name(tmp.name + ".aux.xml").unlink(missing_ok=True)
                    os.replace(tmp, path)
        if image_format == "jpeg":
            return path
        other = path.with_suffix("." + image_format)
        if not other.exists():
            with self._lock(f"browse/{scene.entity_id}.{image_format}"):
                if not other.exists():
                    tmp = other.with_name(f".{other.stem}.part.{image_format}")
                    with rasterio.open(path) as src:
                        data, profile = src.read(), src.profile
                    profile.update(driver=image_format.upper())
                    for key in ("tiled", "blockxsize", "blockysize", "interleave", "compress", "photometric"):
                        profile.pop(key, None)
                    with rasterio.Env(), rasterio.open(tmp, "w", **profile) as dst:
                        dst.write(data)
                    tmp.with_name(tmp.name + ".aux.xml").unlink(missing_ok=True)
                    os.replace(tmp, other)
        return other


def _digest(path: Path) -> dict[str, int | str]:
    sha, crc = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
    return {"size": path.stat().st_size, "sha256": sha.hexdigest(), "cksum": crc}
