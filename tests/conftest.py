"""Shared fixtures: a real emulator on loopback, clients with fast retry policies, reference data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator, Faults
from stacmirror.m2m import M2MClient

from .helpers import FAST_RETRY, SHARED, chromium_binary, demo_credentials


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


@pytest.fixture
def schema_host(shared: Path) -> Iterator[str]:
    """A local HTTP server standing in for https://stac-extensions.github.io/ (STACMIRROR_SCHEMA_HOST)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:
            pass

    root = shared / "stac-schemas" / "stac-extensions.github.io"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def use_emulator(emulator, monkeypatch: pytest.MonkeyPatch):
    """The emulator's URL and the demo credentials in the environment, as a user would set them."""
    monkeypatch.setenv("M2M_SERVICE_URL", emulator.service_url)
    monkeypatch.setenv("M2M_USERNAME", DEMO_USERNAME)
    monkeypatch.setenv("M2M_TOKEN", DEMO_TOKEN)
    return emulator


@pytest.fixture(scope="session")
def built_browser() -> Path:
    """Built once per machine into the user's cache, as `stacmirror serve` does (not the per-test home)."""
    from stacmirror.serve import browser as stac_browser

    chromium_binary()
    saved = os.environ.get("STACMIRROR_BROWSER_CACHE")
    os.environ["STACMIRROR_BROWSER_CACHE"] = str(
        Path.home() / ".cache" / "stacmirror" / stac_browser.CACHE_NAME
    )
    try:
        return stac_browser.build()
    except stac_browser.BrowserUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"STAC Browser could not be built: {exc}")
        pytest.skip(f"STAC Browser could not be built here: {exc}")
    finally:
        if saved is None:
            os.environ.pop("STACMIRROR_BROWSER_CACHE", None)
        else:
            os.environ["STACMIRROR_BROWSER_CACHE"] = saved


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory):
    """A real S3-protocol server on 127.0.0.1 (moto's server mode), for the whole session."""
    pytest.importorskip("moto", reason="moto[server] is a test extra: pip install -e '.[test]'")
    from . import s3

    server = s3.MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def bucket(moto, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and the standard AWS environment pointing at the local server."""
    import uuid

    from . import s3

    name = f"mirror-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.SECRET)
    monkeypatch.setenv("AWS_REGION", s3.REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return name


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    """A real Azure Blob server on 127.0.0.1 (Azurite, from npm), for the whole session."""
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is a test extra")
    from . import azure

    try:
        command = azure.install(Path.home() / ".cache" / "stacmirror" / f"azurite-{azure.VERSION}")
        server = azure.AzuriteServer(command, tmp_path_factory.mktemp("azurite") / "azurite.log")
    except azure.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Azurite is needed for the Azure tests: {exc}")
        pytest.skip(f"Azurite is not available here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def container(azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh container, and the environment that points obstore and GDAL at the emulator."""
    import uuid

    name = f"mirror-{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite.url)
    return name
