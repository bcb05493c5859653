"""Shared fixtures: a real emulator on loopback, clients with fast retry policies, reference data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator, Faults
from stacmirror.m2m import Credentials, M2MClient, RetryPolicy, Secret

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

FAST_RETRY = RetryPolicy(
    attempts=4, initial_wait=0.01, max_wait=0.05, download_limit_wait=0.01, download_limit_attempts=2
)


@pytest.fixture(scope="session")
def emulator_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated scene files are cached for the whole session; emulator state is per test."""
    return tmp_path_factory.mktemp("emulator-data")


@pytest.fixture
def make_emulator(emulator_data: Path) -> Iterator:
    started: list[Emulator] = []

    def make(faults: Faults | None = None, **kwargs) -> Emulator:
        emu = Emulator(emulator_data, faults=faults, **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator) -> Emulator:
    return make_emulator()


def demo_credentials() -> Credentials:
    return Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN))


@pytest.fixture
def client(emulator: Emulator) -> Iterator[M2MClient]:
    with M2MClient(demo_credentials(), emulator.service_url, retry=FAST_RETRY) as api:
        yield api


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED} (the project's shared/ folder sits beside the clone)"
        )
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's credentials or writes into their cache."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("M2M_USERNAME", "M2M_TOKEN", "M2M_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)


def cli_env(emulator: Emulator | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    if emulator is not None:
        env.update(M2M_USERNAME=DEMO_USERNAME, M2M_TOKEN=DEMO_TOKEN, M2M_SERVICE_URL=emulator.service_url)
    env.update(extra)
    return env
