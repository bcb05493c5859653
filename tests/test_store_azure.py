"""A mirror in Azure Blob storage (``az://container/prefix``), through Azurite on 127.0.0.1: the same
code as for S3, so the same round trip: harvest, catalog, validate, query, odc-stac loading, crops,
serve, all equal to the same run on a local disk; and the store's faults and kill -9."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import stacmirror
from stacmirror.storage import AZURITE_KEY, gdal_env

from .helpers import STACMIRROR, cli_env, serving
from .test_store import faulty_store_loses_nothing, kill_9_three_times_and_resume
from .test_store_catalog import _comparable, _disk, _is_item, harvest_and_catalog


@pytest.fixture
def on_azure(emulator, azurite, container: str, tmp_path: Path):
    """The same harvest, catalog and crops into Azure and onto a disk: (URL, disk folder)."""
    url = f"az://{container}/mirror"
    disk = tmp_path / "disk"
    for out in (url, disk):
        harvest_and_catalog(emulator, out)
        cropped = stacmirror.crop(out, stacmirror.find_stacks(out), workers=1)
        assert cropped.ok and cropped.stacks and cropped.stacks[0].cropped > 1, cropped.errors
    return url, disk


def test_an_azure_mirror_equals_the_one_on_disk_file_by_file(azurite, container: str, on_azure) -> None:
    url, disk = on_azure
    found = {k: v for k, v in azurite.objects(container, "mirror").items() if not k.startswith(".")}
    local = _disk(disk)
    assert sorted(found) == sorted(local)  # data, items, thumbnails, parents, parquet, crops
    assert any(k.startswith("crops/") and k.endswith(".TIF") for k in found)
    for key in local:
        assert _comparable(key, found[key]) == _comparable(key, local[key]), key
    state = azurite.objects(container, "mirror/.stacmirror")
    assert "ledger.sqlite" in state and not any(k.endswith(".lock") for k in state)  # lock released
    again = stacmirror.build_catalog(url, workers=1)
    assert again.written == 0 and again.unchanged == 3 and again.rasters_opened == 0


def test_an_azure_mirror_validates_queries_and_loads_pixel_equal(
    on_azure, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import odc.stac
    import rasterio

    url, disk = on_azure
    assert stacmirror.validate(url, schemas=shared / "stac-schemas").ok
    assert stacmirror.query(url).ids == stacmirror.query(disk).ids
    remote, local = stacmirror.items(url), stacmirror.items(disk, bbox=[-180, -90, 180, 90])
    assert all(a.href.startswith(url + "/") for i in remote for a in i.assets.values())
    odc.stac.configure_rio(cloud_defaults=False, **gdal_env())
    with rasterio.Env(**gdal_env()):
        from_store = odc.stac.load(remote, bands=["red", "qa_pixel"], anchor="center")
    from_disk = odc.stac.load(local, bands=["red", "qa_pixel"], anchor="center")
    assert from_store["red"].size > 0 and int(from_store["red"].max()) > 0
    np.testing.assert_array_equal(from_store["red"].values, from_disk["red"].values)
    np.testing.assert_array_equal(from_store["qa_pixel"].values, from_disk["qa_pixel"].values)
    result = subprocess.run(
        [*STACMIRROR, "query", url, "--ids"], capture_output=True, text=True, timeout=120, env=cli_env()
    )
    assert result.returncode == 0 and result.stdout.split() == stacmirror.query(disk).ids, result.stderr
    assert AZURITE_KEY not in result.stdout + result.stderr


def test_serve_answers_for_an_azure_mirror_as_for_the_disk(on_azure) -> None:
    import requests

    url, disk = on_azure
    with serving(url) as remote, serving(disk) as local:
        for path in ("/api/search?limit=2", "/api/collections", "/catalog/catalog.json"):
            answers = []
            for server in (remote, local):
                document = json.loads(
                    requests.get(f"{server.base_url}{path}", timeout=30).text.replace(server.base_url, "BASE")
                )
                for feature in document.get("features", []):
                    feature["properties"].pop("created")
                answers.append(document)
            assert answers[0] == answers[1], path
        tif = next(p for p in disk.rglob("*_SR_B4.TIF")).relative_to(disk).as_posix()
        part = requests.get(f"{remote.base_url}/catalog/{tif}", headers={"Range": "bytes=0-99"}, timeout=30)
        assert part.status_code == 206 and part.content == (disk / tif).read_bytes()[:100]


def test_a_missing_container_is_one_line_and_exit_2(azurite, container: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [*STACMIRROR, "catalog", "az://no-such-container-here/m"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "az://no-such-container-here/m: the container does not exist" in result.stderr


def test_wrong_azure_credentials_are_one_line_and_exit_2(azurite, container: str) -> None:
    """The account and key as a real Azure user gives them, with the emulator as the endpoint."""
    import base64

    env = cli_env()
    env.pop("AZURE_STORAGE_USE_EMULATOR", None)
    wrong = base64.b64encode(b"not the key" * 4).decode()
    env.update(
        AZURE_STORAGE_ACCOUNT_NAME="devstoreaccount1",
        AZURE_STORAGE_ACCESS_KEY=wrong,
        AZURE_ENDPOINT=f"{azurite.url}/devstoreaccount1",
    )
    result = subprocess.run(
        [*STACMIRROR, "catalog", f"az://{container}/m"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # Azure says AuthenticationFailed for a bad signature; Azurite says AuthorizationFailure, which
    # Azure keeps for a principal without permission: either reads as one line naming the URL
    said = result.stderr
    assert "refused the credentials" in said or "no permission to list" in said, said
    assert f"az://{container}/m" in said and wrong not in said


def test_dask_workers_rebuild_an_azure_catalog_with_no_local_path(azurite, container: str, on_azure) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    url, _ = on_azure

    def items() -> dict[str, dict]:
        found = {}
        for key, data in azurite.objects(container, "mirror/landsat_ot_c2_l2").items():
            if _is_item(Path(key)):
                found[key] = json.loads(data)
                found[key]["properties"].pop("created")
        return found

    before = items()
    assert len(before) == 3
    with distributed.LocalCluster(  # the workers inherit the Azure environment, not a path
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        result = stacmirror.build_catalog(url, force=True, dask=cluster.scheduler_address)
    assert result.ok and result.written == 3, result.errors
    assert items() == before


def test_an_azure_store_that_answers_503_or_drops_connections_loses_nothing(
    emulator, azurite, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty_store_loses_nothing(
        emulator, monkeypatch, azurite.port, "AZURITE_BLOB_STORAGE_URL", f"az://{container}/faulty",
        lambda: azurite.objects(container, "faulty"),
    )  # fmt: skip


def test_kill_9_three_times_on_azure_resumes_with_few_extra_bytes(
    make_emulator, azurite, container: str
) -> None:
    url = f"az://{container}/killed"
    kill_9_three_times_and_resume(make_emulator, url, lambda: azurite.objects(container, "killed"))
