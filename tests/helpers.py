"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from shapely.geometry import box

from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator
from stacmirror.harvester.download import TransferPolicy
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection
from stacmirror.m2m import Credentials, M2MClient, RetryPolicy, Secret

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
L2 = "landsat_ot_c2_l2"
NORTH = box(-122.6, 38.0, -120.0, 39.6)
STACMIRROR = [sys.executable, "-m", "stacmirror.cli"]
FAST_RETRY = RetryPolicy(
    attempts=4, initial_wait=0.01, max_wait=0.05, download_limit_wait=0.01, download_limit_attempts=2
)
FAST_TRANSFER = TransferPolicy(attempts=6, initial_wait=0.01, max_wait=0.05)


def date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def demo_credentials() -> Credentials:
    return Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN))


def cli_env(emulator: Emulator | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    if emulator is not None:
        env.update(M2M_USERNAME=DEMO_USERNAME, M2M_TOKEN=DEMO_TOKEN, M2M_SERVICE_URL=emulator.service_url)
    env.update(extra)
    return env


def harvest_argv(out: Path, *extra: str, verbose: bool = False) -> list[str]:
    """`stacmirror harvest OUT` over the northern test area, September to December 2021, plus ``extra``."""
    return [
        *STACMIRROR,
        *(["-vv"] if verbose else []),
        "harvest",
        str(out),
        "--dataset",
        L2,
        "--bbox=-122.6,38.0,-120.0,39.6",
        "--start",
        "2021-09-01",
        "--end",
        "2021-12-31",
        *extra,
    ]


def run_harvest(emu, out: Path, *, credentials: Credentials | None = None, on_event=None, **kwargs):
    """A harvest through the library's Harvest runner, with fast polling and retries."""
    area = kwargs.pop("area", NORTH)
    dataset = kwargs.pop("dataset", L2)
    filters = {k: kwargs.pop(k) for k in ("path", "row", "tier", "satellite") if k in kwargs}
    selection = Selection(
        dataset,
        kwargs.pop("start", date("2021-09-01")),
        kwargs.pop("end", date("2021-12-31")),
        aoi=area,
        **filters,
    )
    options = HarvestOptions(
        out=out, selection=selection, poll_interval=0.05, poll_timeout=5, transfer=FAST_TRANSFER, **kwargs
    )
    with M2MClient(credentials or demo_credentials(), emu.service_url, retry=FAST_RETRY) as client:
        summary = Harvest(client, options, on_event).run()
    return summary, client


def mirrored(out: Path) -> dict[str, Path]:
    return {p.name: p for p in out.rglob("*") if p.is_file() and ".stacmirror" not in p.parts}


def assert_matches_emulator(emu, files: dict[str, Path]) -> None:
    """Every mirrored product file is byte-identical to what the emulator serves."""
    checked = 0
    for scene in emu.service.scenes:
        if scene.l2_generated is None or not any(n.startswith(scene.display_id(2)) for n in files):
            continue
        for pfile in emu.service.store.files(scene, 2).values():
            if pfile.name in files:
                assert hashlib.sha256(files[pfile.name].read_bytes()).hexdigest() == pfile.sha256, pfile.name
                checked += 1
    assert checked


def chromium_binary() -> str:
    """Debian's Chromium, which the browser tests drive headless; CI must have it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: scripts/test.sh installs Debian's chromium when run as root")
    pytest.skip("Chromium is not installed (scripts/test.sh installs Debian's chromium when run as root)")


@contextmanager
def serving(out: Path, browser: Path | None = None, **options) -> Iterator:
    """``stacmirror serve``'s server for ``out`` on a free loopback port, in a thread, for the block."""
    from stacmirror.serve.server import ServeServer

    server = ServeServer(out, browser, port=0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
