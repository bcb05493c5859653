"""The catalog: MTL reader, parity with USGS items, pipeline to loaders, incremental builds, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from shapely.geometry import Polygon, shape

import stacmirror
from stacmirror.catalog.build import build_catalog
from stacmirror.catalog.mtl import MTLError, parse_mtl, parse_mtl_text
from stacmirror.catalog.validate import landsat_problems, validate_catalog
from stacmirror.catalog.walk import item_files
from stacmirror.emulator.scenes import build_archive
from stacmirror.landsat import ProductId

from .helpers import run_harvest

DATASETS = {
    ("C", 2): "landsat_ot_c2_l2",
    ("C", 1): "landsat_ot_c2_l1",
    ("E", 2): "landsat_etm_c2_l2",
    ("T", 2): "landsat_tm_c2_l2",
    ("M", 1): "landsat_mss_c2_l1",
}


def reference_mirror(shared: Path, target: Path) -> dict[str, Path]:
    """The real reference MTL/ANG files laid out as a mirror (metadata-only scenes)."""
    folders: dict[str, Path] = {}
    for path in sorted((shared / "reference/landsat/scenes").glob("*/*")):
        if not any(path.name.endswith(s) for s in ("_MTL.txt", "_MTL.xml", "_MTL.json", "_ANG.txt")):
            continue
        pid = ProductId.parse(path.name[:40])
        folder = target / DATASETS[(pid.sensor, pid.level)] / f"{pid.path:03d}" / f"{pid.row:03d}" / pid.text
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
        folders[pid.text] = folder
    return folders


def usgs_items(shared: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((shared / "reference/landsat/scenes").glob("*/*_stac.json")):
        if "_ST_" not in path.name:
            found[path.name[:40]] = json.loads(path.read_text())
    return found


def to_native(geom, crs: str):
    """A lon/lat footprint in a projected CRS, with both sides of the antimeridian joined."""
    import shapely
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping
    from shapely.ops import unary_union

    if geom.bounds[2] - geom.bounds[0] > 180:  # lon 180+ is fine for PROJ
        geom = shapely.transform(
            geom, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]])
        )
    geom = unary_union([p.buffer(0) for p in getattr(geom, "geoms", [geom])])
    return shape(transform_geom("EPSG:4326", crs, mapping(geom))).buffer(0)


def iou(a, b, crs: str | None = None) -> float:
    """Intersection over union, measured in ``crs`` (degrees distort areas near the poles)."""
    if crs:
        a, b = to_native(a, crs), to_native(b, crs)
    return a.intersection(b).area / a.union(b).area


# -- MTL ----------------------------------------------------------------------------------------------------


def test_mtl_formats_agree_on_every_reference_scene(shared: Path) -> None:
    by_product: dict[str, list[Path]] = {}
    for path in (shared / "reference/landsat/scenes").glob("*/*_MTL.*"):
        by_product.setdefault(path.name[:40], []).append(path)
    assert len(by_product) >= 15
    compared = 0
    for paths in by_product.values():
        parsed = [parse_mtl(p) for p in paths]
        assert all(p == parsed[0] for p in parsed)
        assert parsed[0]["PRODUCT_CONTENTS"]["LANDSAT_PRODUCT_ID"] == paths[0].name[:40]
        compared += len(paths) > 1
    assert compared >= 5


def test_mtl_reader_rejects_broken_input() -> None:
    with pytest.raises(MTLError):
        parse_mtl_text("GROUP = L1_METADATA_FILE\nEND_GROUP = L1_METADATA_FILE\nEND\n", "txt")
    with pytest.raises(MTLError):
        parse_mtl_text("GROUP = LANDSAT_METADATA_FILE\n  GARBAGE\n", "txt")
    with pytest.raises(MTLError):
        parse_mtl_text("<LANDSAT_METADATA_FILE><PRODUCT", "xml")
    with pytest.raises(MTLError):
        parse_mtl_text('{"LANDSAT_METADATA_FILE": {"IMAGE_ATTRIBUTES": {}}}', "json")


# -- parity with USGS items ------------------------------------------------------------------------------


def test_reference_items_match_usgs(shared: Path, tmp_path: Path) -> None:
    reference_mirror(shared, tmp_path)
    result = build_catalog(tmp_path)
    assert result.errors == [] and result.written >= 15
    report = validate_catalog(tmp_path, shared / "stac-schemas")
    assert report.ok, report.problems
    ours = {i.id: i for i in pystac.read_file(str(tmp_path / "catalog.json")).get_items(recursive=True)}
    compared_fields = compared_shapes = 0
    for pid, usgs in usgs_items(shared).items():
        item = ours[pid]
        assert item.properties["landsat:scene_id"].startswith("L")
        assert not [a for a in item.assets.values() if "data" in (a.roles or [])]  # metadata only
        if usgs["stac_version"] == "1.0.0":
            theirs, mine = usgs["properties"], item.properties
            assert mine["datetime"][:19] == theirs["datetime"][:19]
            assert mine["platform"] == theirs["platform"].lower().replace("_", "-")
            assert [i.replace("+", "") for i in mine["instruments"]] == [
                i.lower() for i in theirs["instruments"]
            ]
            for name in (
                "landsat:wrs_type",
                "landsat:wrs_path",
                "landsat:wrs_row",
                "landsat:scene_id",
                "landsat:collection_category",
                "landsat:collection_number",
                "landsat:correction",
                "landsat:cloud_cover_land",
                "view:sun_elevation",
                "view:off_nadir",
            ):
                assert mine[name] == theirs[name], (pid, name)
            cloud = theirs.get("eo:cloud_cover")
            assert mine.get("eo:cloud_cover") == (cloud if cloud is not None and cloud >= 0 else None)
            assert mine["view:sun_azimuth"] == pytest.approx(theirs["view:sun_azimuth"] % 360)
            assert mine["proj:code"] == f"EPSG:{theirs['proj:epsg']}"
            assert mine["proj:shape"] == theirs["proj:shape"]
            assert mine["proj:transform"] == pytest.approx(theirs["proj:transform"][:6])
            compared_fields += 1
        usgs_shape = shape(usgs["geometry"])
        legacy_antimeridian = (
            usgs["stac_version"] < "1.0.0" and usgs_shape.bounds[2] - usgs_shape.bounds[0] > 180
        )
        if legacy_antimeridian:
            # STAC 0.7 items drew antimeridian scenes as one malformed ring: compare with the MTL grid
            from stacmirror.catalog.footprint import from_mtl
            from stacmirror.catalog.properties import epsg_of

            mtl = parse_mtl(next(tmp_path.rglob(f"{pid}_MTL.txt")))
            grid = from_mtl(mtl, epsg_of(mtl)).native
            mine_native = to_native(shape(item.geometry), item.properties["proj:code"])
            assert item.geometry["type"] == "MultiPolygon" and item.bbox[0] > 0 > item.bbox[2]
            assert mine_native.intersection(grid).area / mine_native.area > 0.99
            assert 0.5 < mine_native.area / grid.area < 0.95  # the imaged area, not the grid with its collar
            continue
        if "ang" in item.assets and item.properties["landsat:correction"].startswith("L2"):
            score = iou(shape(item.geometry), shape(usgs["geometry"]), item.properties["proj:code"])
            assert score >= 0.95, (pid, score)
            compared_shapes += 1
    assert compared_fields >= 8 and compared_shapes >= 4


def test_items_are_at_least_as_complete_as_usgs(shared: Path, tmp_path: Path) -> None:
    reference_mirror(shared, tmp_path)
    build_catalog(tmp_path)
    item = json.loads(next(tmp_path.rglob("LT05_L2SP_010067_19860424_20200918_02_T2.json")).read_text())
    usgs = json.loads(
        next((shared / "reference/landsat/scenes").rglob("LT05_L2SP_010067*_SR_stac.json")).read_text()
    )
    missing = [k for k in usgs["properties"] if k not in item["properties"] and k not in ("updated",)]
    assert missing == []
    for extra in (
        "grid:code",
        "sci:doi",
        "landsat:product_generated",
        "proj:centroid",
        "processing:software",
    ):
        assert extra in item["properties"]
    assert any(link["rel"] == "cite-as" for link in item["links"])


# -- the pipeline -------------------------------------------------------------------------------------------


@pytest.fixture
def harvested(emulator, tmp_path: Path) -> Path:
    out = tmp_path / "mirror"
    summary, _ = run_harvest(
        emulator,
        out,
        max_scenes=4,
        mode="bands",
        bands=["red", "green", "blue", "nir08", "qa_pixel", "MTL", "ANG"],
    )
    assert summary.files_failed == 0
    return out


def test_pipeline_validates_and_loads_in_both_loaders(harvested: Path, shared: Path) -> None:
    result = build_catalog(harvested)
    assert result.errors == [] and result.written == 4
    report = validate_catalog(harvested, shared / "stac-schemas")
    assert report.ok, report.problems
    for path in [harvested / "catalog.json", *harvested.rglob("*.json")]:
        text = path.read_text()
        assert str(harvested) not in text  # relative links and hrefs only
    catalog = pystac.read_file(str(harvested / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    item = items[0]
    red = item.assets["red"]
    assert red.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert red.extra_fields["raster:bands"][0]["scale"] == 2.75e-05
    assert item.assets["thumbnail"].media_type == "image/jpeg"
    assert item.assets["mtl.txt"].extra_fields["file:checksum"].startswith("1220")

    import odc.stac
    import stackstac

    # Landsat pixel centres sit on multiples of 30 m: anchor odc-stac's grid on centres, so nothing resamples
    ds = odc.stac.load(items, bands=["red"], chunks={}, anchor="center")
    loaded = stacmirror.items(harvested)
    assert all(i.properties["proj:epsg"] == 32610 for i in loaded)
    assert all(a.href.startswith("/") for i in loaded for a in i.assets.values())
    cube = stackstac.stack(
        loaded,
        assets=["red"],
        rescale=False,
        dtype="uint16",
        fill_value=np.uint16(0),
        resolution=30,
        snap_bounds=False,
        xy_coords="topleft",
    )
    for item in loaded:
        with rasterio.open(item.assets["red"].href) as src:
            direct = src.read(1)
            x0, y0 = src.transform.c, src.transform.f
        when = np.datetime64(item.datetime.replace(tzinfo=None))
        x1, y1 = x0 + direct.shape[1] * 30, y0 - direct.shape[0] * 30
        odc_px = ds["red"].sel(time=when)
        odc_px = odc_px.where(
            (odc_px.x > x0) & (odc_px.x < x1) & (odc_px.y < y0) & (odc_px.y > y1), drop=True
        )
        np.testing.assert_array_equal(odc_px.values.astype("uint16"), direct)
        st = cube.sel(time=when, band="red")  # xy_coords="topleft": coordinates are pixel corners
        st = st.where((st.x >= x0) & (st.x < x1) & (st.y <= y0) & (st.y > y1), drop=True)
        np.testing.assert_array_equal(np.asarray(st.values).squeeze().astype("uint16"), direct)


def test_footprints_follow_the_imaged_area(harvested: Path) -> None:
    build_catalog(harvested)
    archive = {s.display_id(2): s for s in build_archive() if s.l2_generated}
    for path in harvested.rglob("LC0*_T?.json"):
        item = json.loads(path.read_text())
        truth = Polygon(archive[item["id"]].footprint_lonlat)
        assert iou(shape(item["geometry"]), truth) >= 0.95
        ring = item["geometry"]["coordinates"][0]
        assert Polygon(ring).exterior.is_ccw
    # without rasters, the ANG corners give nearly the same area
    folder = next(p.parent for p in harvested.rglob("*_ANG.txt"))
    for tif in folder.glob("*.TIF"):
        tif.unlink()
    for extra in folder.glob("*_browse.jpg"):
        extra.unlink()
    build_catalog(harvested)
    item = json.loads((folder / f"{folder.name}.json").read_text())
    assert iou(shape(item["geometry"]), Polygon(archive[item["id"]].footprint_lonlat)) >= 0.95
    assert not [a for a in item["assets"].values() if "proj:shape" in a]
    assert item["properties"]["proj:shape"]  # metadata-only: the grid from the MTL


def test_incremental_builds_touch_only_what_changed(harvested: Path, emulator, tmp_path: Path) -> None:
    first = build_catalog(harvested)
    stamps = {p: p.stat().st_mtime_ns for p in harvested.rglob("*.json")}
    again = build_catalog(harvested)
    assert again.written == 0 and again.unchanged == 4 and again.rasters_opened == 0
    assert {p: p.stat().st_mtime_ns for p in harvested.rglob("*.json")} == stamps
    assert first.elapsed > 0
    # a new scene: only its item and its parents change
    run_harvest(emulator, harvested, max_scenes=5, mode="bands", bands=["red", "MTL"])
    third = build_catalog(harvested)
    assert third.written == 1 and third.unchanged == 4
    changed = {p.name for p in harvested.rglob("*.json") if stamps.get(p) != p.stat().st_mtime_ns}
    new_items = {name for name in changed if name.startswith("LC0") and name.endswith("_T1.json")}
    assert len(new_items) == 1 and "collection.json" in changed
    assert {n for n in changed - new_items if not n.endswith("_MTL.json")} <= {
        "collection.json",
        "catalog.json",
        "catalog-state.json",
    }


def test_broken_scenes_are_reported_and_the_rest_catalogued(harvested: Path) -> None:
    folders = sorted(p.parent for p in harvested.rglob("*_MTL.txt"))
    bad_mtl, bad_tif = folders[0], folders[1]
    for mtl in bad_mtl.glob("*_MTL.*"):
        mtl.write_text("GROUP = LANDSAT_METADATA_FILE\n  NOT A KEY VALUE LINE\n")
    tif = next(bad_tif.glob("*_SR_B4.TIF"))
    tif.write_bytes(tif.read_bytes()[:2000])
    unknown = harvested / "landsat_ot_c2_l2" / "044" / "033" / "not-a-scene"
    unknown.mkdir()
    result = build_catalog(harvested)
    assert len(result.errors) == 3
    assert any(bad_mtl.name in e and "MTL" in e for e in result.errors)
    assert any(bad_tif.name in e and "SR_B4.TIF" in e for e in result.errors)
    assert any("not-a-scene" in e for e in result.errors)
    assert result.written == 2
    ids = [p.stem for p in item_files(harvested / "landsat_ot_c2_l2" / "collection.json")]
    assert len(ids) == 2 and bad_mtl.name not in ids


def test_thumbnail_is_rendered_without_a_browse_image(harvested: Path) -> None:
    for browse in harvested.rglob("*_browse.jpg"):
        browse.unlink()
    build_catalog(harvested)
    item = json.loads(next(harvested.rglob("LC0*_T?.json")).read_text())
    thumb = item["assets"]["thumbnail"]
    assert thumb["type"] == "image/png" and thumb["roles"] == ["thumbnail"]
    folder = next(harvested.rglob("LC0*_T?.json")).parent
    with rasterio.open(folder / thumb["href"]) as src:
        assert src.count == 4 and max(src.width, src.height) <= 256 and src.read(4).any()


def test_landsat_formats_are_checked() -> None:
    good = {
        "landsat:wrs_path": "044",
        "landsat:wrs_row": "033",
        "landsat:wrs_type": "2",
        "landsat:collection_category": "T1",
        "landsat:collection_number": "02",
        "landsat:correction": "L2SP",
        "landsat:scene_id": "LC80440332021328LGN00",
        "landsat:cloud_cover_land": 3.2,
    }
    assert landsat_problems(good) == []
    bad = {**good, "landsat:wrs_path": 44, "landsat:correction": "BOGUS", "landsat:cloud_cover_land": 140}
    assert len(landsat_problems(bad)) == 3


def test_validate_command_reports_bad_files(harvested: Path, shared: Path) -> None:
    import subprocess
    import sys

    build_catalog(harvested)
    item_path = next(harvested.rglob("LC0*_T?.json"))
    item = json.loads(item_path.read_text())
    item["properties"]["landsat:wrs_path"] = 44
    del item["properties"]["datetime"]
    item_path.write_text(json.dumps(item))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stacmirror.cli",
            "validate",
            str(harvested),
            "--schemas",
            str(shared / "stac-schemas"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert str(item_path) in result.stdout and "landsat:wrs_path" in result.stdout


def test_header_reader_gives_the_same_item_as_gdal(harvested: Path) -> None:
    """Files the ledger verified are described from their header alone; the item is the same."""
    from stacmirror.catalog.stac import build_item
    from stacmirror.ledger import Ledger

    folder = next(p.parent for p in harvested.rglob("*_QA_PIXEL.TIF"))
    ledger = Ledger(harvested)
    verified = {
        Path(r.path).name: f"{r.size}:{r.sha256}" for r in ledger.files_of(folder.name) if r.state == "done"
    }
    ledger.close()
    fast = build_item(str(folder), "landsat_ot_c2_l2", verified)
    slow = build_item(str(folder), "landsat_ot_c2_l2", {})  # every raster opened with GDAL
    assert not isinstance(fast, str) and not isinstance(slow, str)
    assert fast.item == slow.item and fast.rasters_opened == 5


@pytest.mark.parametrize(
    "profile",
    [
        {"dtype": "uint8", "tiled": False},
        {"dtype": "int16", "nodata": -9999, "tiled": True, "blockxsize": 256, "blockysize": 256},
        {"dtype": "float32", "nodata": -1.5, "tiled": True, "blockxsize": 256, "blockysize": 256},
        {"dtype": "uint16", "nodata": 0, "driver": "COG"},
        {"dtype": "uint16", "nodata": 1, "crs": "EPSG:4326", "driver": "COG"},
    ],
)
def test_geotiff_header_matches_rasterio(tmp_path: Path, profile: dict) -> None:
    from rasterio.transform import from_origin

    from stacmirror.catalog.geotiff import read_header
    from stacmirror.catalog.stac import is_cog

    profile = dict(profile)
    driver = profile.pop("driver", "GTiff")
    crs = profile.pop("crs", "EPSG:32610")
    size = 700
    data = (np.arange(size * size) % 200).reshape(size, size).astype(profile["dtype"])
    path = tmp_path / "x.tif"
    origin = (500_000.0, 4_200_000.0) if crs != "EPSG:4326" else (-122.0, 38.0)
    cell = 30.0 if crs != "EPSG:4326" else 0.0003
    with rasterio.open(
        path, "w", driver=driver, width=size, height=size, count=1, crs=crs,
        transform=from_origin(*origin, cell, cell), **profile,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    header = read_header(path)
    assert header is not None
    with rasterio.open(path) as src:
        assert (header.width, header.height, header.dtype) == (src.width, src.height, src.dtypes[0])
        assert header.nodata == src.nodata and header.transform == tuple(src.transform)[:6]
        assert header.epsg == src.crs.to_epsg() and header.block == tuple(src.block_shapes[0])
        assert header.is_cog == is_cog(src)


def test_geotiff_header_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    from stacmirror.catalog.geotiff import read_header

    (tmp_path / "not.tif").write_bytes(b"<html>not a tiff</html>")
    assert read_header(tmp_path / "not.tif") is None
    with rasterio.open(
        tmp_path / "big.tif", "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
        BIGTIFF="YES", crs="EPSG:32610", transform=rasterio.transform.from_origin(0, 0, 30, 30),
    ) as dst:  # fmt: skip
        dst.write(np.zeros((10, 10), "uint8"), 1)
    assert read_header(tmp_path / "big.tif") is None
