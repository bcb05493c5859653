"""What the real service may do that nobody documented: variations of the emulator, failure
classes, optional browse images, the download flow as live captures show it, record and replay,
and doctor."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import stacmirror
from stacmirror import events as ev
from stacmirror.emulator import Faults
from stacmirror.emulator.replay import ReplayServer
from stacmirror.emulator.state import Variation
from stacmirror.harvester import transfers
from stacmirror.harvester.plan import resolve_bands
from stacmirror.m2m import Credentials, Secret
from stacmirror.m2m.transcript import read_transcript

from .helpers import (
    L2,
    NORTH,
    STACMIRROR,
    assert_matches_emulator,
    cli_env,
    harvest_argv,
    mirrored,
    run_harvest,
)

SEEDS = [1, 2, 3, 4, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_harvest_and_catalog_under_every_variation(make_emulator, tmp_path: Path, shared, seed: int) -> None:
    variation = Variation.from_seed(seed)
    emu = make_emulator(Faults(preparing_polls=1), variation=variation)
    notes: list[ev.Event] = []
    summary, client = run_harvest(
        emu, tmp_path, mode="bands", bands=["red", "qa_pixel", "MTL"], max_scenes=3, on_event=notes.append
    )
    assert summary.failures == [] and summary.files_downloaded == 3 * 5, variation.describe()
    files = mirrored(tmp_path)
    assert_matches_emulator(emu, files)
    extension = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}[variation.browse_format]
    browse = [name for name in files if "_browse." in name]
    assert len(browse) == 3 and all(name.endswith(extension) for name in browse)
    bundles, _ = run_harvest(emu, tmp_path, max_scenes=1, on_event=notes.append)
    assert bundles.failures == [] and bundles.files_downloaded == 1
    size_notes = [n for n in notes if isinstance(n, ev.Note) and "advertised" in n.message]
    assert bool(size_notes) == variation.bundle_size_differs  # a note, not a failure
    catalog = stacmirror.build_catalog(tmp_path, workers=1)
    assert catalog.ok, catalog.errors
    item = json.loads(next(tmp_path.rglob("LC0*_T?.json")).read_text())
    assert item["assets"]["thumbnail"]["type"] == f"image/{variation.browse_format}"
    report = stacmirror.validate(tmp_path, schemas=shared / "stac-schemas")
    assert report.ok, report.problems
    if variation.drop_after_handover or variation.staging_urls_in_requested:
        assert client.calls["download-retrieve"] >= 1


def test_every_option_of_every_variation_is_served_by_the_test_seeds() -> None:
    for name, options in Variation.OPTIONS:
        served = {getattr(Variation.from_seed(seed), name) for seed in SEEDS}
        assert served == set(options), name


def test_broken_browse_images_are_notes_and_never_fail_the_harvest(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(browse_broken=True))
    notes: list[str] = []
    summary, _ = run_harvest(
        emu, tmp_path, mode="bands", bands=["MTL"], max_scenes=6,
        on_event=lambda e: notes.append(e.message) if isinstance(e, ev.Note) else None,
    )  # fmt: skip
    assert summary.failures == [] and summary.files_downloaded == 6 * 3
    assert not [n for n in mirrored(tmp_path) if "_browse" in n]
    assert sum("no browse image" in n for n in notes) == transfers.BROWSE_MISSES
    assert any("skipped" in n for n in notes)  # after three misses in a row the rest are not tried


def test_deterministic_failures_get_one_immediate_retry_then_fail(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(file_html_every=1))  # every file body is an HTML error page
    summary, _ = run_harvest(emu, tmp_path, mode="bands", bands=["red", "MTL"], max_scenes=2, browse=False)
    assert summary.files_failed == 2 * 4 and summary.files_downloaded == 0
    assert all("HTML" in f or "does not look like" in f for f in summary.failures), summary.failures
    # one request and one immediate retry per file, not the transient back-off's six
    assert emu.service.stats["file_requests"] <= 2 * 2 * 4 + 2


def test_refused_and_disabled_downloads_fail_at_once(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(downloads_disabled=True))
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red"], max_scenes=2, browse=False)
    assert summary.files_failed == 2 and all("temporarily disabled" in f for f in summary.failures)
    assert "download-retrieve" not in client.calls  # nothing was accepted: nothing to wait for


def test_items_listed_nowhere_with_nothing_queued_stop_the_polling(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(preparing_polls=3))
    original = emu.service.ep_download_retrieve

    def retrieve(key, payload):  # the service lists nothing under this run's label
        emu.service.faults = Faults(preparing_polls=3, forgotten_labels=(str(payload.get("label")),))
        return original(key, payload)

    emu.service.ep_download_retrieve = retrieve
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red"], max_scenes=2, browse=False)
    assert summary.files_failed == 2 and all("lists it nowhere" in f for f in summary.failures)
    assert client.calls["download-retrieve"] == 1  # no waiting until the poll timeout


def test_staging_urls_are_not_fetched(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(preparing_polls=2), variation=Variation(staging_urls_in_requested=True))
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red", "MTL"], max_scenes=2)
    assert summary.failures == [] and summary.files_downloaded == 2 * 4
    assert client.calls["download-retrieve"] >= 3


def test_bare_request_entries_are_matched_by_url_and_search(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(variation=Variation(bare_request_entries=True, drop_after_handover=True))
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red", "MTL"], max_scenes=2)
    assert summary.failures == [] and summary.files_downloaded == 2 * 4
    bundles, _ = run_harvest(emu, tmp_path / "b", max_scenes=2, browse=False)
    assert bundles.failures == [] and bundles.files_downloaded == 2


def test_stale_duplicates_of_a_crashed_run_are_requested_again(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(preparing_polls=50))
    # a crashed earlier run left its requests queued under its own label ...
    crashed = "stacmirror-20200101000000-abcdef"
    with stacmirror.connect(emu.service_url, Credentials("demo", Secret("demo-token"))) as client:
        from stacmirror.harvester.selection import search

        scenes = search(client, stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=NORTH), limit=2)
        options = client.download_options(L2, entity_ids=[s.entity_id for s in scenes])
        wanted = {
            f.entity_id: {"entityId": f.entity_id, "productId": f.product_id}
            for o in options
            for f in o.secondaries
            if f.display_id.endswith("_SR_B4.TIF")
        }
        client.download_request(crashed, downloads=list(wanted.values()))
    # ... and the service no longer lists that label
    emu.service.faults = Faults(forgotten_labels=(crashed,))
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red"], max_scenes=2, browse=False)
    assert summary.failures == [] and summary.files_downloaded == 2
    assert client.calls["download-remove"] == 2
    removed = [q for q in emu.service.queue.values() if q.label == crashed]
    assert all(q.status == "Removed" for q in removed)


def test_downloads_come_in_waves_that_fit_the_quota(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(unattempted_download_limit=22))
    summary, client = run_harvest(
        emu, tmp_path, mode="bands", bands=["red", "green", "blue", "nir08", "MTL"], max_scenes=4,
        browse=False,
    )  # fmt: skip
    assert summary.failures == [] and summary.files_downloaded == 4 * 7
    assert client.calls["download-request"] >= 3 and client.calls["rate-limit-summary"] >= 1


def test_a_requested_file_that_is_not_offered_is_a_failure(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(withhold_suffix="SR_B4.TIF"))
    summary, _ = run_harvest(emu, tmp_path, mode="bands", bands=["red", "MTL"], max_scenes=2, browse=False)
    assert summary.files_failed == 2 and all("SR_B4.TIF is not offered" in f for f in summary.failures)
    assert summary.files_downloaded == 2 * 3


def test_common_band_names_follow_the_sensor() -> None:
    tm = [f"SR_B{n}.TIF" for n in (1, 2, 3, 4, 5, 7)] + ["ST_B6.TIF", "MTL.txt"]
    assert resolve_bands(["red", "nir08"], 2, tm, {("tm", 5)}) == {"SR_B3.TIF", "SR_B4.TIF"}
    oli = [f"SR_B{n}.TIF" for n in range(1, 8)] + ["MTL.txt"]
    assert resolve_bands(["red", "nir08"], 2, oli, {("oli-tirs", 8)}) == {"SR_B4.TIF", "SR_B5.TIF"}
    lower = [name.lower() for name in oli]  # file-group names in another case still match
    assert resolve_bands(["SR_B4", "red"], 2, lower, {("oli-tirs", 8)}) == {"sr_b4.tif"}


def test_each_polygon_of_an_area_is_its_own_search(emulator, tmp_path: Path) -> None:
    two = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[-122.6, 38.0], [-120.0, 38.0], [-120.0, 39.6], [-122.6, 39.6], [-122.6, 38.0]]],
            [[[147.5, -35.0], [149.0, -35.0], [149.0, -34.0], [147.5, -34.0], [147.5, -35.0]]],
        ],
    }
    selection = stacmirror.Selection(L2, "2021-09-01", "2021-12-31", aoi=two)
    with stacmirror.connect(emulator.service_url, Credentials("demo", Secret("demo-token"))) as client:
        from stacmirror.harvester.selection import search

        scenes = search(client, selection)
    paths = {s.wrs_path for s in scenes}
    assert client.calls["scene-search"] == 2 and len(paths) >= 2


def test_record_then_replay_plans_the_same_files(emulator, tmp_path: Path) -> None:
    record = tmp_path / "record"
    recorded = subprocess.run(
        harvest_argv(
            tmp_path / "m", "--bands", "red,MTL", "--max-scenes", "2", "--record", str(record), "--json"
        ),
        env=cli_env(emulator), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    transcript = (record / "transcript.jsonl").read_text()
    for secret in ["demo-token", *emulator.service.keys]:
        assert secret not in transcript
    signatures = re.findall(r"requestSignature=([^\"&]*)", transcript)
    assert signatures and set(signatures) == {"<redacted>"}
    records = read_transcript(record)
    downloads = [r for r in records if r["kind"] == "download"]
    assert downloads and all("<redacted>" in r["url"] for r in downloads if "requestSignature" in r["url"])
    assert {"endpoint", "request", "response", "status", "ms"} <= set(records[0])
    planned_then = subprocess.run(
        harvest_argv(tmp_path / "dry", "--bands", "red,MTL", "--max-scenes", "2", "--dry-run", "--json"),
        env=cli_env(emulator), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    server = ReplayServer(record).start()
    try:
        replayed = subprocess.run(
            harvest_argv(tmp_path / "dry2", "--bands", "red,MTL", "--max-scenes", "2", "--dry-run", "--json"),
            env=cli_env(emulator, M2M_SERVICE_URL=server.service_url),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop()
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["planned"] == json.loads(planned_then.stdout)["planned"]
    assert not server.replay.missing


def test_doctor_passes_and_says_what_to_do_when_it_does_not(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(users={"demo": ("demo-token", True), "viewer": ("viewer-token", False)})
    env = cli_env(emu)

    def doctor(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*STACMIRROR, "doctor", "--out", str(tmp_path)], env={**env, **extra},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    good = doctor()
    assert good.returncode == 0, good.stdout
    assert len(good.stdout.strip().splitlines()) == 7 and "FAIL" not in good.stdout
    wrong = doctor(M2M_TOKEN="not-the-token")
    assert wrong.returncode == 1 and "Application Tokens" in wrong.stdout
    assert "not-the-token" not in wrong.stdout
    viewer = doctor(M2M_USERNAME="viewer", M2M_TOKEN="viewer-token")
    assert viewer.returncode == 1 and "MACHINE" in viewer.stdout and "viewer-token" not in viewer.stdout
    down = doctor(M2M_SERVICE_URL="http://127.0.0.1:9/api/api/json/stable/")
    assert down.returncode == 1 and "service reachable" in down.stdout
    emu.service.faults = Faults(recent_download_limit=0, clock_skew=900.0)
    exhausted = doctor()
    assert exhausted.returncode == 1 and "FAIL  download quota" in exhausted.stdout
    skew = re.search(r"FAIL  clock: (\d+) s behind the service", exhausted.stdout)
    assert skew and 895 <= int(skew[1]) <= 905  # the Date header counts whole seconds
    emu.service.faults = Faults(downloads_disabled=True)
    disabled = subprocess.run(
        [*STACMIRROR, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    checks = {c["check"]: c for c in json.loads(disabled.stdout)["checks"]}
    assert disabled.returncode == 1 and not checks["service notifications"]["ok"]
    for secret in emu.service.keys:
        assert secret not in good.stdout + wrong.stdout + viewer.stdout + disabled.stdout
