"""Stacks and crops: rectangle optimality and containment, lattice alignment, pixel equality, loaders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import Polygon, box

import stacmirror
from stacmirror.catalog.build import build_catalog
from stacmirror.catalog.validate import validate_catalog
from stacmirror.cropper.crop import crop_stack, inward_window
from stacmirror.cropper.rectangle import largest_in_mask, largest_in_rows, row_intervals
from stacmirror.cropper.stacks import find_stacks
from stacmirror.errors import InvalidInput
from stacmirror.layout import Mirror

from .helpers import date, run_harvest

SOUTH = box(147.5, -35.0, 149.0, -34.0)
STACMIRROR = [sys.executable, "-m", "stacmirror.cli"]


def brute_force(mask: np.ndarray) -> int:
    """The largest all-True rectangle by trying every one (prefix sums make each check O(1))."""
    h, w = mask.shape
    sums = np.zeros((h + 1, w + 1), dtype=np.int64)
    sums[1:, 1:] = mask.cumsum(0).cumsum(1)
    best = 0
    for r0 in range(h):
        for r1 in range(r0 + 1, h + 1):
            for c0 in range(w):
                for c1 in range(c0 + 1, w + 1):
                    area = (r1 - r0) * (c1 - c0)
                    if area > best and sums[r1, c1] - sums[r0, c1] - sums[r1, c0] + sums[r0, c0] == area:
                        best = area
    return best


def cells_inside(polygon: Polygon, size: int) -> np.ndarray:
    return np.array(
        [[polygon.contains(box(c, size - r - 1, c + 1, size - r)) for c in range(size)] for r in range(size)]
    )


@pytest.mark.parametrize("seed", range(12))
def test_rectangle_is_optimal_on_random_convex_quadrilaterals(seed: int) -> None:
    rng = np.random.default_rng(seed)
    corners = [
        (rng.uniform(0, 9), rng.uniform(0, 9)),
        (rng.uniform(19, 28), rng.uniform(0, 9)),
        (rng.uniform(19, 28), rng.uniform(19, 28)),
        (rng.uniform(0, 9), rng.uniform(19, 28)),
    ]
    mask = cells_inside(Polygon(corners).convex_hull, 28)
    rect = largest_in_rows(*row_intervals(mask))
    assert mask[rect.row0 : rect.row1, rect.col0 : rect.col1].all()  # inside
    optimum = brute_force(mask)
    assert rect.area >= 0.995 * optimum
    fallback = largest_in_mask(mask)
    assert (
        mask[fallback.row0 : fallback.row1, fallback.col0 : fallback.col1].all() and fallback.area == optimum
    )


def test_non_convex_areas_use_a_correct_fallback() -> None:
    l_shape = Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 30), (0, 30)])
    mask = cells_inside(l_shape, 30)
    rect = largest_in_mask(mask)
    assert mask[rect.row0 : rect.row1, rect.col0 : rect.col1].all() and rect.area == brute_force(mask) == 300
    big = np.zeros((3000, 3000), dtype=bool)
    big[100:2900, 100:1000] = True
    big[100:1000, 100:2900] = True
    coarse = largest_in_mask(big)
    assert big[coarse.row0 : coarse.row1, coarse.col0 : coarse.col1].all()
    assert coarse.area >= 0.98 * 2800 * 900


def test_inward_windows_snap_each_lattice() -> None:
    red = rasterio.Affine(30, 0, 599985, 0, -30, 4300015)
    pan = rasterio.Affine(15, 0, 599992.5, 0, -15, 4300007.5)
    bounds = (599985 + 300, 4300015 - 600, 599985 + 900, 4300015 - 300)
    assert inward_window(red, bounds) == (10, 10, 20, 10)
    col, row, width, height = inward_window(pan, bounds)
    x0, y0 = pan.c + col * 15, pan.f - row * 15
    assert (
        x0 >= bounds[0] and x0 + width * 15 <= bounds[2] and y0 <= bounds[3] and y0 - height * 15 >= bounds[1]
    )
    assert width == 39 and height == 19  # half a pan pixel lost on each side, nothing resampled


@pytest.fixture
def stacked(emulator, tmp_path: Path) -> Path:
    out = tmp_path / "mirror"
    run_harvest(
        emulator, out, mode="bands", bands=["red", "green", "blue", "nir08", "qa_pixel", "MTL"], max_scenes=6
    )
    build_catalog(out)
    return out


def test_crops_are_inside_aligned_and_pixel_identical(stacked: Path, shared: Path) -> None:
    stacks, notes = find_stacks(stacked)
    assert [s.stack_id for s in stacks] == ["landsat_ot_c2_l2-044033"] and notes == []
    stack = stacks[0]
    assert len(stack.members) == 6 and stack.rect.area > 0
    result = crop_stack(stacked, stack)
    assert result.errors == [] and result.cropped == 6
    transforms = set()
    for member in stack.members:
        folder = stacked / "crops" / stack.stack_id / member.id
        crop_item = json.loads((folder / f"{member.id}.json").read_text())
        assert set(crop_item["assets"]) == set(member.item["assets"])  # same keys as the source
        for key in ("red", "nir08", "qa_pixel"):
            with rasterio.open(folder / crop_item["assets"][key]["href"]) as crop:
                cropped = crop.read(1)
                transforms.add(tuple(crop.transform)[:6])
                assert crop.profile["tiled"] and crop.overviews(1) or max(crop.shape) <= 512
                with rasterio.open(member.folder / member.item["assets"][key]["href"]) as src:
                    col = round((crop.transform.c - src.transform.c) / 30)
                    row = round((src.transform.f - crop.transform.f) / 30)
                    assert crop.transform.c == src.transform.c + col * 30  # on the source lattice
                    window = src.read(1, window=Window(col, row, crop.width, crop.height))
                    assert crop.nodata == src.nodata and crop.dtypes == src.dtypes
                    if key == "red":
                        assert crop.scales == src.scales and crop.offsets == src.offsets
            np.testing.assert_array_equal(cropped, window)
            if key == "qa_pixel":
                assert not (cropped & 1).any(), "the rectangle is inside every scene's valid area"
        assert any(link["rel"] == "derived_from" for link in crop_item["links"])
    assert len(transforms) == 1  # every crop on one grid: they stack pixel for pixel
    build_catalog(stacked)
    report = validate_catalog(stacked, shared / "stac-schemas")
    assert report.ok, report.problems
    again = crop_stack(stacked, find_stacks(stacked)[0][0])
    assert again.skipped


def test_loaders_stack_the_crops_without_resampling(stacked: Path) -> None:
    stack = find_stacks(stacked)[0][0]
    crop_stack(stacked, stack)
    build_catalog(stacked)
    collection_id = f"crop-{stack.stack_id}"
    catalog = pystac.read_file(str(stacked / "catalog.json"))
    crops = [i for i in catalog.get_items(recursive=True) if i.collection_id == collection_id]
    assert len(crops) == 6

    import odc.stac
    import stackstac

    ds = odc.stac.load(crops, bands=["red"], anchor="center")
    cube = stackstac.stack(
        stacmirror.items(stacked, collection=collection_id),
        assets=["red"],
        rescale=False,
        dtype="uint16",
        fill_value=np.uint16(0),
        snap_bounds=False,
        resolution=30,
    )
    expected = (6, stack.rect.height, stack.rect.width)
    assert ds["red"].shape == expected and cube.shape == (6, 1, stack.rect.height, stack.rect.width)
    for item in stacmirror.items(stacked, collection=collection_id):
        with rasterio.open(item.assets["red"].href) as src:
            direct = src.read(1)
        when = np.datetime64(item.datetime.replace(tzinfo=None))
        np.testing.assert_array_equal(ds["red"].sel(time=when).values, direct)
        np.testing.assert_array_equal(np.asarray(cube.sel(time=when, band="red").values), direct)


def test_southern_hemisphere_stack(emulator, tmp_path: Path) -> None:
    out = tmp_path / "south"
    run_harvest(emulator, out, mode="bands", bands=["red", "qa_pixel", "MTL"], area=SOUTH, max_scenes=5)
    build_catalog(out)
    stacks, _ = find_stacks(out)
    assert len(stacks) == 1 and stacks[0].epsg == 32655 and stacks[0].bounds[3] < 0  # negative northings
    result = crop_stack(out, stacks[0])
    assert result.errors == [] and result.cropped == len(stacks[0].members)
    crop = next((out / "crops").rglob("*_QA_PIXEL.TIF"))
    with rasterio.open(crop) as src:
        assert src.crs.to_epsg() == 32655 and not (src.read(1) & 1).any()


def test_pan_band_is_cropped_on_its_own_lattice(emulator, tmp_path: Path) -> None:
    out = tmp_path / "l1"
    run_harvest(
        emulator,
        out,
        dataset="landsat_ot_c2_l1",
        end=date("2021-11-30"),
        mode="bands",
        bands=["pan", "red", "qa_pixel", "MTL"],
        max_scenes=3,
    )
    build_catalog(out)
    stack = find_stacks(out)[0][0]
    crop_stack(out, stack)
    xmin, ymin, xmax, ymax = stack.bounds
    for member in stack.members:
        item = json.loads((out / "crops" / stack.stack_id / member.id / f"{member.id}.json").read_text())
        pan = item["assets"]["pan"]
        a, _, c, _, e, f = pan["proj:transform"]
        height, width = pan["proj:shape"]
        assert a == 15 and xmin <= c and c + width * a <= xmax and f <= ymax and f + height * e >= ymin
        with (
            rasterio.open(out / "crops" / stack.stack_id / member.id / pan["href"]) as crop,
            rasterio.open(member.folder / member.item["assets"]["pan"]["href"]) as src,
        ):
            col, row = (
                round((crop.transform.c - src.transform.c) / 15),
                round((src.transform.f - crop.transform.f) / 15),
            )
            np.testing.assert_array_equal(
                crop.read(1), src.read(1, window=Window(col, row, crop.width, crop.height))
            )


def test_stacks_command_and_aoi(stacked: Path, tmp_path: Path) -> None:
    aoi = tmp_path / "aoi.geojson"
    stack = find_stacks(stacked)[0][0]
    west, south, east, north = stack.geometry().bounds
    l_shape = Polygon(
        [
            (west, south),
            (east, south),
            (east, (south + north) / 2),
            ((west + east) / 2, (south + north) / 2),
            ((west + east) / 2, north),
            (west, north),
        ]
    )
    aoi.write_text(json.dumps({"type": "Feature", "geometry": l_shape.__geo_interface__, "properties": {}}))
    geojson = tmp_path / "stacks.geojson"
    result = subprocess.run(
        [*STACMIRROR, "stacks", str(stacked), "--aoi", str(aoi), "--geojson", str(geojson), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed[0]["scenes"] == 6 and 0 < listed[0]["area_km2"] < stack.area_km2 * 0.6
    rectangle = json.loads(geojson.read_text())["features"][0]
    from shapely.geometry import shape

    assert l_shape.buffer(1e-6).contains(shape(rectangle["geometry"]))
    unknown = subprocess.run(
        [*STACMIRROR, "crop", str(stacked), "--assets", "nope"], capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_crops_are_searchable_offline_and_through_the_api(stacked: Path, tmp_path: Path) -> None:
    import requests

    from stacmirror.layout import Mirror

    from .helpers import STACMIRROR, serving

    stack = find_stacks(stacked)[0][0]
    crop_stack(stacked, stack)
    collection_id = f"crop-{stack.stack_id}"
    parquet = Mirror(stacked).crop_parquet(stack.stack_id)
    assert parquet.exists()
    members = sorted(m.id for m in stack.members)
    assert sorted(stacmirror.query(stacked, collection=collection_id).ids) == members
    listed = subprocess.run(
        [*STACMIRROR, "query", str(stacked), "--collection", collection_id, "--ids"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0 and sorted(listed.stdout.split()) == members, listed.stderr
    with serving(stacked) as server:
        api = f"{server.base_url}/api"
        ids = [c["id"] for c in requests.get(f"{api}/collections", timeout=30).json()["collections"]]
        assert collection_id in ids
        found = requests.post(f"{api}/search", json={"collections": [collection_id], "limit": 50}, timeout=30)
        features = found.json()["features"]
        assert sorted(f["id"] for f in features) == members
        assert all(f["collection"] == collection_id for f in features)
        opened = requests.get(next(link["href"] for link in features[0]["links"] if link["rel"] == "self"))
        assert opened.headers["Content-Type"] == "application/geo+json"
        assert opened.json()["bbox"] == features[0]["bbox"]  # the crop's item, not the scene's
        # an area search across every collection finds scenes and crops alike
        west, south, east, north = features[0]["bbox"]
        everywhere = requests.get(
            f"{api}/search", params={"bbox": f"{west},{south},{east},{north}", "limit": 100}
        )
        assert {f["collection"] for f in everywhere.json()["features"]} >= {collection_id, stack.collection}


RASTER_FILE_FIELDS = ("href", "type", "file:size", "file:checksum")


def _crop_items(out: Path, stack_id: str) -> dict[str, dict]:
    folder = out / "crops" / stack_id
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*/*.json") if p.stem == p.parent.name}


def test_virtual_crops_are_the_copied_crops_without_the_copies(
    stacked: Path, tmp_path: Path, shared: Path
) -> None:
    import shutil

    import odc.stac
    import stackstac

    from stacmirror.cropper.vrt import VRT_MEDIA_TYPE

    copied = tmp_path / "copied"
    shutil.copytree(stacked, copied)
    stack = find_stacks(copied)[0][0]
    assert crop_stack(copied, stack).cropped == 6
    build_catalog(copied)
    run = subprocess.run(
        [*STACMIRROR, "crop", str(stacked), "--virtual", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["stacks"][0]["itemsCropped"] == 6
    virtual_items, copied_items = _crop_items(stacked, stack.stack_id), _crop_items(copied, stack.stack_id)
    assert set(virtual_items) == set(copied_items) and len(virtual_items) == 6
    for item_id, virtual in virtual_items.items():
        copy_item = copied_items[item_id]
        folder = stacked / "crops" / stack.stack_id / item_id
        assert not list(folder.glob("*.TIF")), "a virtual crop copies no pixels"
        for key, asset in virtual["assets"].items():
            twin = copy_item["assets"][key]
            if "proj:transform" not in asset:
                continue
            assert asset["type"] == VRT_MEDIA_TYPE and asset["href"].endswith(".vrt")
            assert asset["file:size"] == (folder / asset["href"]).stat().st_size < 10_000
            strip = RASTER_FILE_FIELDS
            assert {k: v for k, v in asset.items() if k not in strip} == {
                k: v for k, v in twin.items() if k not in strip
            }
            with (
                rasterio.open(folder / asset["href"]) as vrt,
                rasterio.open(copied / "crops" / stack.stack_id / item_id / twin["href"]) as cog,
            ):
                assert vrt.profile["driver"] == "VRT" and vrt.transform == cog.transform
                assert (vrt.nodata, vrt.dtypes, vrt.scales, vrt.offsets, vrt.descriptions) == (
                    cog.nodata,
                    cog.dtypes,
                    cog.scales,
                    cog.offsets,
                    cog.descriptions,
                )
                np.testing.assert_array_equal(vrt.read(), cog.read())
        same = ("created", "proj:shape", "proj:transform")
        assert {k: v for k, v in virtual["properties"].items() if k not in same} == {
            k: v for k, v in copy_item["properties"].items() if k not in same
        }
        assert (virtual["geometry"], virtual["bbox"], virtual["links"]) == (
            copy_item["geometry"],
            copy_item["bbox"],
            copy_item["links"],
        )
    report = validate_catalog(stacked, shared / "stac-schemas")
    assert report.ok, report.problems

    collection_id = f"crop-{stack.stack_id}"
    bands = ["red", "qa_pixel"]
    loaded = {}
    for name, out in (("virtual", stacked), ("copied", copied)):
        items = list(stacmirror.items(out, collection=collection_id))
        ds = odc.stac.load(items, bands=bands, anchor="center")
        cube = stackstac.stack(
            items, assets=bands, rescale=False, dtype="uint16", fill_value=np.uint16(0), snap_bounds=False
        )
        loaded[name] = (ds, cube.compute())
    assert loaded["virtual"][0]["red"].shape == (6, stack.rect.height, stack.rect.width)
    for band in bands:
        np.testing.assert_array_equal(loaded["virtual"][0][band].values, loaded["copied"][0][band].values)
    np.testing.assert_array_equal(loaded["virtual"][1].values, loaded["copied"][1].values)
    assert int(loaded["virtual"][0]["red"].max()) > 0

    moved = tmp_path / "moved"  # the VRTs name their sources relative to themselves
    shutil.move(stacked, moved)
    some = next(iter(virtual_items.values()))
    with rasterio.open(moved / "crops" / stack.stack_id / some["id"] / some["assets"]["red"]["href"]) as vrt:
        assert vrt.read(1).any()

    again = crop_stack(moved, find_stacks(moved)[0][0], virtual=True)
    assert again.skipped  # unchanged: nothing is rewritten
    switched = crop_stack(moved, find_stacks(moved)[0][0])
    assert not switched.skipped and switched.cropped == 6  # a mode switch re-crops
    folder = moved / "crops" / stack.stack_id / some["id"]
    assert list(folder.glob("*.TIF")) and not list(folder.glob("*.vrt"))


def test_a_compression_level_trades_size_for_speed_and_keeps_the_pixels(
    stacked: Path, tmp_path: Path
) -> None:
    import shutil

    default = tmp_path / "default"
    shutil.copytree(stacked, default)
    stack = find_stacks(stacked)[0][0]
    assert crop_stack(default, stack, assets={"red", "nir08"}).cropped == 6
    bad = [["--level", "0"], ["--level", "10"], ["--level", "3", "--virtual"]]
    for extra in bad:  # refused before any stack is looked for: one line, exit 2, nothing written
        run = subprocess.run(
            [*STACMIRROR, "crop", str(stacked), *extra], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 2, run.stderr
        assert run.stderr.strip().splitlines() == [run.stderr.strip()] and "--level" in run.stderr
        assert not (stacked / "crops").exists()
    with pytest.raises(InvalidInput):
        stacmirror.crop(stacked, [stack], level=True)
    run = subprocess.run(
        [*STACMIRROR, "crop", str(stacked), "--assets", "red,nir08", "--level", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    fast, slow = _crop_items(stacked, stack.stack_id), _crop_items(default, stack.stack_id)
    assert set(fast) == set(slow) and len(fast) == 6
    larger = 0
    for item_id, item in fast.items():
        for key in ("red", "nir08"):
            ours = stacked / "crops" / stack.stack_id / item_id / item["assets"][key]["href"]
            theirs = default / "crops" / stack.stack_id / item_id / slow[item_id]["assets"][key]["href"]
            with rasterio.open(ours) as a, rasterio.open(theirs) as b:
                assert a.profile == b.profile  # same codec, predictor, tiles, grid
                np.testing.assert_array_equal(a.read(), b.read())
                assert a.overviews(1) == b.overviews(1)
            larger += ours.stat().st_size > theirs.stat().st_size
            assert item["assets"][key]["file:size"] == ours.stat().st_size
    assert larger > 0, "level 1 compresses less than GDAL's default"
    state = json.loads(Mirror(stacked).crop_state_path(stack.stack_id).read_text())
    assert state["level"] == 1
    assert crop_stack(stacked, stack, assets={"red", "nir08"}, level=1).skipped  # the same level: kept
    again = crop_stack(stacked, stack, assets={"red", "nir08"})
    assert not again.skipped and again.cropped == 6  # another level re-crops
