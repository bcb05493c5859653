"""The M2M client against the emulator over real HTTP: endpoints, quirks, errors, retries, secrets."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading

import pytest
import requests

from stacmirror.emulator import Faults
from stacmirror.m2m import (
    AccessDeniedError,
    AuthError,
    Credentials,
    CredentialsError,
    DownloadLimitError,
    InputError,
    M2MClient,
    Secret,
    ServerError,
    resolve_credentials,
)
from stacmirror.m2m.models import DownloadRequestResult, Scene, as_mapping

from .helpers import FAST_RETRY, demo_credentials

L2 = "landsat_ot_c2_l2"
ALL_TIME = {"acquisitionFilter": {"start": "2000-01-01", "end": "2030-12-31"}}


# -- endpoints ----------------------------------------------------------------------------------


def test_dataset_endpoints(client: M2MClient) -> None:
    aliases = {d.alias for d in client.dataset_search("landsat_ot")}
    assert {"landsat_ot_c2_l1", "landsat_ot_c2_l2"} <= aliases
    dataset = client.dataset(L2)
    assert dataset.dataset_id == "5e83d14f2fc39685" and dataset.scene_count
    labels = {f.label: f for f in client.dataset_filters(L2)}
    assert labels["WRS Path"].kind == "Range"
    assert labels["Satellite"].values == {"8": "Landsat 8", "9": "Landsat 9"}
    groups = {g.group_id: g for g in client.dataset_file_groups(L2)}
    assert "SR_B4.TIF" in groups["ls_c2l2_sr_band"].files
    assert "ST_B10.TIF" in groups["ls_c2l2_st_band"].files


@pytest.mark.parametrize("past_end", [False, True])
def test_paging_collects_every_scene_once(make_emulator, past_end: bool) -> None:
    emu = make_emulator(Faults(next_record_past_end=past_end))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as api:
        total = api.scene_search(L2, ALL_TIME, max_results=1).total_hits
        pages: list[int] = []
        scenes = list(
            api.iter_scenes(L2, ALL_TIME, page_size=5, on_page=lambda p: pages.append(p.records_returned))
        )
    assert total == 34
    assert len(scenes) == total == len({s.entity_id for s in scenes})
    assert pages == [5] * 6 + [4]  # no extra page after the last, whatever nextRecord says


def test_search_quirks_are_normalised(client: M2MClient) -> None:
    page = client.scene_search(L2, ALL_TIME, max_results=3)
    scene = page.scenes[0]
    assert isinstance(scene.cloud_cover, float)  # sent as a string
    assert scene.wrs_path and scene.wrs_row
    assert scene.metadata["WRS Path"] == f"{scene.wrs_path:03d}"  # leading space stripped
    assert scene.footprint and scene.footprint["type"] == "Polygon"
    assert scene.natural_colour_browse() is not None
    unknown = Scene.from_json({"entityId": "x", "displayId": "y", "cloudCover": "-1"})
    assert unknown.cloud_cover is None


def test_scene_list_download_flow(client: M2MClient) -> None:
    scenes = client.scene_search(L2, ALL_TIME, max_results=2).scenes
    assert client.scene_list_add("test-list", L2, [s.entity_id for s in scenes]) == 2
    options = client.download_options(L2, list_id="test-list", include_secondary_file_groups=True)
    assert len(options) == 2 * 4  # four products per scene, as live
    bundles = [o for o in options if o.is_bundle and o.product.available]
    assert len(bundles) == 2 and all(o.product.download_system == "ls_zip" for o in bundles)
    assert all(o.product.sha256 and o.product.filesize for o in bundles)
    band = next(f for f in bundles[0].secondaries if f.display_id.endswith("_SR_B4.TIF"))
    assert band.entity_id.startswith("L2SR_") and "ls_c2l2_sr_band" in band.file_groups

    first = client.download_request(
        "flow",
        downloads=[
            {"entityId": bundles[0].product.entity_id, "productId": bundles[0].product.product_id},
            {"entityId": band.entity_id, "productId": band.product_id},
            {"entityId": bundles[0].product.entity_id, "productId": band.product_id},  # wrong pairing
        ],
    )
    assert len(first.new_records) == 2 and first.duplicate_products == {} and first.num_invalid_scenes == 1
    again = client.download_request(
        "flow-again", downloads=[{"entityId": band.entity_id, "productId": band.product_id}]
    )
    assert again.new_records == {} and set(again.duplicate_products.values()) == {"flow"}

    retrieved = client.download_retrieve("flow")
    ids = {d.download_id for d in retrieved.with_urls()}
    assert ids == set(first.new_records)
    assert any(d.status == "Proxied" for d in retrieved.requested)  # band files sit in `requested`
    client.download_complete_proxied({next(iter(first.new_records)): 1})
    client.download_remove(max(first.new_records))
    assert client.download_order_remove("flow") >= 1
    client.scene_list_remove("test-list")
    assert "download" in client.permissions()
    assert client.rate_limit_summary()["remainingLimits"]


def test_empty_objects_sent_as_lists_are_normalised() -> None:
    result = DownloadRequestResult.from_json({"newRecords": [], "duplicateProducts": {"12": "old"}})
    assert result.new_records == {} and result.duplicate_products == {12: "old"}
    assert as_mapping([]) == {} and as_mapping(None) == {}


def test_download_options_accepts_entity_ids(client: M2MClient) -> None:
    scene = client.scene_search(L2, ALL_TIME, max_results=1).scenes[0]
    options = client.download_options(L2, entity_ids=[scene.entity_id])
    assert {o.product.entity_id for o in options} == {scene.entity_id}


# -- errors ---------------------------------------------------------------------------------------


def test_bad_credentials_raise_auth_error(emulator) -> None:
    api = M2MClient(Credentials("demo", Secret("wrong")), emulator.service_url, retry=FAST_RETRY)
    with pytest.raises(AuthError) as info:
        api.login()
    assert info.value.code == "AUTH_INVALID"


def test_unknown_and_retired_datasets_are_input_errors(client: M2MClient) -> None:
    with pytest.raises(InputError) as info:
        client.dataset_filters("no_such_dataset")
    assert info.value.code == "DATASET_INVALID"
    with pytest.raises(InputError) as info:
        client.scene_search("landsat_8_c1")
    assert info.value.code == "DATASET_AUTH"


def test_account_without_machine_role_is_denied_downloads(make_emulator) -> None:
    emu = make_emulator(users={"viewer": ("viewer-token", False)})
    with M2MClient(Credentials("viewer", Secret("viewer-token")), emu.service_url, retry=FAST_RETRY) as api:
        assert api.scene_search(L2, ALL_TIME, max_results=1).scenes  # search still works
        with pytest.raises(AccessDeniedError) as info:
            api.download_retrieve()
    assert info.value.code == "AUTH_UNAUTHROIZED"


def test_download_quota_waits_then_fails(make_emulator) -> None:
    emu = make_emulator(Faults(recent_download_limit=1))
    waits: list[str] = []
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY, on_wait=waits.append) as api:
        scenes = api.scene_search(L2, ALL_TIME, max_results=2).scenes
        options = api.download_options(L2, entity_ids=[s.entity_id for s in scenes])
        items = [
            {"entityId": o.product.entity_id, "productId": o.product.product_id}
            for o in options
            if o.is_bundle and o.product.available
        ]
        api.download_request("one", downloads=items[:1])
        with pytest.raises(DownloadLimitError):
            api.download_request("two", downloads=items[1:])
    assert waits and "15-minute" in waits[0]
    assert api.calls["download-request"] == 1 + FAST_RETRY.download_limit_attempts


@pytest.mark.parametrize("fault", ["api_5xx_every", "api_html_every"])
def test_transient_failures_are_retried(make_emulator, fault: str) -> None:
    emu = make_emulator(Faults(**{fault: 2}))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as api:
        for _ in range(4):
            assert api.dataset(L2).alias == L2
    assert api.calls["dataset"] > 4  # some calls needed a second attempt


def test_persistent_failure_stops_after_bounded_attempts(make_emulator) -> None:
    emu = make_emulator(Faults(api_5xx_every=1))
    api = M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY)
    with pytest.raises(ServerError) as info:
        api.login()
    assert info.value.code == "HTTP_503"
    assert api.calls["login-token"] == FAST_RETRY.attempts


def test_connection_refused_is_a_server_error() -> None:
    api = M2MClient(demo_credentials(), "http://127.0.0.1:9/api/api/json/stable/", retry=FAST_RETRY)
    with pytest.raises(ServerError) as info:
        api.login()
    assert info.value.code == "CONNECTION"


def test_expired_key_logs_in_once_more(make_emulator) -> None:
    emu = make_emulator(Faults(expire_key_after=3))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as api:
        for _ in range(7):
            api.dataset(L2)
    assert api.calls["login-token"] == 3  # initial + one per expiry, never a stale key on login


def test_logout_tolerates_an_expired_key(make_emulator) -> None:
    emu = make_emulator(Faults(expire_key_after=1))
    api = M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY)
    api.login()
    api.dataset(L2)
    api.logout()  # the key is expired by now: no exception
    assert not api.logged_in


def test_one_request_in_flight(make_emulator) -> None:
    emu = make_emulator(Faults(api_latency=0.05))
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as api:
        threads = [threading.Thread(target=api.dataset, args=(L2,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        key = api._api_key.reveal()  # noqa: SLF001 - the test needs the raw key
    assert emu.service.stats["rate_limited"] == 0
    # and the emulator does detect concurrent calls from one user
    api2 = M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY)
    api2.login()
    key = api2._api_key.reveal()  # noqa: SLF001
    codes: list[str | None] = []

    def raw() -> None:
        body = requests.post(
            emu.service_url + "dataset", json={"datasetName": L2}, headers={"X-Auth-Token": key}, timeout=10
        ).json()
        codes.append(body["errorCode"])

    threads = [threading.Thread(target=raw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "RATE_LIMIT" in codes


# -- secrets --------------------------------------------------------------------------------------


def test_token_and_api_key_never_leak(make_emulator, caplog, capfd) -> None:
    token = "s3cr3t-T0ken!with:punctuation"
    emu = make_emulator(Faults(expire_key_after=4, api_5xx_every=5), users={"alice": (token, True)})
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with M2MClient(Credentials("alice", Secret(token)), emu.service_url, retry=FAST_RETRY) as api:
        seen.append(api._api_key.reveal())  # noqa: SLF001
        for _ in range(6):
            api.scene_search(L2, ALL_TIME, max_results=2)
            seen.append(api._api_key.reveal())  # noqa: SLF001
        texts = [repr(api), str(api), repr(api.credentials), str(api.credentials.token)]
        try:
            api.dataset_filters("nope")
        except InputError as exc:
            texts.append(str(exc))
    with pytest.raises(AuthError) as info:
        M2MClient(Credentials("alice", Secret(token + "x")), emu.service_url, retry=FAST_RETRY).login()
    texts.append(str(info.value))
    captured = capfd.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, *texts])
    assert "login-token" in caplog.text  # logging really ran at DEBUG
    for secret in {token, *seen}:
        assert secret not in everything


# -- credentials ----------------------------------------------------------------------------------


def test_credentials_from_environment_and_file(tmp_path) -> None:
    creds = resolve_credentials(env={"M2M_USERNAME": "u", "M2M_TOKEN": "tok-123"}, interactive=False)
    assert creds.username == "u" and creds.token.reveal() == "tok-123" and "tok-123" not in repr(creds)
    path = tmp_path / "credentials.ini"
    path.write_text("[m2m]\nusername = fileuser\ntoken = filetoken\n")
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        resolve_credentials(env={}, config_path=path, interactive=False)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    creds = resolve_credentials(env={}, config_path=path, interactive=False)
    assert creds.username == "fileuser" and creds.token.reveal() == "filetoken"


def test_missing_credentials_say_how_to_get_a_token(tmp_path) -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(env={}, config_path=tmp_path / "none.ini", interactive=False)
    assert "Application Tokens" in str(info.value) and "M2M_TOKEN" in str(info.value)
    with pytest.raises(CredentialsError, match="M2M_TOKEN"):
        resolve_credentials(env={"M2M_USERNAME": "u"}, interactive=False)


def test_envelope_shape_and_unknown_endpoint(emulator) -> None:
    body = requests.post(emulator.service_url + "login", data="null", timeout=10)
    envelope = body.json()
    assert list(envelope) == ["requestId", "version", "sessionId", "data", "errorCode", "errorMessage"]
    assert envelope["errorCode"] == "NOT_FOUND" and envelope["errorMessage"] == "Invalid Endpoint."
    bad = requests.post(
        emulator.service_url.replace("stable", "v9") + "dataset-search", data="{}", timeout=10
    )
    assert bad.json()["errorCode"] == "VERSION_UNKNOWN"
    broken = requests.post(emulator.service_url + "login-token", data="{not json", timeout=10)
    assert broken.json()["errorCode"] == "INPUT_FORMAT"
    ok = requests.post(
        emulator.service_url + "login-token",
        data=json.dumps({"username": "demo", "token": "demo-token"}),
        timeout=10,
    ).json()
    stale = requests.post(
        emulator.service_url + "login-token",
        headers={"X-Auth-Token": ok["data"]},
        data=json.dumps({"username": "demo", "token": "demo-token"}),
        timeout=10,
    ).json()
    assert ok["errorCode"] is None and stale["errorCode"] == "AUTH_INVALID"


def test_emulator_lists_every_c2_alias_and_login_sso(emulator) -> None:
    import time as _time

    with M2MClient(demo_credentials(), emulator.service_url, retry=FAST_RETRY) as api:
        aliases = {d.alias for d in api.dataset_search("landsat")}
        assert {
            "landsat_ot_c2_l1",
            "landsat_ot_c2_l2",
            "landsat_etm_c2_l1",
            "landsat_etm_c2_l2",
            "landsat_tm_c2_l1",
            "landsat_tm_c2_l2",
            "landsat_mss_c2_l1",
        } <= aliases
        assert api.scene_search("landsat_etm_c2_l2", ALL_TIME).total_hits == 0
        scenes = api.scene_search(L2, ALL_TIME, max_results=3).scenes
        assert api.scene_list_add("short", L2, [s.entity_id for s in scenes], ttl="PT1H") == 3
        summary = api.call("scene-list-summary", {"listId": "short"})
        assert summary["summary"]["sceneCount"] == "3"  # a string, as live
        assert [t["list"] for t in api.call("scene-list-types", {})] == ["short"]
        emulator.service.clock = lambda: _time.time() + 2 * 3600  # the list's hour has passed
        assert api.call("scene-list-get", {"listId": "short"}) == []
    sso = requests.post(
        emulator.service_url + "login-sso",
        data="{}",
        timeout=10,
        cookies={"EROS_SSO_production_secure": "demo:demo-token"},
    ).json()
    assert sso["errorCode"] is None and set(sso["data"]) == {"apiKey", "username"}
