"""The catalog of a mirror in an object store (moto's S3 server on 127.0.0.1): built from the store's
listing and range reads, published with relative hrefs, equal to the same catalog on disk; then
validated, queried and loaded with odc-stac from the store, and built by Dask workers that are
given no local path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import stacmirror
from stacmirror.ledger import Ledger
from stacmirror.storage import StoreMirror, gdal_env

from . import s3 as s3h
from .helpers import STACMIRROR, cli_env, run_harvest, serving

BANDS = ["red", "green", "blue", "QA_PIXEL", "MTL", "ANG"]


def _disk(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".stacmirror" not in p.relative_to(out).parts
    }


def _comparable(key: str, data: bytes):
    """A file's content with the build time left out: items carry ``created``, and parquet rows too."""
    if key.endswith(".parquet"):
        table = pq.read_table(pa_buffer(data))
        rows = table.to_pylist()
        for row in rows:
            row.get("properties", row).pop("created", None)
            row.pop("created", None)
        return rows
    if key.endswith(".json"):
        data_json = json.loads(data)
        data_json.get("properties", {}).pop("created", None)
        return data_json
    return data


def pa_buffer(data: bytes):
    import pyarrow as pa

    return pa.BufferReader(data)


def harvest_and_catalog(emulator, out: Path | str) -> None:
    """Three scenes' BANDS harvested into ``out``, a store or a folder, and catalogued."""
    summary, _ = run_harvest(emulator, out, mode="bands", bands=BANDS, max_scenes=3)
    assert summary.files_failed == 0
    result = stacmirror.build_catalog(out, workers=1)
    assert result.ok and result.written == 3, result.errors


@pytest.fixture
def both(emulator, moto, bucket: str, tmp_path: Path):
    """The same harvest and catalog into the store and onto a disk: (store URL, disk folder)."""
    url = f"s3://{bucket}/mirror"
    disk = tmp_path / "disk"
    for out in (url, disk):
        harvest_and_catalog(emulator, out)
    return url, disk


def _is_item(path: Path) -> bool:
    return path.suffix == ".json" and path.stem == path.parent.name  # <id>/<id>.json


def _published(moto, bucket: str, prefix: str = "mirror") -> dict[str, bytes]:
    return {k: v for k, v in s3h.objects(moto.client(), bucket, prefix).items() if not k.startswith(".")}


def test_the_catalog_built_in_the_store_equals_the_one_on_disk(moto, bucket: str, both) -> None:
    url, disk = both
    found = _published(moto, bucket)
    local = _disk(disk)
    assert sorted(found) == sorted(local)  # the same files: data, items, thumbnails, parents, parquet
    assert any(k.endswith(".parquet") for k in found) and "catalog.json" in found
    for key in local:
        assert _comparable(key, found[key]) == _comparable(key, local[key]), key
    items = [json.loads(v) for k, v in found.items() if k.endswith(".json") and _is_item(Path(k))]
    assert len(items) == 3
    for item in items:  # relative hrefs: the catalog works from the store, its endpoint, or a copy
        assert all(a["href"].startswith("./") for a in item["assets"].values())
        tree = [link["href"] for link in item["links"] if link["rel"] in ("root", "parent", "collection")]
        assert len(tree) == 3 and all(href.startswith("../") for href in tree)
    cache = StoreMirror(url, None).cache  # the writer's working copy holds no raster
    assert not [p for p in cache.rglob("*.TIF")]


def test_a_no_op_rebuild_in_the_store_reads_and_uploads_nothing(both) -> None:
    url, _ = both
    events: list = []
    again = stacmirror.build_catalog(url, workers=1, on_event=events.append)
    assert again.written == 0 and again.unchanged == 3 and again.rasters_opened == 0
    assert any("published 0 catalog file(s), deleted 0" in getattr(e, "message", "") for e in events)


def test_the_store_validates_as_the_disk_and_so_does_a_copy(
    moto, bucket: str, both, tmp_path: Path, schema_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACMIRROR_SCHEMA_HOST", schema_host)
    url, disk = both
    on_store, on_disk = stacmirror.validate(url), stacmirror.validate(disk)
    assert on_store.ok and on_disk.ok, on_store.problems
    assert on_store.checked == on_disk.checked > 3
    copy = tmp_path / "copy"  # the published catalog, copied to disk as it is, validates too
    for key, data in _published(moto, bucket).items():
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        (copy / key).write_bytes(data)
    assert stacmirror.validate(copy).ok
    client = moto.client()  # an asset gone from the store is reported, as a file gone from disk
    key = next(k for k in _published(moto, bucket) if k.endswith("_SR_B4.TIF"))
    client.delete_object(Bucket=bucket, Key=f"mirror/{key}")
    report = stacmirror.validate(url)
    assert not report.ok and any("does not exist" in p for ps in report.problems.values() for p in ps)


def test_query_the_store_as_the_disk(both) -> None:
    url, disk = both
    everything = stacmirror.query(disk)
    west, south, east, north = everything.items[0]["bbox"]
    box = [west, south, (west + east) / 2, (south + north) / 2]
    for filters in ({}, {"bbox": box}, {"cloud_max": 50.0}, {"start": "2021-10-01"}):
        store_hits, disk_hits = stacmirror.query(url, **filters), stacmirror.query(disk, **filters)
        assert store_hits.ids == disk_hits.ids, filters
        assert all(e["item"].startswith(url + "/") for e in store_hits.items)
    result = subprocess.run(
        [*STACMIRROR, "query", url, "--ids"], capture_output=True, text=True, timeout=120, env=cli_env()
    )
    assert result.returncode == 0 and result.stdout.split() == everything.ids, result.stderr
    assert s3h.SECRET not in result.stdout + result.stderr


def test_items_from_the_store_load_pixel_equal_with_odc_stac_and_stackstac(both) -> None:
    import numpy as np
    import odc.stac
    import rasterio

    url, disk = both
    remote, local = stacmirror.items(url), stacmirror.items(disk, bbox=[-180, -90, 180, 90])
    assert sorted(i.id for i in remote) == sorted(i.id for i in local)
    assert all(a.href.startswith(url + "/") for i in remote for a in i.assets.values())
    assert all(i.properties["proj:epsg"] for i in remote)
    odc.stac.configure_rio(cloud_defaults=False, **gdal_env())
    with rasterio.Env(**gdal_env()):
        from_store = odc.stac.load(remote, bands=["red", "qa_pixel"], anchor="center")
    from_disk = odc.stac.load(local, bands=["red", "qa_pixel"], anchor="center")
    assert from_store["red"].shape == from_disk["red"].shape and from_store["red"].size > 0
    np.testing.assert_array_equal(from_store["red"].values, from_disk["red"].values)
    np.testing.assert_array_equal(from_store["qa_pixel"].values, from_disk["qa_pixel"].values)
    assert int(from_store["red"].max()) > 0  # real pixels, not only nodata
    import stackstac

    def cube(items, env):
        return stackstac.stack(
            items, assets=["red"], rescale=False, dtype="uint16", fill_value=np.uint16(0),
            resolution=30, snap_bounds=False, gdal_env=env,
        ).compute()  # fmt: skip

    remote_env = stackstac.DEFAULT_GDAL_ENV.updated(always=gdal_env())
    np.testing.assert_array_equal(cube(remote, remote_env).values, cube(local, None).values)


def test_dask_workers_build_the_store_catalog_with_no_local_path(both) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    url, _ = both
    cache = StoreMirror(url, None).cache
    before = {p.name: json.loads(p.read_bytes()) for p in cache.rglob("*.json") if _is_item(p)}
    # the workers inherit the AWS environment, not a path: each task is (store URL, keys, sizes)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        result = stacmirror.build_catalog(url, force=True, dask=cluster.scheduler_address)
    assert result.ok and result.written == 3, result.errors
    after = {p.name: json.loads(p.read_bytes()) for p in cache.rglob("*.json") if _is_item(p)}
    for item in (*before.values(), *after.values()):
        item["properties"].pop("created")
    assert after == before


def test_serve_proxies_the_store_and_answers_the_api_as_for_the_disk(both) -> None:
    import requests

    url, disk = both
    with serving(url) as remote, serving(disk) as local:
        assert remote.store is not None and local.store is None

        def get(server, path: str, **headers: str):
            return requests.get(f"{server.base_url}{path}", headers=headers, timeout=30)

        root = get(remote, "/catalog/catalog.json")
        assert root.status_code == 200 and root.headers["Access-Control-Allow-Origin"] == "*"
        assert root.text.replace(remote.base_url, "BASE") == get(local, "/catalog/catalog.json").text.replace(
            local.base_url, "BASE"
        )
        tif = next(p for p in disk.rglob("*_SR_B4.TIF")).relative_to(disk).as_posix()
        whole = get(remote, f"/catalog/{tif}")
        assert whole.status_code == 200 and whole.content == (disk / tif).read_bytes()
        assert (
            whole.headers["Content-Type"].startswith("image/tiff")
            and whole.headers["Accept-Ranges"] == "bytes"
        )
        part = get(remote, f"/catalog/{tif}", Range="bytes=100-199")
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.content)}"
        assert get(remote, f"/catalog/{tif}", Range="bytes=-10").content == whole.content[-10:]
        assert get(remote, f"/catalog/{tif}", Range=f"bytes={len(whole.content)}-").status_code == 416
        item_rel = next(p for p in disk.rglob("*.json") if _is_item(p)).relative_to(disk).as_posix()
        item = get(remote, f"/catalog/{item_rel}")
        assert item.headers["Content-Type"] == "application/geo+json"
        assert item.json()["links"][0] == {
            "rel": "self", "href": f"{remote.base_url}/catalog/{item_rel}", "type": "application/geo+json",
        }  # fmt: skip
        for path in (
            "/catalog/.stacmirror/ledger.sqlite",
            "/catalog/../x",
            "/catalog/%2e%2e/x",
            "/catalog/nope",
        ):
            assert get(remote, path).status_code in (404, 503), path
        for path in ("/api/search?limit=2", "/api/collections", "/api/search?bbox=-180,-90,180,90&limit=5"):
            answers = []
            for server in (remote, local):
                document = json.loads(get(server, path).text.replace(server.base_url, "BASE"))
                for feature in document.get("features", []):
                    feature["properties"].pop("created")  # the one field a build sets anew
                answers.append(document)
            assert answers[0] == answers[1], path
        found = get(remote, "/api/search?limit=1").json()["features"][0]
        asset = get(remote, found["assets"]["red"]["href"].replace(remote.base_url, ""), Range="bytes=0-3")
        assert asset.status_code == 206 and asset.content[:2] in (b"II", b"MM")


def test_serve_searches_a_catalog_rebuilt_in_the_store_while_it_runs(emulator, both) -> None:
    """The API's copy of the store's items.parquet is brought up to date (every 30 s by default;
    here at every request): a scene catalogued while serve runs is found without a restart, and
    requests made during the refreshes are all answered."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url, _ = both
    with serving(url, refresh=0) as fresh:

        def matched(server) -> int:
            answer = requests.get(f"{server.base_url}/api/search?limit=1", timeout=30)
            assert answer.status_code == 200, answer.text
            return answer.json()["numberMatched"]

        assert matched(fresh) == 3
        summary, _ = run_harvest(emulator, url, mode="bands", bands=BANDS, max_scenes=4)
        assert summary.files_failed == 0
        assert stacmirror.build_catalog(url, workers=1).written == 1
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: matched(fresh), range(16))) == {4}


def test_map_draws_a_store_mirror_as_the_disk_one(moto, bucket: str, both, tmp_path: Path) -> None:
    """`map s3://...` draws the same footprints as for the disk (from items.parquet, not a GET per
    item) and puts the page to OUT/map.html in the store, or writes it where --html says."""
    import html
    import re

    url, disk = both
    stacmirror.crop(url, stacmirror.find_stacks(url), workers=1)
    stacmirror.crop(disk, stacmirror.find_stacks(disk), workers=1)

    def drawn(page: str) -> list[dict]:
        found = [json.loads(html.unescape(m)) for m in re.findall(r"data-info='([^']*)'", page)]
        assert found
        return sorted(found, key=lambda d: (d["kind"], d["id"]))

    for out in (url, disk):
        result = subprocess.run(
            [*STACMIRROR, "map", str(out), "--offline"],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(),
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(disk / "map.html")
    on_disk = drawn((disk / "map.html").read_text())
    in_store = drawn(_published(moto, bucket)["map.html"].decode())
    assert in_store == on_disk and {d["kind"] for d in on_disk} == {"scene", "crop"}
    local = tmp_path / "page.html"
    result = subprocess.run(
        [*STACMIRROR, "map", url, "--html", str(local)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert result.returncode == 0 and drawn(local.read_text()) == on_disk, result.stderr


def test_the_serve_command_serves_a_store(both, tmp_path: Path) -> None:
    import requests

    url, _ = both
    proc = subprocess.Popen(
        [*STACMIRROR, "serve", url, "--port", "0", "--no-build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(STACMIRROR_BROWSER_CACHE=str(tmp_path / "no-browser-here")),
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else base
        assert requests.get(base + "catalog/catalog.json", timeout=30).json()["type"] == "Catalog"
        assert len(requests.get(base + "api/search", timeout=30).json()["features"]) == 3
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert s3h.SECRET not in err and s3h.KEY not in err


def test_crops_in_the_store_equal_the_crops_on_disk(moto, bucket: str, both) -> None:
    url, disk = both
    remote, local = stacmirror.find_stacks(url), stacmirror.find_stacks(disk)
    assert [s.stack_id for s in remote] == [s.stack_id for s in local] and remote
    cropped = stacmirror.crop(url, remote, workers=1)
    reference = stacmirror.crop(disk, local, workers=1)
    assert cropped.ok and reference.ok, cropped.errors
    assert cropped.stacks[0].cropped == reference.stacks[0].cropped > 1
    found, on_disk = _published(moto, bucket), _disk(disk)
    assert sorted(found) == sorted(on_disk)
    crops = [k for k in on_disk if k.startswith("crops/")]
    assert any(k.endswith(".TIF") for k in crops) and any(k.endswith(".parquet") for k in crops)
    for key in on_disk:
        assert _comparable(key, found[key]) == _comparable(key, on_disk[key]), key
    collection = f"crop-{remote[0].stack_id}"
    assert (
        stacmirror.query(url, collection=collection).ids == stacmirror.query(disk, collection=collection).ids
    )
    again = stacmirror.crop(url, stacmirror.find_stacks(url), workers=1)
    assert again.stacks[0].skipped  # nothing changed: nothing cropped or put again


def test_dask_workers_crop_into_the_store_with_no_local_path(moto, bucket: str, both) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    url, disk = both
    reference = stacmirror.crop(disk, stacmirror.find_stacks(disk), workers=1, assets="red,qa_pixel")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:  # the workers inherit the AWS environment, and get no path they could write to
        cropped = stacmirror.crop(
            url, stacmirror.find_stacks(url), dask=cluster.scheduler_address, assets="red,qa_pixel"
        )
    assert cropped.ok and reference.ok, cropped.errors
    found, on_disk = _published(moto, bucket), _disk(disk)
    crops = sorted(k for k in on_disk if k.startswith("crops/"))
    assert [k for k in sorted(found) if k.startswith("crops/")] == crops
    assert sum(k.endswith(".TIF") for k in crops) == 2 * cropped.stacks[0].cropped
    for key in crops:
        assert _comparable(key, found[key]) == _comparable(key, on_disk[key]), key
    cache = StoreMirror(url, None).cache  # the workers put the crops: the cache holds none
    assert not list((cache / "crops").rglob("*.TIF")) and not list((cache / "crops").rglob("*.png"))


def test_virtual_crops_in_the_store_load_as_the_copied_ones(both) -> None:
    import numpy as np
    import odc.stac

    url, _ = both
    stacks = stacmirror.find_stacks(url)
    assert stacmirror.crop(url, stacks, workers=1, assets="red").ok
    collection = f"crop-{stacks[0].stack_id}"
    odc.stac.configure_rio(cloud_defaults=False, **gdal_env())
    copied = odc.stac.load(stacmirror.items(url, collection), bands=["red"], anchor="center")
    assert copied["red"].size > 0 and int(copied["red"].max()) > 0
    result = stacmirror.crop(url, stacks, workers=1, assets="red", virtual=True)
    assert result.ok, result.errors
    virtual = stacmirror.items(url, collection)
    assert all(i.assets["red"].href.endswith(".vrt") for i in virtual)
    assert all(i.assets["red"].href.startswith(url + "/") for i in virtual)
    store = StoreMirror.open(url)
    vrt = store.get_bytes(virtual[0].assets["red"].href[len(url) + 1 :]).decode()
    assert 'relativeToVRT="1"' in vrt and "/vsis3/" not in vrt and str(store.cache) not in vrt
    b = odc.stac.load(virtual, bands=["red"], anchor="center")
    a = copied
    np.testing.assert_array_equal(a["red"].values, b["red"].values)


def test_a_second_machine_takes_up_the_catalog_and_its_crops(
    moto, bucket: str, both, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = both
    assert stacmirror.crop(url, stacmirror.find_stacks(url), workers=1).ok
    before = _published(moto, bucket)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-machine"))
    assert not StoreMirror(url, None).cache.exists()
    events: list = []
    again = stacmirror.build_catalog(url, workers=1, on_event=events.append)
    assert again.written == 0 and again.unchanged == 3 and again.rasters_opened == 0
    assert any("fetched the store's catalog state" in getattr(e, "message", "") for e in events)
    assert _published(moto, bucket) == before  # nothing rebuilt, nothing lost: the crops stay linked
    root = json.loads(before["catalog.json"])
    assert any("crops/" in link["href"] for link in root["links"] if link["rel"] == "child")
    assert stacmirror.crop(url, stacmirror.find_stacks(url), workers=1).stacks[0].skipped


def _archive_harvest(emu, url: str, **kwargs):
    from stacmirror.m2m import M2MClient

    from .helpers import FAST_RETRY, demo_credentials

    selection = stacmirror.Selection("landsat_ot_c2_l1", "2021-09-01", None, bbox="-122.6,38.0,-120.0,39.6")
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        return stacmirror.harvest(
            url,
            selection,
            client=client,
            bands="red,qa_pixel,MTL",
            poll_interval=0.05,
            poll_timeout=10,
            **kwargs,
        )


def _held(moto, bucket: str, prefix: str) -> set[str]:
    keys = s3h.objects(moto.client(), bucket, prefix)
    return {k.split("/")[3] for k in keys if k.startswith("landsat_ot_c2_l1/") and k.count("/") == 4}


def test_replaced_products_are_swapped_in_the_store(make_emulator, moto, bucket: str) -> None:
    """RT -> T1 and reprocessing: the newer product lands under its own keys, then the older
    product's objects are deleted (kept under .stacmirror/superseded/ when asked); one item each."""
    import datetime as dt

    from stacmirror.landsat import ProductId

    emu = make_emulator(today=dt.date(2021, 11, 1), reprocess_share=0.5)
    url = f"s3://{bucket}/swap"

    def harvest(**kwargs):
        return _archive_harvest(emu, url, **kwargs)

    def held() -> set[str]:
        return _held(moto, bucket, "swap")

    first = harvest()
    assert first.ok and first.catalog.written == len(held()) > 0
    before = held()
    emu.set_today(dt.date(2022, 8, 1))
    again = harvest(keep_superseded=True)
    assert again.ok, again.failures
    replaced = {r["old"]: r["new"] for r in again.replaced}
    assert replaced and any(old.endswith("_RT") for old in replaced)
    after = held()
    assert not set(replaced) & after and set(replaced.values()) <= after  # swapped, not side by side
    for old, new in replaced.items():
        assert ProductId.parse(new).supersedes(ProductId.parse(old))
    assert before - set(replaced) <= after
    objects = s3h.objects(moto.client(), bucket, "swap")
    kept = {k.split("/")[3] for k in objects if k.startswith(".stacmirror/superseded/")}
    assert kept == set(replaced)
    items = stacmirror.items(url, "landsat_ot_c2_l1")
    assert sorted(i.id for i in items) == sorted(after)
    for item in items:
        olds = [link.title.split(" ")[0] for link in item.links if link.rel == "predecessor-version"]
        assert olds == [old for old, new in replaced.items() if new == item.id]
    with Ledger(StoreMirror(url, None).local) as ledger:
        assert not ledger.pending_replacements()
        assert {r.display_id for r in ledger.all_files()} == after


def test_sync_keeps_a_store_mirror_current_crops_included(make_emulator, moto, bucket: str) -> None:
    import datetime as dt

    from stacmirror.m2m import M2MClient

    from .helpers import FAST_RETRY, demo_credentials

    emu = make_emulator(today=dt.date(2021, 11, 1), reprocess_share=0.5)
    url = f"s3://{bucket}/sync"
    assert _archive_harvest(emu, url).ok
    stacks = stacmirror.find_stacks(url, collection="landsat_ot_c2_l1")
    assert stacks and stacmirror.crop(url, stacks, workers=1).ok
    members_before = {m.id for m in stacks[0].members}
    emu.set_today(dt.date(2022, 8, 1))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        result = stacmirror.sync(url, client=client, poll_interval=0.05, poll_timeout=10)
        report = result.to_dict()
        assert result.ok and not result.current, (
            [c.to_dict() for c in result.crops],
            result.catalog.errors if result.catalog else None,
            [r.harvest.failures for r in result.subscriptions if r.harvest],
        )
        replaced = {r["old"]: r["new"] for r in report["subscriptions"][0]["replaced"]}
        assert replaced and not set(replaced) & _held(moto, bucket, "sync")
        assert sorted(i.id for i in stacmirror.items(url, "landsat_ot_c2_l1")) == sorted(
            _held(moto, bucket, "sync")
        )
        if members_before & set(replaced):  # a replaced member: its stack is cropped again
            assert any(c.action == "recropped" for c in result.crops)
            crops = stacmirror.items(url, f"crop-{stacks[0].stack_id}")
            assert not {i.id for i in crops} & set(replaced)
        again = stacmirror.sync(url, client=client, poll_interval=0.05, poll_timeout=10)
    assert again.ok and again.current and again.to_dict()["bytesDownloaded"] == 0
    assert again.catalog.written == 0
    found = s3h.objects(moto.client(), bucket, "sync")
    assert not [k for k in found if k.startswith("crops/") and any(old in k for old in replaced)]
    assert ".stacmirror/lock" not in found and s3h.open_uploads(moto.client(), bucket) == []


def test_stac_browser_browses_a_store_mirror(built_browser: Path, both, tmp_path: Path) -> None:
    """STAC Browser in headless Chromium, served from the store: root, row, an item with its assets."""
    import re

    from .test_browse import _page

    url, disk = both
    with serving(url, built_browser, offline=True) as server:
        base = server.base_url
        root = _page(f"{base}/", "store-browser-root", tmp_path)
        assert "Landsat 8-9 OLI/TIRS Collection 2 Level-2" in root
        row = _page(f"{base}/#/landsat_ot_c2_l2/044/033/catalog.json", "store-browser-row", tmp_path)
        listed = set(re.findall(r"LC0[89]_L2SP_\d{6}_\d{8}_\d{8}_02_T[12]", row))
        assert len(listed) == 3
        item_path = next(disk.rglob(f"{sorted(listed)[0]}.json")).relative_to(disk).as_posix()
        item = _page(f"{base}/#/{item_path}", "store-browser-item", tmp_path)
        assert "Visible red Band (B4)" in item and "Pixel Quality Assessment Band" in item
