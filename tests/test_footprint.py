"""The mask footprint's row-run tracing outlines exactly the region ``rasterio.features.shapes`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from rasterio.transform import from_origin
from shapely.geometry import Polygon, shape

from stacmirror.catalog import footprint


def _traced(valid: np.ndarray) -> Polygon | None:
    outline = footprint._row_outline(valid)
    return None if outline is None else Polygon(np.column_stack(outline))


def _shapes(valid: np.ndarray) -> list[Polygon]:
    return [shape(g) for g, v in shapes(valid.astype("uint8"), mask=valid) if v == 1]


def test_random_masks_trace_to_the_same_region_or_fall_back() -> None:
    rng = np.random.default_rng(7)
    traced = fell_back = 0
    for _ in range(400):
        valid = np.zeros((24, 24), dtype=bool)
        start = int(rng.integers(4, 10))
        for row in range(rng.integers(0, 6), rng.integers(12, 24)):
            start = int(np.clip(start + rng.integers(-3, 4), 0, 14))  # a wandering, mostly touching run
            valid[row, start : start + rng.integers(1, 10)] = True
        if rng.random() < 0.2:
            valid[rng.integers(0, 24), :] = False  # may split the region
        if rng.random() < 0.2:
            valid[:, rng.integers(0, 24)] = False  # may split rows into two runs
        if not valid.any():
            continue
        polygon, reference = _traced(valid), _shapes(valid)
        if polygon is None:
            fell_back += 1
            continue
        traced += 1
        assert len(reference) == 1 and not reference[0].interiors
        assert polygon.is_valid and polygon.symmetric_difference(reference[0]).area == pytest.approx(0)
    assert traced > 20 and fell_back > 20  # both ways were exercised


def _geotiff(path: Path, valid: np.ndarray) -> Path:
    qa = np.where(valid, 21824, 1).astype("uint16")  # bit 0 set = fill
    profile = dict(driver="GTiff", width=qa.shape[1], height=qa.shape[0], count=1, dtype="uint16")
    with rasterio.open(
        path, "w", crs="EPSG:32617", transform=from_origin(500000, 4000000, 30, 30), **profile
    ) as dst:
        dst.write(qa, 1)
    return path


def test_a_tilted_swath_and_an_slc_off_scene_give_the_general_footprint(tmp_path: Path, monkeypatch) -> None:
    rows, cols = np.mgrid[0:300, 0:300]
    swath = (
        (rows + 0.3 * cols > 60)
        & (rows + 0.3 * cols < 300)
        & (cols - 0.3 * rows > 20)
        & (cols - 0.3 * rows < 230)
    )
    slc_off = swath & ((rows // 9) % 3 != 0) | (swath & (cols < 40))  # stripes of fill, joined on one side
    for name, valid in (("swath", swath), ("slc_off", slc_off)):
        raster = _geotiff(tmp_path / f"{name}_QA_PIXEL.TIF", valid)
        fast = footprint.from_mask(raster, fill_bit=True)
        monkeypatch.setattr(footprint, "_row_outline", lambda valid: None)
        general = footprint.from_mask(raster, fill_bit=True)
        monkeypatch.undo()
        assert (footprint._row_outline(valid) is not None) == (name == "swath")
        assert (
            fast.native.equals(general.native)
            or fast.native.symmetric_difference(general.native).area < 1e-6 * general.native.area
        )
        assert fast.geometry.is_valid and fast.method == "mask"
