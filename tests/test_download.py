"""The one place bytes are downloaded, against a real HTTP server on 127.0.0.1: bodies read as they
arrive (a cut keeps what came), short files checked by type, and fsync only when asked for."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stacmirror.harvester import bundle, download
from stacmirror.harvester.download import FileJob, IntegrityError, TransferPolicy, fetch
from stacmirror.layout import partial_path

from .helpers import mirrored, run_harvest

QUICK = TransferPolicy(attempts=3, initial_wait=0.01, max_wait=0.02, timeout=(2.0, 2.0))
BODY = b"II*\x00" + os.urandom(300_000)  # a GeoTIFF by its magic bytes
MTL = b"GROUP = LANDSAT_METADATA_FILE\nEND_GROUP\nEND\n"  # shorter than the 512 bytes of a type check


class Files(BaseHTTPRequestHandler):
    cut_first = threading.Event()  # set: the next /band.TIF stops after 120 000 bytes
    resumed_at: list[int] = []  # the Range starts asked for

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/MTL.txt":
            self._send(200, MTL)
        elif self.path == "/page.TIF":
            self._send(200, b"<html>sign in</html>")
        elif self.path == "/band.TIF":
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if "Range" in self.headers else 0
            if start:
                Files.resumed_at.append(start)
            body = BODY[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if Files.cut_first.is_set():
                Files.cut_first.clear()
                self.wfile.write(body[:120_000])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_file_shorter_than_the_type_check_lands_whole(host, tmp_path: Path) -> None:
    target = tmp_path / "x_MTL.txt"
    session = download.download_session(1)
    job = FileJob(target, len(MTL), hashlib.sha256(MTL).hexdigest())
    result = fetch(session, job, lambda: f"{host}/MTL.txt")
    assert target.read_bytes() == MTL and result.size == len(MTL)


def test_a_short_error_page_is_refused_and_leaves_nothing(host, tmp_path: Path) -> None:
    target = tmp_path / "x_B4.TIF"
    session = download.download_session(1)
    with pytest.raises(IntegrityError, match="does not look like"):
        fetch(session, FileJob(target, None, None), lambda: f"{host}/page.TIF", policy=QUICK)
    assert not target.exists() and not partial_path(target).exists()


def test_a_cut_body_keeps_what_arrived_and_resumes_with_range(host, tmp_path: Path) -> None:
    target = tmp_path / "x_B4.TIF"
    session = download.download_session(1)
    Files.resumed_at.clear()
    Files.cut_first.set()
    result = fetch(
        session, FileJob(target, len(BODY), hashlib.sha256(BODY).hexdigest()), lambda: f"{host}/band.TIF",
        policy=QUICK,
    )  # fmt: skip
    assert target.read_bytes() == BODY
    assert result.attempts == 2 and result.size == len(BODY)
    # the second attempt asked only for what the first did not keep: read as it arrived, nothing
    # received before the cut was lost (64 KiB reads used to drop the piece being filled)
    assert Files.resumed_at == [120_000]


def test_fsync_only_when_asked(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.fsync is counted, not replaced. Files always appear by an atomic rename; ``fsync=True``
    flushes each one (band files and bundle members) to disk before it; the default does not wait."""
    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(download.os, "fsync", counting)
    monkeypatch.setattr(bundle.os, "fsync", counting)
    summary, _ = run_harvest(emulator, tmp_path / "plain", bands=["red", "MTL"], max_scenes=1, browse=False)
    assert summary.files_downloaded >= 2 and synced == []
    summary, _ = run_harvest(
        emulator, tmp_path / "durable", bands=["red", "MTL"], max_scenes=1, browse=False, fsync=True
    )
    assert summary.files_downloaded >= 2 and len(synced) == summary.files_downloaded
    synced.clear()
    summary, _ = run_harvest(emulator, tmp_path / "bundle", max_scenes=1, browse=False, fsync=True)
    members = mirrored(tmp_path / "bundle")  # every member of the bundle, which was removed
    assert summary.files_downloaded == 1 and len(synced) == 1 + len(members) >= 3
