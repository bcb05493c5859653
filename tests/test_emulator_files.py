"""The emulator's files are real: GeoTIFFs open in rasterio as advertised and agree with their MTL."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import rasterio
import requests

from stacmirror.catalog.mtl import numbers, parse_ang, parse_mtl, parse_mtl_text
from stacmirror.emulator import Faults
from stacmirror.emulator.scenes import SceneSize, build_archive
from stacmirror.m2m import M2MClient

from .helpers import FAST_RETRY, demo_credentials

L2 = "landsat_ot_c2_l2"


def _urls(api: M2MClient, scene_count: int = 1, entity_ids: list[str] | None = None, label: str = "t"):
    if entity_ids is None:
        scenes = api.scene_search(L2, max_results=scene_count).scenes
        entity_ids = [s.entity_id for s in scenes]
    options = api.download_options(L2, entity_ids=entity_ids)
    bundle = next(o for o in options if o.is_bundle and o.product.available)
    files = {
        f.display_id.rsplit("_", 1)[-1] if "_B" not in f.display_id else f.display_id[41:]: f
        for f in bundle.secondaries
    }
    wanted = [bundle.product, *bundle.secondaries]
    result = api.download_request(
        label, downloads=[{"entityId": f.entity_id, "productId": f.product_id} for f in wanted]
    )
    by_id = {d.entity_id: d.url for d in result.available}
    return (
        bundle,
        files,
        {f.display_id if f is not bundle.product else "tar": by_id[f.entity_id] for f in wanted},
    )


def test_files_match_checksums_and_headers(client: M2MClient) -> None:
    bundle, _, urls = _urls(client)
    tar = requests.get(urls["tar"], timeout=30)
    assert tar.status_code == 200 and "Accept-Ranges" not in tar.headers
    assert tar.headers["Content-Disposition"] == f'attachment; filename="{bundle.product.display_id}.tar"'
    assert int(tar.headers["Content-Length"]) == len(tar.content) == bundle.product.filesize
    assert hashlib.sha256(tar.content).hexdigest() == bundle.product.sha256
    with tarfile.open(fileobj=io.BytesIO(tar.content), mode="r:") as archive:  # plain tar, not gzip
        names = archive.getnames()
    assert all("/" not in n for n in names) and f"{bundle.product.display_id}_MTL.txt" in names
    for secondary in bundle.secondaries:
        body = requests.get(urls[secondary.display_id], timeout=30).content
        assert hashlib.sha256(body).hexdigest() == secondary.sha256 and len(body) == secondary.filesize


def test_range_requests_and_signatures(make_emulator) -> None:
    emu = make_emulator(Faults(url_ttl=3600))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as api:
        bundle, _, urls = _urls(api)
    url = urls["tar"]
    whole = requests.get(url, timeout=30).content
    part = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=30)
    assert part.status_code == 206 and part.headers["Accept-Ranges"] == "bytes"
    assert part.headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert part.content == whole[1000:]
    assert requests.get(url, headers={"Range": f"bytes={len(whole)}-"}, timeout=30).status_code == 416
    assert requests.get(url.replace("requestSignature=", "requestSignature=x"), timeout=30).status_code == 403
    emu.faults.url_ttl = -1  # every URL is now expired
    assert requests.get(url, timeout=30).status_code == 403
    assert emu.service.stats["auth_header_to_files"] == 0


def test_rasters_agree_with_mtl(client: M2MClient, tmp_path) -> None:
    _, _, urls = _urls(client)
    local = {}
    for name, url in urls.items():
        path = tmp_path / ("bundle.tar" if name == "tar" else name)
        path.write_bytes(requests.get(url, timeout=30).content)
        local[name] = path
    pid = next(n for n in local if n.endswith("_MTL.txt"))[:-8]
    txt = parse_mtl(local[f"{pid}_MTL.txt"])
    assert txt == parse_mtl(local[f"{pid}_MTL.xml"]) == parse_mtl(local[f"{pid}_MTL.json"])
    proj = txt["PROJECTION_ATTRIBUTES"]
    lines, samples = int(proj["REFLECTIVE_LINES"]), int(proj["REFLECTIVE_SAMPLES"])
    ul_x, ul_y = float(proj["CORNER_UL_PROJECTION_X_PRODUCT"]), float(proj["CORNER_UL_PROJECTION_Y_PRODUCT"])
    epsg = 32600 + int(proj["UTM_ZONE"])
    for suffix in ("SR_B4.TIF", "ST_B10.TIF", "QA_PIXEL.TIF", "SR_QA_AEROSOL.TIF"):
        with rasterio.open(local[f"{pid}_{suffix}"]) as src:
            assert src.crs.to_epsg() == epsg
            assert (src.height, src.width) == (lines, samples)
            assert src.transform.c == ul_x - 15 and src.transform.f == ul_y + 15 and src.res == (30, 30)
            assert src.profile["tiled"] and src.overviews(1), "a COG has tiles and overviews"
            assert (
                src.nodata
                == {"SR_B4.TIF": 0, "ST_B10.TIF": 0, "QA_PIXEL.TIF": 1, "SR_QA_AEROSOL.TIF": 1}[suffix]
            )
    with rasterio.open(local[f"{pid}_QA_PIXEL.TIF"]) as src:
        qa = src.read(1)
    valid = qa != 1
    assert 0.3 < valid.mean() < 0.95, "a nodata collar surrounds the imaged area"
    cloud = (qa & (1 << 3)) > 0
    reported = float(txt["IMAGE_ATTRIBUTES"]["CLOUD_COVER"])
    assert abs(100 * cloud[valid].mean() - reported) < 1.5
    assert set(np.unique(qa)) <= {1, 21824, 21952, 22280}
    # ANG corners (line/sample of the imaged area) fall on the first and last valid pixels
    ang = parse_ang(local[f"{pid}_ANG.txt"])
    corner_lines = numbers(ang["RPC_BAND01"]["BAND01_L1T_IMAGE_CORNER_LINES"])
    rows = np.where(valid.any(axis=1))[0]
    assert abs(min(corner_lines) - rows[0]) <= 1 and abs(max(corner_lines) - rows[-1]) <= 1


def test_cloudy_scene_cloud_cover_matches_qa(emulator_data) -> None:
    from stacmirror.emulator.products import ProductStore

    scene = max(build_archive(), key=lambda s: s.cloud_cover)
    assert scene.cloud_cover > 20
    files = ProductStore(emulator_data / "seed0-small").files(scene, 2)
    with rasterio.open(files["QA_PIXEL.TIF"].path) as src:
        qa = src.read(1)
    valid = qa != 1
    assert abs(100 * ((qa & 8) > 0)[valid].mean() - scene.cloud_cover) < 1.5


def test_southern_scene_uses_northern_zone_with_negative_northings(emulator_data) -> None:
    from stacmirror.emulator.products import ProductStore

    scene = next(s for s in build_archive() if s.path == 91 and s.l2_generated)
    files = ProductStore(emulator_data / "seed0-small").files(scene, 2)
    with rasterio.open(files["SR_B4.TIF"].path) as src:
        assert src.crs.to_epsg() == 32655 and src.bounds.top < 0


def test_level1_pan_band_is_on_the_15m_grid(emulator_data) -> None:
    from stacmirror.emulator.products import ProductStore

    scene = build_archive()[-1]
    files = ProductStore(emulator_data / "seed0-small").files(scene, 1)
    mtl = parse_mtl_text(files["MTL.txt"].path.read_text(), "txt")
    proj = mtl["PROJECTION_ATTRIBUTES"]
    with rasterio.open(files["B8.TIF"].path) as pan, rasterio.open(files["B4.TIF"].path) as red:
        assert (pan.height, pan.width) == (int(proj["PANCHROMATIC_LINES"]), int(proj["PANCHROMATIC_SAMPLES"]))
        assert pan.height == 2 * red.height - 1 and pan.res == (15, 15)
        # both grids share the upper-left pixel centre, as USGS products do
        assert pan.transform.c + 7.5 == red.transform.c + 15


def test_archive_is_deterministic_and_realistic() -> None:
    first, second = build_archive(seed=3), build_archive(seed=3)
    assert [s.display_id(1) for s in first] == [s.display_id(1) for s in second]
    assert all(s.satellite == 8 for s in first if s.acquired.isoformat() < "2021-10-31")
    assert any(s.satellite == 9 for s in first) and any(s.tier == "RT" for s in first)
    assert all(s.l2_generated is None for s in first if s.tier == "RT")
    big = build_archive(scenes=10_000, size=SceneSize.small())
    assert len(big) == 10_000 and len({s.entity_id for s in big}) == 10_000
    entity = first[0].entity_id
    assert len(entity) == 21 and entity.startswith("LC") and entity.endswith("LGN00")
    assert len(first[0].display_id(1)) == 40
