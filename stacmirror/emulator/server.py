"""The emulator's HTTP server: the M2M JSON API and the file hosts on one loopback port.

Routes, as the real service lays them out:

* ``/api/api/json/<version>/<endpoint>`` — the JSON API (POST, or GET with a body);
* ``/gen-bundle?landsat_product_id=…&requestSignature=…`` — product bundles (plain tar);
* ``/data/collection02/level-N/standard/oli-tirs/YYYY/PPP/RRR/<id>/<file>?requestSignature=…`` — band files;
* ``/download-staging/<token>`` — placeholder URLs of preparing downloads (404);
* ``/gen-browse?product_id=…&size=rrb|thumb`` — browse JPEGs.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import itertools
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .products import ProductStore
from .scenes import SceneSize, build_archive
from .service import Service
from .state import Faults, Variation

log = logging.getLogger(__name__)

API_PREFIX = "/api/api/json/"
HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<h1>502 ERROR</h1><p>CloudFront wasn't able to connect to the origin.</p></body></html>"
)
MEDIA_TYPES = {
    ".TIF": "image/tiff",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".json": "application/json",
    ".tar": "application/x-tar",
}
CHUNK = 1 << 20
NUMERIC_FIELDS = {"cloudCover", "totalHits", "recordsReturned", "startingNumber", "filesize", "queueSize"}
OPTIONAL_FIELDS = {"publishDate", "thumbnailPath", "eulaCode", "checksum", "modifiedDate", "temporalCoverage"}


def vary_data(data: object, variation: Variation) -> object:
    """The API's answer as a service that differs where the documentation is silent might send it."""
    if isinstance(data, list):
        return [vary_data(v, variation) for v in data]
    if not isinstance(data, dict):
        return data
    varied: dict[str, object] = {}
    for key, value in data.items():
        if key in OPTIONAL_FIELDS and variation.optional_fields != "present":
            if variation.optional_fields == "null":
                varied[key] = None
            continue
        if key in ("newRecords", "duplicateProducts") and value == [] and variation.empty_object == "dict":
            value = {}
        if variation.numbers_as_strings and key in NUMERIC_FIELDS and isinstance(value, (int, float)):
            value = f" {value}" if key == "cloudCover" else str(value)
        varied[key] = vary_data(value, variation)
    if variation.extra_fields and ("entityId" in data or "downloadId" in data):
        varied["systemNote"] = {"addedIn": "a later release", "values": [1, "two", None]}
    return varied


class _Counter:
    def __init__(self) -> None:
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    def hit(self, every: int) -> bool:
        if not every:
            return False
        with self._lock:
            return next(self._count) % every == 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm on, the body then waits
    # for the client's delayed ACK, 40 ms a response on keep-alive connections (production servers
    # set TCP_NODELAY too)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator: " + format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        skew = self.server.service.faults.clock_skew
        return super().date_time_string((timestamp or time.time()) + skew)

    # -- routing ---------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._route()

    def do_GET(self) -> None:  # noqa: N802
        self._route()

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def _route(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith(API_PREFIX):
            self._api(url.path[len(API_PREFIX) :], body)
            return
        if "X-Auth-Token" in self.headers:
            self.server.service.stats["auth_header_to_files"] += 1
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        variation = self.server.service.variation
        files = url.path == "/gen-bundle" or url.path.startswith("/data/collection02/")
        if files and variation.redirect_files and "hop" not in query:
            self.send_response(302)
            self._header("Location", self.path + "&hop=1")
            self._header("Content-Length", "0")
            self.end_headers()
            return
        if url.path == "/gen-bundle":
            self._signed_file(query, str(query.get("landsat_product_id", "")), None, head)
        elif url.path.startswith("/data/collection02/"):
            name = url.path.rsplit("/", 1)[-1]
            match = re.match(r"^(L\w{3}_L\w{3}_\d{6}_\d{8}_\d{8}_\d{2}_\w{2})_(.+)$", name)
            if not match:
                self._plain(404, b"Not Found")
                return
            self._signed_file(query, match[1], match[2], head)
        elif url.path == "/gen-browse":
            self._browse(query, head)
        elif url.path.startswith("/download-staging/"):
            self._plain(404, b"The requested download is still being prepared")
        else:
            self._plain(404, b"Not Found")

    # -- API -------------------------------------------------------------------------------

    def _api(self, rest: str, body: bytes) -> None:
        server = self.server
        faults = server.service.faults
        if server.api_5xx.hit(faults.api_5xx_every):
            self._plain(503, HTML_ERROR, "text/html")
            return
        if server.api_html.hit(faults.api_html_every):
            self._plain(200, HTML_ERROR, "text/html")
            return
        version, _, endpoint = rest.partition("/")
        cookie = self.headers.get("Cookie") or ""
        prefix = "EROS_SSO_production_secure="
        sso = next((c[len(prefix) :] for c in cookie.split("; ") if c.startswith(prefix)), None)
        status, envelope = server.service.handle(
            version, endpoint.strip("/"), body, self.headers.get("X-Auth-Token"), sso
        )
        variation = server.service.variation
        if variation != Variation() and envelope.get("data") is not None:
            envelope = {**envelope, "data": vary_data(envelope["data"], variation)}
        payload = json.dumps(envelope).encode()
        if variation.gzip:
            self._plain(status, gzip.compress(payload), "application/json", encoding="gzip")
            return
        self._plain(status, payload, "application/json")

    # -- files -----------------------------------------------------------------------------

    def _signed_file(self, query: dict[str, str], product_id: str, suffix: str | None, head: bool) -> None:
        service = self.server.service
        try:
            display = product_id + (f"_{suffix}" if suffix else "")
            item = service.check_signature(query.get("requestSignature", ""), display)
        except PermissionError as exc:
            self._plain(403, f"Forbidden: {exc}".encode())
            return
        pfile = service.store.files(item.scene, item.level)[item.suffix or "tar"]
        self._send_file(pfile.path, pfile.name, pfile.size, head)

    def _browse(self, query: dict[str, str], head: bool) -> None:
        found = self.server.service.by_display.get(query.get("product_id", ""))
        if found is None:
            self._plain(404, b"Not Found")
            return
        if self.server.service.faults.browse_broken:
            self._plain(200, HTML_ERROR, "text/html")
            return
        image_format = self.server.service.variation.browse_format
        path = self.server.service.store.browse(found[0], image_format)
        media_type = f"image/{image_format}"
        self._send_file(path, path.name, path.stat().st_size, head, media_type=media_type, inline=True)

    def _send_file(
        self,
        path: Path,
        name: str,
        size: int,
        head: bool,
        media_type: str | None = None,
        inline: bool = False,
    ) -> None:
        server = self.server
        faults = server.service.faults
        if not head and server.file_429.hit(faults.file_429_every):
            self._plain(429, b"Too Many Requests")
            return
        if not head and server.file_5xx.hit(faults.file_5xx_every):
            self._plain(502, HTML_ERROR, "text/html")
            return
        if not head and server.file_html.hit(faults.file_html_every):
            self._plain(200, HTML_ERROR, "text/html")
            return
        start, end = 0, size - 1
        partial = False
        wanted = self.headers.get("Range")
        if wanted and not faults.no_range:
            match = re.match(r"^bytes=(\d*)-(\d*)$", wanted.strip())
            if not match or (not match[1] and not match[2]):
                self._plain(416, b"Range Not Satisfiable")
                return
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start = max(0, size - int(match[2]))
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
            if start > 0:
                server.service.stats["range_requests"] += 1
        length = end - start + 1
        variation = server.service.variation
        if variation.slow_first_byte and not head:
            time.sleep(variation.slow_first_byte)
        self.send_response(206 if partial else 200)
        suffix = Path(name).suffix
        self._header("Content-Type", media_type or MEDIA_TYPES.get(suffix, "application/octet-stream"))
        disposition = "inline" if inline else "attachment"
        self._header("Content-Disposition", f'{disposition}; filename="{name}"')
        if variation.no_content_length:
            self.close_connection = True  # the body ends where the connection does
            self._header("Connection", "close")
        else:
            self._header("Content-Length", str(length))
        if partial:
            self._header("Accept-Ranges", "bytes")
            self._header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        cut_at = length // 2 if server.file_cut.hit(faults.file_cut_every) else None
        self._stream(path, start, length, cut_at, faults.throttle_bps)

    def _stream(self, path: Path, start: int, length: int, cut_at: int | None, bps: int) -> None:
        sent = 0
        began = time.monotonic()
        with path.open("rb") as handle:
            handle.seek(start)
            if cut_at is None and not bps:
                self.connection.sendfile(handle, start, length)
                self.server.service.count_bytes(length)
                return
            while sent < length:
                chunk = handle.read(min(CHUNK if not bps else max(1024, bps // 20), length - sent))
                if cut_at is not None and sent + len(chunk) > cut_at:
                    self.wfile.write(chunk[: cut_at - sent])
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                self.server.service.count_bytes(len(chunk))
                if bps:
                    ahead = sent / bps - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)

    def _header(self, name: str, value: str) -> None:
        case = self.server.service.variation.header_case
        self.send_header(
            name.lower() if case == "lower" else name.upper() if case == "upper" else name, value
        )

    def _plain(
        self, status: int, body: bytes, media_type: str = "text/plain", encoding: str | None = None
    ) -> None:
        self.send_response(status)
        self._header("Content-Type", media_type)
        if encoding:
            self._header("Content-Encoding", encoding)
        self._header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], service: Service):
        super().__init__(address, _Handler)
        self.service = service
        self.api_5xx, self.api_html = _Counter(), _Counter()
        self.file_cut, self.file_5xx, self.file_html, self.file_429 = (_Counter() for _ in range(4))


class Emulator:
    """A running emulator; use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        scenes: int = 36,
        seed: int = 0,
        full_size: bool = False,
        faults: Faults | None = None,
        variation: Variation | None = None,
        users: dict[str, tuple[str, bool]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        today: dt.date | None = None,
        reprocess_share: float = 0.0,
    ):
        size = SceneSize.full() if full_size else SceneSize.small()
        self._archive = functools.partial(
            build_archive, scenes=scenes, seed=seed, size=size, reprocess_share=reprocess_share
        )
        self.today = today
        archive = self._archive(today=today)
        folder = Path(data_dir) / f"seed{seed}-{'full' if full_size else 'small'}"
        store = ProductStore(folder, blocksize=512 if full_size else 256)
        self.service = Service(archive, store, users=users, faults=faults, variation=variation)
        self._server = _Server((host, port), self.service)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self.service.base_url = self.base_url
        self._thread: threading.Thread | None = None

    @property
    def service_url(self) -> str:
        return f"{self.base_url}/api/api/json/stable/"

    def set_today(self, today: dt.date) -> None:
        """Show the archive as of ``today`` from now on: later publications, Real-Time products
        replaced by Tier 1/2, reprocessed products (the same acquisitions, by entity id)."""
        self.today = today
        self.service.set_scenes(self._archive(today=today))

    @property
    def faults(self) -> Faults:
        return self.service.faults

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="m2m-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        # shutdown() waits for serve_forever to notice; it would wait forever for a loop that is
        # not running (never started, or already ended)
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
