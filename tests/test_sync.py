"""Sync against the emulator over HTTP: the archive moves on (late scenes, Real-Time -> Tier 1,
reprocessing), and the mirror follows it safely: subscriptions, swaps, gone products, crops."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from shapely.geometry import Polygon

import stacmirror
from stacmirror import events as ev
from stacmirror.emulator.scenes import build_archive, product_at
from stacmirror.harvester import swap
from stacmirror.landsat import ProductId
from stacmirror.layout import Mirror
from stacmirror.ledger import Ledger, MirrorLock
from stacmirror.m2m import M2MClient

from .helpers import FAST_RETRY, L2, NORTH, STACMIRROR, cli_env, demo_credentials

L1 = "landsat_ot_c2_l1"
BEFORE, AFTER = dt.date(2021, 11, 1), dt.date(2022, 8, 1)
BANDS = "red,MTL"
GENERATED = ("_thumb.png", "_browse.jpg", "_browse.png", "_browse.webp", "_browse.gif")


def selection(dataset: str = L1, end: str | None = None) -> stacmirror.Selection:
    return stacmirror.Selection(dataset, "2021-09-01", end, bbox="-122.6,38.0,-120.0,39.6")


def harvest(emu, out: Path, dataset: str = L1, bands: str = BANDS, **kwargs):
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        return stacmirror.harvest(
            out, selection(dataset), client=client, bands=bands, poll_interval=0.05, poll_timeout=10, **kwargs
        )


def sync(emu, out: Path, **kwargs):
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        return stacmirror.sync(out, client=client, poll_interval=0.05, poll_timeout=10, **kwargs)


def listed(emu, level: int = 1) -> set[str]:
    """What the emulator's archive lists today for the test selection (computed on its side)."""
    return {
        s.display_id(level)
        for s in emu.service.scenes
        if (level == 1 or s.l2_generated)
        and s.acquired >= dt.date(2021, 9, 1)
        and Polygon(s.footprint_lonlat).intersects(NORTH)
        and s.entity_id not in emu.faults.withdrawn
    }


def products(out: Path, dataset: str = L1) -> list[str]:
    return sorted(p.name for p in (out / dataset).glob("[0-9]*/[0-9]*/*") if p.is_dir())


def tree(out: Path) -> dict[str, str]:
    """Every file under ``out``, hidden state included, by content."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file()
    }


def assert_byte_exact(emu, out: Path, dataset: str = L1, level: int = 1) -> None:
    """Every product file on disk is what the emulator serves for that product id."""
    by_id = {s.display_id(level): s for s in emu.service.scenes if level == 1 or s.l2_generated}
    checked = 0
    for folder in (p for p in (out / dataset).glob("[0-9]*/[0-9]*/*") if p.is_dir()):
        served = {f.name: f.sha256 for f in emu.service.store.files(by_id[folder.name], level).values()}
        for path in folder.iterdir():
            if path.name == f"{folder.name}.json" or path.name.endswith(GENERATED):
                continue
            assert hashlib.sha256(path.read_bytes()).hexdigest() == served[path.name], path
            checked += 1
    assert checked


# -- the emulator's clock ----------------------------------------------------------------------------


def test_the_emulator_archive_moves_on_with_its_clock() -> None:
    plain = build_archive()
    records = {r.entity_id: r for r in build_archive(today=dt.date(2030, 1, 1))}
    assert set(records) == {r.entity_id for r in plain}  # the same acquisitions, in the end
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for day in (dt.date(2021, 9, 1) + dt.timedelta(days=d) for d in range(0, 800)):
        for record in build_archive(today=day, reprocess_share=0.5):
            assert day >= record.acquired + dt.timedelta(days=1)  # published a few days after
            if day >= record.acquired + dt.timedelta(days=27):
                assert record.tier != "RT" and record.l2_generated is not None  # tiered after weeks
            seen[record.entity_id].add(record.display_id(1))
    histories = [sorted(ids, key=lambda i: ProductId.parse(i).version) for ids in seen.values()]
    assert all(ProductId.parse(h[0]).tier == "RT" for h in histories if h)
    assert all(
        ProductId.parse(b).supersedes(ProductId.parse(a))
        for h in histories
        for a, b in zip(h, h[1:], strict=False)
    )
    reprocessed = sum(len(h) == 3 for h in histories)
    assert 0.3 * len(histories) < reprocessed < 0.7 * len(histories)
    # in the end every product is tiered (T2 for the cloudiest), whatever tier the snapshot showed
    for record in plain:
        late = product_at(record, dt.date(2030, 1, 1), 0.0)
        assert late.entity_id == record.entity_id and late.tier == ("T2" if record.cloud_cover > 60 else "T1")


# -- harvest at one date, sync at a later one -----------------------------------------------------------


def test_sync_follows_the_archive_exactly(make_emulator, tmp_path: Path, shared: Path) -> None:
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    first = harvest(emu, out)
    assert first.ok and products(out) == sorted(listed(emu))
    assert [s.id for s in stacmirror.subscriptions(out)] == [first.subscription]
    before = set(products(out))

    emu.set_today(AFTER)
    later = listed(emu)
    new_ids = later - before
    superseded = {
        old: new for old in before for new in later if ProductId.parse(new).supersedes(ProductId.parse(old))
    }
    assert superseded and any("_RT" in old for old in superseded)  # RT -> T1 and reprocessing both
    assert any(not old.endswith("_RT") for old in superseded)
    added = new_ids - set(superseded.values())
    assert added  # late publications too

    seen: list[ev.Event] = []
    result = sync(emu, out, on_event=seen.append)
    report = result.to_dict()
    assert result.ok and not result.current, report
    assert products(out) == sorted(later)  # exactly the later archive's products
    assert_byte_exact(emu, out)
    (sub,) = report["subscriptions"]
    assert set(sub["added"]) == added
    assert {r["old"]: r["new"] for r in sub["replaced"]} == superseded
    assert {(e.old, e.new) for e in seen if isinstance(e, ev.ProductReplaced)} == set(superseded.items())
    assert not list(Mirror(out).state_dir.glob("incoming/*/*")) and not Mirror(out).trash_dir.exists()

    # one item per scene, in the tree and in items.parquet; replacements link what they replaced
    items = stacmirror.items(out, collection=L1)
    assert sorted(i.id for i in items) == sorted(later)
    for item in items:
        links = [link for link in item.links if link.rel == "predecessor-version"]
        olds = [old for old, new in superseded.items() if new == item.id]
        assert [link.title.split(" ")[0] for link in links] == olds
    ids = subprocess.run(
        [*STACMIRROR, "query", str(out), "--ids"], capture_output=True, text=True, timeout=60
    )
    assert ids.returncode == 0 and sorted(ids.stdout.split()) == sorted(later), ids.stderr
    assert stacmirror.validate(out, schemas=shared / "stac-schemas").ok

    # a second sync has nothing to do: the search calls only, and no byte moves
    calls_before = emu.service.stats["file_requests"]
    again = sync(emu, out)
    assert again.ok and again.current
    assert again.to_dict()["bytesDownloaded"] == 0 and emu.service.stats["file_requests"] == calls_before
    assert set(again.api_calls) <= {"login-token", "dataset-filters", "scene-search", "logout"}
    assert again.catalog.written == 0


def test_dry_run_lists_every_change_and_writes_nothing(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    harvest(emu, out)
    emu.set_today(AFTER)
    later = listed(emu)
    held = set(products(out))
    snapshot = tree(out)
    result = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--dry-run", "--json", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (sub,) = report["subscriptions"]
    replaced = {r["old"]: r["new"] for r in sub["replaced"]}
    assert set(replaced.values()) | set(sub["added"]) == later - held
    assert set(replaced) == {old for old in held if old not in later}
    files = {p["file"] for p in sub["planned"]}
    assert {f[:40] for f in files} == later - held and report["bytesToFetch"] == sum(
        p["size"] for p in sub["planned"]
    )
    assert report["bytesToFetch"] > 0 and report["filesDownloaded"] == 0
    assert tree(out) == snapshot  # byte-identical, the ledger included
    human = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--dry-run", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert human.returncode == 0
    for old, new in replaced.items():
        assert f"would replace  {old} -> {new}" in human.stdout
    for new in sub["added"]:
        assert f"would add      {new}" in human.stdout
    assert tree(out) == snapshot


def test_kill_9_during_replacements_leaves_every_scene_whole(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    harvest(emu, out)
    held = set(products(out))
    emu.set_today(AFTER)
    emu.faults.throttle_bps = 120_000
    argv = [*STACMIRROR, "sync", str(out), "--quiet", "--poll-interval", "0.05", "--workers", "2"]
    incoming = Mirror(out).state_dir / "incoming"
    for _ in range(3):  # killed three times while replacements download
        proc = subprocess.Popen(argv, env=cli_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        grown = {p: p.stat().st_size for p in incoming.rglob(".*.part")}
        while time.monotonic() < deadline and not any(
            p.stat().st_size > grown.get(p, 0) + 20_000 for p in incoming.rglob(".*.part") if p.exists()
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        assert list(incoming.rglob(".*.part")), "killed while a replacement was downloading"
        assert_every_scene_whole(out, held)
    emu.faults.throttle_bps = 0
    finished = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--json", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode == 0, finished.stderr
    assert products(out) == sorted(listed(emu))
    assert_byte_exact(emu, out)
    assert not list(incoming.rglob("*.*")) and not list(out.rglob(".*.part"))


def assert_every_scene_whole(out: Path, held: set[str]) -> None:
    """Each acquisition the mirror held has exactly one product the catalog sees, and that product
    has every file, each with the size and sha256 its download was verified against (the ledger's
    rows may still name the incoming folder: the next run moves them with the folder)."""
    acquisitions = {ProductId.parse(i).acquisition for i in held}
    visible = collections.defaultdict(list)
    for _, folder, _ in Mirror(out).scene_folder_keys():
        visible[ProductId.parse(Path(folder).name).acquisition].append(Path(folder))
    with Ledger(out) as ledger:
        for acquisition in acquisitions:
            (folder,) = visible[acquisition]
            verified = {Path(r.path).name: r for r in ledger.files_of(folder.name) if r.state == "done"}
            for suffix in ("B4.TIF", "MTL.txt", "MTL.xml", "MTL.json"):
                path = folder / f"{folder.name}_{suffix}"
                record = verified[path.name]
                assert path.stat().st_size == record.size, path
                assert hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256, path


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_an_interrupted_swap_is_finished_by_the_next_run(
    make_emulator, tmp_path: Path, monkeypatch, crash_after: int
) -> None:
    """The swap is stopped dead after each of its renames in turn; the mirror is whole every time, and
    the next sync finishes the job."""
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    harvest(emu, out)
    held = set(products(out))
    emu.set_today(AFTER)
    renames = {"n": 0}
    real_rename = os.rename

    class Crash(BaseException):
        pass

    def rename(src, dst):
        real_rename(src, dst)
        renames["n"] += 1
        if renames["n"] == crash_after:
            raise Crash

    monkeypatch.setattr(swap.os, "rename", rename)
    with pytest.raises(Crash):
        sync(emu, out)
    monkeypatch.setattr(swap.os, "rename", real_rename)
    assert_every_scene_whole(out, held)
    with Ledger(out) as ledger:
        assert ledger.pending_replacements()
    result = sync(emu, out)
    assert result.ok
    assert products(out) == sorted(listed(emu))
    assert_byte_exact(emu, out)
    with Ledger(out) as ledger:
        assert not ledger.pending_replacements()


# -- gone upstream, pruning, keeping what was replaced -------------------------------------------------


def test_products_gone_upstream_are_kept_until_pruned(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=AFTER)
    out = tmp_path / "mirror"
    harvest(emu, out)
    held = products(out)
    victim = next(s for s in emu.service.scenes if s.display_id(1) == held[0])
    emu.faults.withdrawn = (victim.entity_id,)
    seen: list[ev.Event] = []
    kept = sync(emu, out, on_event=seen.append)
    assert kept.ok and kept.to_dict()["gone"] == 1 and kept.to_dict()["removed"] == 0
    assert kept.subscriptions[0].gone == [held[0]] and products(out) == held  # nothing deleted
    assert ev.ProductGone(held[0], False) in seen
    assert held[0] in {i.id for i in stacmirror.items(out, collection=L1)}
    snapshot = tree(out)
    dry = run_cli(emu, "sync", str(out), "--prune", "--dry-run")
    assert dry.returncode == 0 and f"would remove   {held[0]}" in dry.stdout, dry.stdout
    assert tree(out) == snapshot
    pruned = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--prune", "--json", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["subscriptions"][0]["removed"] == [held[0]]
    assert products(out) == held[1:]
    assert held[0] not in {i.id for i in stacmirror.items(out, collection=L1)}
    assert held[0] not in {r["id"] for r in stacmirror.query(out, collection=L1).items}
    with Ledger(out) as ledger:
        assert not ledger.files_of(held[0]) and ledger.scene(held[0]) is None
    emu.faults.withdrawn = ()
    back = sync(emu, out)  # published again: it comes back like any new scene
    assert back.subscriptions[0].harvest.added == [held[0]] and products(out) == held


def test_keep_superseded_moves_old_products_outside_the_catalog(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    harvest(emu, out)
    emu.set_today(AFTER)
    result = sync(emu, out, keep_superseded=True)
    olds = [r["old"] for r in result.subscriptions[0].harvest.replaced]
    assert olds
    mirror = Mirror(out)
    for old in olds:
        kept = mirror.superseded_dir(L1, old)
        assert (kept / f"{old}_B4.TIF").is_file() and not mirror.scene_dir(L1, old).exists()
    assert sorted(i.id for i in stacmirror.items(out, collection=L1)) == products(out) == sorted(listed(emu))


def test_a_failed_replacement_keeps_the_old_product_and_exits_1(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    out = tmp_path / "mirror"
    harvest(emu, out)
    held = set(products(out))
    emu.set_today(AFTER)
    emu.faults.withhold_suffix = "B4.TIF"  # the new products' red band is not offered
    result = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--json", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["filesFailed"] and not report["subscriptions"][0]["replaced"]
    assert held <= set(products(out))  # every old product is still there
    assert_every_scene_whole(out, held)
    emu.faults.withhold_suffix = ""
    assert sync(emu, out).ok and products(out) == sorted(listed(emu))
    assert_byte_exact(emu, out)


# -- bundles and crops -----------------------------------------------------------------------------


def test_bundles_are_replaced_and_crops_follow(make_emulator, tmp_path: Path, shared: Path) -> None:
    emu = make_emulator(today=dt.date(2022, 1, 15), reprocess_share=0.7)
    out = tmp_path / "mirror"
    with M2MClient(demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        first = stacmirror.harvest(out, selection(L2), client=client, poll_interval=0.05)  # bundles
    assert first.ok
    stacks = stacmirror.find_stacks(out, min_scenes=2)
    cropped = stacmirror.crop(out, stacks, assets=["red", "qa_pixel"], workers=1, virtual=True)
    assert cropped.ok and cropped.stacks
    before = {s.stack_id: sorted(m.id for m in s.members) for s in stacks}

    emu.set_today(dt.date(2023, 6, 1))
    result = sync(emu, out)
    replaced = {r["old"]: r["new"] for r in result.subscriptions[0].harvest.replaced}
    assert result.ok and replaced, result.to_dict()
    assert products(out, L2) == sorted(listed(emu, 2))
    assert_byte_exact(emu, out, L2, 2)
    assert not list((out / L2).rglob("*.tar"))
    touched = {sid for sid, members in before.items() if set(members) & set(replaced)}
    assert touched and {c.stack_id for c in result.crops} == touched
    assert all(c.action == "recropped" for c in result.crops)
    for stack_id in touched:
        state = json.loads(Mirror(out).crop_state_path(stack_id).read_text())
        expected = sorted(replaced.get(m, m) for m in before[stack_id])
        assert state["members"] == expected
        crop_items = sorted(p.parent.name for p in Mirror(out).crop_dir(stack_id).glob("*/*.json"))
        assert crop_items == expected
        rasters = {
            p.suffix for p in Mirror(out).crop_dir(stack_id).glob("*/*") if p.suffix in (".vrt", ".TIF")
        }
        assert rasters == {".vrt"} and state["virtual"]  # refreshed in the mode it was cropped in
    assert stacmirror.validate(out, schemas=shared / "stac-schemas").ok

    # cropped again by copying; then a member withdrawn upstream and pruned: its stack is found
    # again without it, and copied again
    again = stacmirror.crop(out, stacmirror.find_stacks(out, min_scenes=2), assets=["red", "qa_pixel"])
    assert again.ok and not any(s.skipped for s in again.stacks)  # a mode switch re-crops
    stack_id = max(touched, key=lambda sid: len(before[sid]))
    state = json.loads(Mirror(out).crop_state_path(stack_id).read_text())
    victim = state["members"][0]
    emu.faults.withdrawn = tuple(s.entity_id for s in emu.service.scenes if s.display_id(2) == victim)
    pruned = sync(emu, out, prune=True)
    assert pruned.ok and pruned.subscriptions[0].removed == [victim]
    (refresh,) = [c for c in pruned.crops if c.stack_id == stack_id]
    remaining = [m for m in state["members"] if m != victim]
    if len(remaining) >= 2:
        assert refresh.action == "recropped"
        assert json.loads(Mirror(out).crop_state_path(stack_id).read_text())["members"] == remaining
        rasters = {
            p.suffix for p in Mirror(out).crop_dir(stack_id).glob("*/*") if p.suffix in (".vrt", ".TIF")
        }
        assert rasters == {".TIF"}
    else:
        assert refresh.action == "dropped" and not Mirror(out).crop_dir(stack_id).exists()
    assert stacmirror.validate(out, schemas=shared / "stac-schemas").ok


# -- subscriptions -------------------------------------------------------------------------------------


def test_harvests_record_subscriptions_and_sync_reruns_them(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=BEFORE)
    out = tmp_path / "mirror"
    common = [
        "--dataset",
        L1,
        "--bbox=-122.6,38.0,-120.0,39.6",
        "--start",
        "2021-09-01",
        "--poll-interval",
        "0.05",
    ]
    for extra in (
        ["--bands", BANDS],
        ["--bands", BANDS],
        ["--bands", "red", "--end", "today", "--cloud-max", "50"],
    ):
        done = subprocess.run(
            [*STACMIRROR, "harvest", str(out), *common, *extra, "--quiet"],
            env=cli_env(emu),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    listing = subprocess.run(
        [*STACMIRROR, "subscriptions", str(out), "--json"], capture_output=True, text=True
    )
    subs = json.loads(listing.stdout)
    assert [s["id"] for s in subs] == [1, 2]  # the repeated harvest is the same subscription
    assert (
        subs[0]["openEnd"] and subs[0]["bands"] == ["red", "MTL"] and subs[0]["scenes"] == len(products(out))
    )
    assert subs[1]["cloudMax"] == 50 and subs[1]["bands"] == ["red"]
    text = subprocess.run([*STACMIRROR, "subscriptions", str(out)], capture_output=True, text=True).stdout
    assert text.startswith("1  landsat_ot_c2_l1; 2021-09-01..today (open)") and "cloud<=50" in text

    emu.set_today(AFTER)
    synced = subprocess.run(
        [*STACMIRROR, "sync", str(out), "--json", "--poll-interval", "0.05"],
        env=cli_env(emu),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert [s["subscription"] for s in report["subscriptions"]] == [1, 2]
    assert products(out) == sorted(listed(emu))

    removed = subprocess.run(
        [*STACMIRROR, "subscriptions", str(out), "--remove", "2"], capture_output=True, text=True
    )
    assert removed.returncode == 0 and "removed subscription 2" in removed.stdout
    assert [s.id for s in stacmirror.subscriptions(out)] == [1] and products(out) == sorted(listed(emu))


def test_the_catalog_shows_one_product_per_acquisition(make_emulator, tmp_path: Path) -> None:
    """A mirror an older stacmirror filled twice (old and new product side by side) is catalogued
    with the newer one only; the next sync takes the older one away."""
    emu = make_emulator(today=BEFORE, reprocess_share=0.5)
    old_mirror, new_mirror = tmp_path / "old", tmp_path / "new"
    harvest(emu, old_mirror)
    emu.set_today(AFTER)
    harvest(emu, new_mirror)
    for folder in (p for p in (old_mirror / L1).glob("*/*/*") if p.is_dir()):  # both, as before sync existed
        target = new_mirror / folder.relative_to(old_mirror)
        if not target.exists():
            os.rename(folder, target)
    assert len(products(new_mirror)) > len(listed(emu))
    catalog = stacmirror.build_catalog(new_mirror)
    assert catalog.ok
    assert sorted(i.id for i in stacmirror.items(new_mirror, collection=L1)) == sorted(listed(emu))
    assert sync(emu, new_mirror).ok and products(new_mirror) == sorted(listed(emu))


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------


def run_cli(emu, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*STACMIRROR, *args], env=cli_env(emu), capture_output=True, text=True, timeout=120)


def test_sync_bad_input_exits_2_and_writes_nothing(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(today=AFTER)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a mirror")
    cases = [((str(plain),), "not a stacmirror mirror"), ((str(tmp_path / "missing"),), "not a folder")]
    out = tmp_path / "mirror"
    harvest(emu, out)
    cases.append((("--remove", "7"), "no subscription 7"))
    for args, message in cases:
        command = ["subscriptions", str(out), *args] if args[0] == "--remove" else ["sync", *args]
        snapshot = tree(out)
        result = run_cli(emu, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
        assert tree(out) == snapshot and sorted(os.listdir(plain)) == ["notes.txt"]

    emu.faults.retired_datasets = (L1,)
    snapshot = tree(out)
    requests = emu.service.stats["file_requests"]
    retired = run_cli(emu, "sync", str(out))
    assert retired.returncode == 2 and "subscription 1 (landsat_ot_c2_l1)" in retired.stderr
    assert "no longer exists" in retired.stderr and len(retired.stderr.strip().splitlines()) == 1
    assert tree(out) == snapshot and emu.service.stats["file_requests"] == requests
    emu.faults.retired_datasets = ()

    lock = MirrorLock(out)
    lock.acquire()
    try:
        busy = run_cli(emu, "sync", str(out))
    finally:
        lock.release()
    assert busy.returncode == 2 and "another harvest or sync" in busy.stderr

    assert run_cli(emu, "subscriptions", str(out), "--remove", "1").returncode == 0
    snapshot = tree(out)
    empty = run_cli(emu, "sync", str(out))
    assert empty.returncode == 2 and "has no subscriptions" in empty.stderr
    assert tree(out) == snapshot


def test_the_emulator_command_takes_a_date(tmp_path: Path) -> None:
    day = dt.date(2021, 10, 20)
    argv = [*STACMIRROR, "emulator", "--port", "0", "--data", str(tmp_path), "--today", str(day)]
    argv += ["--reprocess-share", "0", "--withdraw", "LC80440332021248LGN00"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        url = proc.stdout.readline().split()[3]
        archive = build_archive(today=day)
        expected = [r for r in archive if r.entity_id != "LC80440332021248LGN00"]
        assert len(expected) == len(archive) - 1
        with M2MClient(demo_credentials(), url, retry=FAST_RETRY) as api:
            l1 = api.scene_search(L1, max_results=100)
            assert l1.total_hits == len(expected) < 36
            assert {s.display_id for s in l1.scenes} == {r.display_id(1) for r in expected}
            assert api.scene_search(L2, max_results=100).total_hits == sum(
                1 for r in expected if r.l2_generated
            )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    bad = subprocess.run([*STACMIRROR, "emulator", "--today", "2021-13-01"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--today" in bad.stderr
