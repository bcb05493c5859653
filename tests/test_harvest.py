"""Harvest against the emulator over HTTP: modes, batching, faults, resume, crashes, errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from stacmirror.area import load_area, load_regions, parse_bbox
from stacmirror.emulator import Faults
from stacmirror.emulator.scenes import build_archive
from stacmirror.errors import InvalidInput
from stacmirror.events import Note
from stacmirror.harvester import selection as selection_module
from stacmirror.harvester.bundle import UnsafeArchiveError, extract_bundle
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection, spatial_filters
from stacmirror.ledger import Ledger, MirrorLock
from stacmirror.m2m import AccessDeniedError, Credentials, M2MClient, Secret

from .helpers import (
    FAST_RETRY,
    FAST_TRANSFER,
    L2,
    NORTH,
    STACMIRROR,
    assert_matches_emulator,
    cli_env,
    date,
    demo_credentials,
    harvest_argv,
    mirrored,
    run_harvest,
)

# -- modes and batching ---------------------------------------------------------------------------


def test_bands_mode_fetches_exactly_the_asked_files(emulator, tmp_path: Path) -> None:
    summary, client = run_harvest(
        emulator, tmp_path, mode="bands", bands=["red", "QA_PIXEL", "MTL"], max_scenes=3
    )
    files = mirrored(tmp_path)
    tifs = [n for n in files if n.endswith(".TIF")]
    assert summary.files_downloaded == 3 * 5 and summary.files_failed == 0
    assert len(tifs) == 6 and all(n.endswith(("_SR_B4.TIF", "_QA_PIXEL.TIF")) for n in tifs)
    assert sum(n.endswith("_browse.jpg") for n in files) == 3
    assert_matches_emulator(emulator, files)
    for path in files.values():
        rel = path.relative_to(tmp_path).parts
        assert rel[0] == L2 and rel[1] == "044" and rel[2] == "033" and rel[3] == path.parent.name
    assert not list(tmp_path.rglob("*.part"))
    ledger = Ledger(tmp_path)
    for record in ledger.all_files():
        assert record.state == "done"
        assert hashlib.sha256((tmp_path / record.path).read_bytes()).hexdigest() == record.sha256
    assert emulator.service.stats["auth_header_to_files"] == 0  # the API key never reaches file hosts
    # the queue is left clean
    assert all(q.status in ("Removed", "Complete") for q in emulator.service.queue.values())

    again, client2 = run_harvest(
        emulator, tmp_path, mode="bands", bands=["red", "QA_PIXEL", "MTL"], max_scenes=3
    )
    assert again.files_downloaded == 0 and again.scenes_complete_before == 3
    assert "download-request" not in client2.calls and "download-options" not in client2.calls


def test_api_calls_are_flat_in_bands(emulator, tmp_path: Path) -> None:
    _, one = run_harvest(emulator, tmp_path / "one", mode="bands", bands=["red"], max_scenes=4)
    _, ten = run_harvest(
        emulator,
        tmp_path / "ten",
        mode="bands",
        bands=["coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "MTL"],
        max_scenes=4,
    )
    assert dict(one.calls) == dict(ten.calls)
    assert one.calls["download-request"] == 1 and one.calls["download-options"] == 1
    assert one.calls["scene-search"] == 1  # the first page also tells totalHits
    # login to logout: no scene list (the ids go in download-options), no filter ids for a search
    # without metadata filters, no polling when download-request gave every URL
    assert sum(one.calls.values()) <= 12 and one.calls["logout"] == 1, dict(one.calls)
    assert not {"scene-list-add", "scene-list-remove", "dataset-filters", "download-retrieve"} & set(
        one.calls
    )
    found, filtered = run_harvest(
        emulator, tmp_path / "row", mode="bands", bands=["red"], max_scenes=2, row="33"
    )
    assert filtered.calls["dataset-filters"] == 1 and found.files_downloaded == 2


def test_bundle_mode_unpacks_into_the_scene_folder(emulator, tmp_path: Path) -> None:
    summary, _ = run_harvest(emulator, tmp_path, max_scenes=2)
    files = mirrored(tmp_path)
    assert summary.files_failed == 0 and not [n for n in files if n.endswith(".tar")]
    assert (
        sum(n.endswith("_SR_B4.TIF") for n in files) == 2 and sum(n.endswith("_MTL.json") for n in files) == 2
    )
    assert_matches_emulator(emulator, files)
    kept = tmp_path / "kept"
    run_harvest(emulator, kept, max_scenes=1, keep_tar=True)
    assert [n for n in mirrored(kept) if n.endswith(".tar")]


def test_band_group_mode(emulator, tmp_path: Path) -> None:
    summary, client = run_harvest(
        emulator, tmp_path, mode="band-group", file_groups=["ls_c2l2_st_band"], max_scenes=2
    )
    names = mirrored(tmp_path)
    assert summary.files_failed == 0
    assert {n[41:] for n in names if n.endswith(".TIF")} == {
        "ST_B10.TIF",
        "ST_TRAD.TIF",
        "ST_URAD.TIF",
        "ST_DRAD.TIF",
        "ST_ATRAN.TIF",
        "ST_EMIS.TIF",
        "ST_EMSD.TIF",
        "ST_CDIST.TIF",
    }


def test_unavailable_bundle_falls_back_to_band_files(emulator, tmp_path: Path, monkeypatch) -> None:
    from stacmirror.emulator import catalogue

    products = [p for p in catalogue.PRODUCTS[2]]
    monkeypatch.setitem(
        catalogue.PRODUCTS,
        2,
        [
            catalogue.Product(p.product_id, p.name, p.code, p.system, p.available and not p.bundle, p.bundle)
            for p in products
        ],
    )
    notes: list[str] = []

    def on_event(event) -> None:
        if isinstance(event, Note):
            notes.append(event.message)

    selection = Selection(L2, "2021-09-01", date("2021-12-31"), aoi=NORTH)
    options = HarvestOptions(
        out=tmp_path, selection=selection, max_scenes=1, poll_interval=0.05, transfer=FAST_TRANSFER
    )
    with M2MClient(demo_credentials(), emulator.service_url, retry=FAST_RETRY) as client:
        summary = Harvest(client, options, on_event).run()
    assert summary.files_failed == 0 and summary.files_downloaded == 23
    assert any("no product bundle is available" in n for n in notes)


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        Faults(file_cut_every=2),
        Faults(file_5xx_every=3, file_html_every=4),
        Faults(api_5xx_every=4, api_html_every=7),
        Faults(expired_urls_first=3),
        Faults(expire_key_after=5),
        Faults(preparing_polls=2),
        Faults(rotate_product_ids=True),
    ],
    ids=[
        "cut",
        "file-5xx-html",
        "api-5xx-html",
        "expired-urls",
        "key-expiry",
        "preparing",
        "new-product-ids",
    ],
)
def test_harvest_survives_faults(make_emulator, tmp_path: Path, faults: Faults) -> None:
    emu = make_emulator(faults)
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red", "nir08", "MTL"], max_scenes=3)
    assert summary.failures == [] and summary.files_downloaded == 3 * 5
    if faults.file_cut_every:  # bundles are large enough to be cut after some bytes arrived
        bundles, _ = run_harvest(emu, tmp_path / "bundles", max_scenes=3)
        assert bundles.failures == [] and bundles.files_downloaded == 3
    assert_matches_emulator(emu, mirrored(tmp_path))
    stats = emu.service.stats
    if faults.file_cut_every:
        assert stats["range_requests"] > 0  # cut transfers resumed, not restarted
    if faults.expired_urls_first:
        assert stats["expired_urls"] == 3 and client.calls["download-retrieve"] >= 1
    if faults.expire_key_after:
        assert client.calls["login-token"] > 1
    if faults.preparing_polls:
        assert client.calls["download-retrieve"] >= 2


def test_items_that_never_become_ready_fail_after_the_deadline(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(never_ready_every=2))
    summary, _ = run_harvest(emu, tmp_path, mode="bands", bands=["red", "nir08"], max_scenes=2)
    assert summary.files_failed >= 1 and summary.files_downloaded + summary.files_failed == 4
    assert all("not ready" in f for f in summary.failures)


def test_download_quota_is_waited_for_then_reported(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(recent_download_limit=0))
    # the quota is read before the first request, waited for until the poll timeout, then reported
    summary, client = run_harvest(emu, tmp_path, mode="bands", bands=["red"], max_scenes=1, browse=False)
    assert summary.files_failed == 1 and "quota" in summary.failures[0]
    assert "download-request" not in client.calls and client.calls["rate-limit-summary"] >= 2
    assert not list(tmp_path.rglob("*.TIF"))


def test_account_without_download_access_writes_nothing(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(users={"viewer": ("viewer-token", False)})
    with pytest.raises(AccessDeniedError):
        run_harvest(
            emu,
            tmp_path / "out",
            credentials=Credentials("viewer", Secret("viewer-token")),
            mode="bands",
            bands=["red"],
            max_scenes=1,
        )
    assert not (tmp_path / "out").exists()


# -- crash safety -------------------------------------------------------------------------------------


def test_kill_9_mid_download_resumes_and_loses_nothing(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(Faults(throttle_bps=150_000))
    out = tmp_path / "mirror"
    common = ["--max-scenes", "2", "--no-catalog", "--workers", "2"]
    argv = harvest_argv(out, *common, "--quiet", "--poll-interval", "0.1")
    proc = subprocess.Popen(argv, env=cli_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = [p for p in out.rglob(".*.part") if p.stat().st_size > 100_000]
        if parts:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=20)
    partial = {p: p.stat().st_size for p in out.rglob(".*.part")}
    assert partial, "the harvest was killed mid-transfer"
    emu.faults.throttle_bps = 0
    before = emu.service.stats["range_requests"]
    result = subprocess.run(
        harvest_argv(out, *common, "--json"), env=cli_env(emu), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["filesFailed"] == 0 and report["filesDownloaded"] == 2
    assert emu.service.stats["range_requests"] > before  # resumed from the partial files
    names = {p.name for p in out.glob(f"{L2}/*/*/*")}
    bundles = sum(
        emu.service.store.files(s, 2)["tar"].size
        for s in emu.service.scenes
        if s.l2_generated and s.display_id(2) in names
    )
    assert 0 < report["bytesDownloaded"] < bundles  # the bytes fetched before the kill were kept
    assert not list(out.rglob(".*.part")) and not list(out.rglob("*.tar"))
    assert_matches_emulator(emu, mirrored(out))


def test_second_harvest_into_the_same_mirror_is_refused(emulator, tmp_path: Path) -> None:
    lock = MirrorLock(tmp_path)
    lock.acquire()
    try:
        result = subprocess.run(
            harvest_argv(tmp_path),
            env=cli_env(emulator),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        lock.release()
    assert result.returncode == 2 and "another harvest" in result.stderr
    assert emulator.service.stats["requests"] == 0  # refused before any API call


# -- bad input: exit 2, one line, nothing written ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "10,20,5"], "--bbox"),
        (["--start", "2021-02-30"], "--start"),
        (["--start", "2022-01-01"], "after"),
        (["--dataset", "landsat_nope"], "landsat_nope"),
        (["--bands", "SR_B99"], "SR_B99"),
        (["--mode", "band-group", "--file-groups", "ls_nope"], "ls_nope"),
        (["--mode", "band-group"], "--file-groups"),
        (["--filter", "Cloudiness=3"], "valid labels"),
        (["--wkt", "POLYGON ((0 0, 1 1, 1 0))"], "--wkt"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    emulator, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    base = {
        "--dataset": L2,
        "--bbox": "-122.6,38.0,-120.0,39.6",
        "--start": "2021-09-01",
        "--end": "2021-12-31",
    }
    if "--wkt" in args:
        base.pop("--bbox")
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1]
    extra = [a for i, a in enumerate(args) if not (a in base or (i > 0 and args[i - 1] in base))]
    argv = [*STACMIRROR, "harvest", str(out), *[x for kv in base.items() for x in kv], *extra]
    result = subprocess.run(argv, env=cli_env(emulator), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_missing_credentials_and_no_machine_role_exit_2(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(users={"viewer": ("viewer-token", False)})
    argv = harvest_argv(tmp_path / "out")
    env = cli_env(M2M_SERVICE_URL=emu.service_url)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "M2M_TOKEN" in result.stderr
    env.update(M2M_USERNAME="viewer", M2M_TOKEN="viewer-token")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "MACHINE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_dry_run_fetches_nothing(emulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        harvest_argv(out, "--bands", "red,MTL", "--dry-run", "--json"),
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)["planned"]
    assert (
        planned
        and all(p["size"] for p in planned)
        and {p["file"][41:] for p in planned} == {"SR_B4.TIF", "MTL.txt", "MTL.xml", "MTL.json"}
    )
    assert not out.exists() and "download-request" not in json.loads(result.stdout)["apiCalls"]


def test_secrets_stay_out_of_output_and_files(make_emulator, tmp_path: Path) -> None:
    token = "harvest-Secret-T0ken"
    emu = make_emulator(users={"alice": (token, True)})
    env = cli_env(M2M_SERVICE_URL=emu.service_url, M2M_USERNAME="alice", M2M_TOKEN=token)
    out = tmp_path / "out"
    result = subprocess.run(
        harvest_argv(out, "--bands", "red", "--max-scenes", "1", "--no-catalog", verbose=True),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    keys = list(emu.service.keys)
    assert keys and "M2M login-token" in result.stderr
    blobs = [result.stdout, result.stderr] + [
        p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()
    ]
    for secret in [token, *keys]:
        assert not any(secret in blob for blob in blobs)


# -- selection ------------------------------------------------------------------------------------------


def test_areas_across_the_antimeridian_are_split() -> None:
    area = parse_bbox("170,-10,-170,10")
    assert area.geom_type == "MultiPolygon" and len(spatial_filters(area)) == 2
    drawn = load_area(wkt="POLYGON ((170 -10, -170 -10, -170 10, 170 10, 170 -10))")
    assert drawn.geom_type == "MultiPolygon" and round(drawn.area) == 400
    world = load_area(wkt="POLYGON ((-180 -85, 180 -85, 180 85, -180 85, -180 -85))")  # not a crossing
    assert world.geom_type == "Polygon" and round(world.area) == 360 * 170


def test_regions_keep_the_least_cloudy_per_region(emulator, tmp_path: Path) -> None:
    csv_path = tmp_path / "regions.csv"
    csv_path.write_text("LL Lat, LL Lon, UR Lat, UR Lon\n38.0,-122.6,39.6,-120.0\n-35,147.5,-34,149\n")
    regions = load_regions(csv_path)
    summary, _ = run_harvest(
        emulator, tmp_path / "out", mode="bands", bands=["MTL.json"], regions=regions, per_region=2, area=None
    )
    assert summary.scenes_found == 4
    archive = build_archive()
    chosen = {p.parent.name for p in (tmp_path / "out").rglob("*_MTL.json")}
    for path_row in ({"044"}, {"091"}):
        candidates = [
            s
            for s in archive
            if f"{s.path:03d}" in path_row
            and s.l2_generated
            and "2021-09-01" <= s.acquired.isoformat() <= "2021-12-31"
        ]
        picked = [s for s in candidates if s.display_id(2) in chosen]
        assert len(picked) == 2
        assert max(s.cloud_cover for s in picked) <= min(s.cloud_cover for s in candidates if s not in picked)
    with pytest.raises(InvalidInput):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        load_regions(tmp_path / "bad.csv")


def test_large_result_sets_are_split_bydate(emulator, monkeypatch) -> None:
    monkeypatch.setattr(selection_module, "SEARCH_HIT_CAP", 5)
    selection = Selection(L2, date("2021-01-01"), date("2021-12-31"))
    with M2MClient(demo_credentials(), emulator.service_url, retry=FAST_RETRY) as client:
        scenes = selection_module.search(client, selection)
    assert len(scenes) == 34 == len({s.entity_id for s in scenes})
    assert client.calls["scene-search"] > 10


# -- hostile bundles ----------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x" * 10) -> Path:
    with tarfile.open(path, "w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 10, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../escape.TIF"),
        _member("/etc/evil.TIF"),
        _member("a/../../escape.TIF"),
        _member("link.TIF", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("hard.TIF", tarfile.LNKTYPE, link="../../outside"),
        _member("dev.TIF", tarfile.CHRTYPE),
        _member("fifo.TIF", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_hostile_bundles_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar(tmp_path / "bad.tar", [_member("ok_MTL.txt"), member])
    scene = tmp_path / "mirror" / "scene"
    with pytest.raises(UnsafeArchiveError):
        extract_bundle(archive, scene)
    assert not any(p.is_file() for p in (tmp_path / "mirror").rglob("*"))
    assert not (tmp_path / "escape.TIF").exists()


def test_bundles_with_a_folder_prefix_extract_flat(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar", [_member("data/scene/a_B1.TIF"), _member("b_MTL.txt")])
    written = extract_bundle(archive, tmp_path / "scene")
    assert sorted(w.name for w in written) == ["a_B1.TIF", "b_MTL.txt"]
    assert (tmp_path / "scene" / "a_B1.TIF").read_bytes() == b"x" * 10


def test_gzip_or_garbage_is_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "bundle.tar"
    path.write_bytes(b"<html>error</html>" * 100)
    with pytest.raises(UnsafeArchiveError):
        extract_bundle(path, tmp_path / "scene")


def test_ledger_survives_reopen(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.close()
    with sqlite3.connect(tmp_path / ".stacmirror" / "ledger.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "scenes", "files"} <= tables
    assert os.access(tmp_path / ".stacmirror" / "ledger.sqlite", os.R_OK)


def test_progress_bars_on_a_terminal(emulator, tmp_path: Path) -> None:
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.skip("util-linux `script` (to give the harvest a terminal) is not installed")
    common = ["--bands", "red,MTL", "--max-scenes", "2", "--no-catalog"]
    argv = harvest_argv(tmp_path / "out", *common)
    log = tmp_path / "terminal.log"
    subprocess.run(
        ["script", "-q", "-c", shlex.join(argv), str(log)],
        env=cli_env(emulator),
        capture_output=True,
        timeout=120,
        check=True,
    )
    screen = log.read_text(errors="replace")
    assert "files 8/8" in screen and ("kB/s" in screen or "MB/s" in screen)
    quiet = subprocess.run(
        harvest_argv(tmp_path / "out", *common, "--quiet"),
        env=cli_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
