"""``stacmirror serve``: STAC Browser, the catalog and its assets from one origin.

* ``/`` — STAC Browser's built files, ``/config.js`` — its runtime configuration (with an
  OpenStreetMap basemap, or none when ``offline``: then the page asks nothing of the internet);
* ``/catalog/…`` — the mirror (catalog JSON and the assets it points at); the root catalog is
  handed out with the API's conformance classes and ``search`` links, so STAC Browser offers search;
* ``/api/…`` — a STAC API over the mirror (:mod:`.api`), with item search.

Item files are handed out as ``application/geo+json`` with a ``self`` link added (the files have
none, so that they stay valid wherever the mirror is copied).

Every response carries CORS headers; files answer HTTP ``Range`` requests (COG previews need
them) with the right media type. A request never reaches a file outside its root: the path is
decoded, normalised and resolved (following symlinks) and must stay inside the root, and hidden
files (``.stacmirror/``, partial downloads) are not served.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import NotACatalog, StacmirrorError
from ..layout import Mirror
from ..storage import StoreMirror, is_store_url
from .api import StacApi
from .browser import config_js

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff; application=geotiff",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ico": "image/x-icon",
    ".map": "application/json",
    ".ttf": "font/ttf",
    ".eot": "application/vnd.ms-fontobject",
}
CHUNK = 1 << 16
REFRESH_SECONDS = 30.0  # how stale a store mirror's search copy may get while serve runs
MAX_BODY = 1 << 20  # a search body is a few kB


def _url_parts(url_path: str) -> list[str] | None:
    """The path segments ``url_path`` names, decoded and normalised (no way up), or None when it
    holds a NUL, a backslash or a hidden segment."""
    decoded = unquote(url_path)
    if "\x00" in decoded or "\\" in decoded:
        return None
    parts = [p for p in posixpath.normpath("/" + decoded.lstrip("/")).split("/") if p]
    if any(p.startswith(".") for p in parts):
        return None
    return parts


def safe_key(url_path: str) -> str | None:
    """The object key ``url_path`` names in a store mirror, by the same rules, or None."""
    parts = _url_parts(url_path)
    return "/".join(parts) if parts else None


def safe_path(root: Path, url_path: str) -> Path | None:
    """The file under ``root`` that ``url_path`` names, or None when it would leave ``root``."""
    parts = _url_parts(url_path)
    if parts is None:
        return None
    root = root.resolve()
    candidate = root.joinpath(*parts).resolve()
    try:
        candidate.relative_to(root)
    except ValueError:
        return None  # a symlink (or anything else) pointing out of the root
    return candidate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm on, the body then waits
    # for the client's delayed ACK, 40 ms a response on keep-alive connections (production servers
    # set TCP_NODELAY too)
    disable_nagle_algorithm = True
    server: ServeServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.info("serve: " + format, *args)

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range, Content-Type, Accept")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib naming
        self._drain()
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        length = self._content_length()
        if length < 0 or length > MAX_BODY:
            self._json({"code": "BadRequest", "description": "a body of 0 to 1 MB"}, False, status=400)
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        if path == "/api" or path.startswith("/api/"):
            self._api(path, body, "POST", head=False)
        else:
            self._refuse()

    def _content_length(self) -> int:
        """The request's Content-Length: 0 when there is none, -1 when it is not a number."""
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return -1

    def _drain(self) -> None:
        """Read a body no one asked for (a GET or PUT may carry one): left unread, it would be
        taken for the next request on the connection."""
        length = self._content_length()
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _refuse(self) -> None:
        """405 for a method this server does not answer (PUT, DELETE, PATCH, a POST off the API)."""
        self._drain()
        document = {"code": "MethodNotAllowed", "description": f"{self.command} is not answered here"}
        self._json(document, False, status=405)

    def __getattr__(self, name: str):
        # any other method (PUT, DELETE, QUERY, ...): 405, where the standard library says 501
        if name.startswith("do_"):
            return self._refuse
        raise AttributeError(name)

    def _json(
        self,
        document: object,
        head: bool,
        status: int = 200,
        media_type: str = "application/json",
    ) -> None:
        self._bytes(json.dumps(document).encode(), media_type, head, status=status)

    def _api(self, path: str, body: bytes, method: str, head: bool) -> None:
        query = urlsplit(self.path).query
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            with self.server.searching():
                status, media_type, document = self.server.api.handle(method, path, params, body, query)
        except Exception:  # a defect: logged with its traceback, answered without one
            log.exception("serve: %s %s failed", method, path)
            status, media_type = 500, "application/json"
            document = {"code": "InternalServerError", "description": "the server failed; see its log"}
        if isinstance(document, str):
            self._bytes(document.encode(), media_type, head, status=status)
        else:
            self._json(document, head, status=status, media_type=media_type)

    def _get(self, head: bool) -> None:
        self._drain()
        path = urlsplit(self.path).path
        if path == "/api" or path.startswith("/api/"):
            self._api(path, b"", "GET", head)
            return
        if path == "/config.js":
            self._bytes(
                config_js(self.server.out, self.server.base_url, offline=self.server.offline).encode(),
                "application/javascript",
                head,
            )
            return
        if (path == "/catalog" or path.startswith("/catalog/")) and self.server.store is not None:
            self._object(path[len("/catalog") :], head)
            return
        if path == "/catalog" or path.startswith("/catalog/"):
            root, rest = self.server.out, path[len("/catalog") :]
        elif self.server.browser is not None:
            root, rest = self.server.browser, path
        else:
            self._bytes(NO_BROWSER.encode(), "text/html; charset=utf-8", head, status=503)
            return
        target = safe_path(root, rest)
        if target is not None and target.is_dir():
            target = target / "index.html"
        if target == self.server.root_catalog and target.is_file():
            document = self.server.api.searchable_root()
            self._bytes(json.dumps(document).encode(), "application/json", head)
            return
        if target is None or not target.is_file():
            self._bytes(b"Not Found", "text/plain", head, status=404)
            return
        if target.suffix == ".json" and target.stem == target.parent.name and root == self.server.out:
            # <folder>/<folder>.json: an item, as the layout names it
            item = self._item(target.read_bytes(), target.relative_to(self.server.out).as_posix())
            if item is not None:
                self._json(item, head, media_type="application/geo+json")
                return
        self._file(target, head)

    def _object(self, rest: str, head: bool) -> None:
        """``/catalog/<key>`` of a store mirror: proxied from the store, with Range."""
        import obstore

        store = self.server.store
        key = safe_key(rest or "/")
        if key == "catalog.json":
            self._json(self.server.api.searchable_root(), head)
            return
        parts = (key or "").split("/")
        try:
            if key is None:
                raise FileNotFoundError
            if key.endswith(".json") and len(parts) > 1 and parts[-1] == parts[-2] + ".json":
                data = store.get_bytes(key)
                if data is None:
                    raise FileNotFoundError
                item = self._item(data, key)
                if item is not None:
                    self._json(item, head, media_type="application/geo+json")
                else:
                    self._bytes(data, "application/json", head)
                return
            size = obstore.head(store.store, key)["size"]
            span = self._span(size, Path(key).suffix)
            if span is None or head:
                return
            start, end = span
            for chunk in obstore.get(store.store, key, options={"range": (start, end + 1)}).stream():
                self.wfile.write(chunk)
        except FileNotFoundError:
            self._bytes(b"Not Found", "text/plain", head, status=404)

    def _item(self, data: bytes, rel: str) -> dict | None:
        """An item file with a ``self`` link to where it is served (the file has none: it has to
        stay valid wherever the mirror is copied), or None if the file is not an item."""
        try:
            item = json.loads(data)
        except ValueError:
            return None
        if not isinstance(item, dict) or item.get("type") != "Feature":
            return None
        href = f"{self.server.base_url}/catalog/{rel}"
        links = [link for link in item.get("links", []) if link.get("rel") != "self"]
        item["links"] = [{"rel": "self", "href": href, "type": "application/geo+json"}, *links]
        return item

    def _bytes(self, body: bytes, media_type: str, head: bool, status: int = 200) -> None:
        self.send_response(status)
        if status == 405:  # a 405 says what is allowed
            self.send_header("Allow", "GET, HEAD, POST, OPTIONS")
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _span(self, size: int, suffix: str) -> tuple[int, int] | None:
        """Send the status and headers for ``Range`` (or the whole file); the byte span to send, or
        None when 416 was answered."""
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if match and (match[1] or match[2]):
                if match[1]:
                    start = int(match[1])
                    end = min(int(match[2]), size - 1) if match[2] else size - 1
                else:
                    start = max(0, size - int(match[2]))
                if start > end or start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = 206
        self.send_response(status)
        self.send_header("Content-Type", MEDIA_TYPES.get(suffix.lower(), "application/octet-stream"))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        return start, end

    def _file(self, target: Path, head: bool) -> None:
        span = self._span(target.stat().st_size, target.suffix)
        if span is None or head:
            return
        start, end = span
        with target.open("rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)


NO_BROWSER = (
    "<!DOCTYPE html><html><body><h1>stacmirror</h1><p>STAC Browser is not available (see the "
    "message of <code>stacmirror serve</code>). The catalog is at <a href='/catalog/catalog.json'>"
    "/catalog/catalog.json</a>.</p></body></html>"
)


class _ReadCopy:
    """A store mirror's local copy that the API searches, brought up to date (by e-tag: a few
    listings) at most every ``every`` seconds, so that a catalog rebuilt while serve runs is
    searched without a restart. Requests share the copy; a refresh waits for those running and
    holds new ones back, since it may delete a partition a running search is about to open."""

    def __init__(self, store: StoreMirror, every: float):
        self.store, self.every = store, every
        self.checked = time.monotonic()
        self._changed = threading.Condition()
        self._readers = 0
        self._refreshing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        self._refresh_if_due()
        with self._changed:
            while self._refreshing:
                self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    def _refresh_if_due(self) -> None:
        from ..catalog.published import read_copy

        with self._changed:
            if self._refreshing or time.monotonic() - self.checked < self.every:
                return
            self._refreshing = True
            while self._readers:
                self._changed.wait()
        try:
            read_copy(self.store)
        except (StacmirrorError, OSError) as exc:  # the copy made before keeps being served
            log.warning("serve: could not bring the search copy up to date: %s", exc)
        finally:
            with self._changed:
                self.checked = time.monotonic()
                self._refreshing = False
                self._changed.notify_all()


class ServeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        out: Path | str,
        browser: Path | None,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        offline: bool = False,
        refresh: float = REFRESH_SECONDS,
    ):
        self.store = None
        self.copy: _ReadCopy | None = None
        read = None
        if is_store_url(out):  # the API searches a copy of its items.parquet; the rest is proxied
            from ..catalog.published import read_copy

            self.store = StoreMirror.open(str(out))
            out = read_copy(self.store)
            if not (out / "catalog.json").exists():
                raise NotACatalog(
                    f"{self.store.url} has no catalog.json (run: stacmirror catalog {self.store.url})"
                )
            read = self._read_object
            self.copy = _ReadCopy(self.store, refresh)
        super().__init__((host, port), _Handler)
        self.offline = offline
        self.out = Path(out).resolve()
        self.browser = Path(browser).resolve() if browser else None
        bound_host, bound_port = self.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        self.api = StacApi(self.out, self.base_url, read=read)
        self.root_catalog = Mirror(self.out).catalog_path.resolve()

    @contextmanager
    def searching(self) -> Iterator[None]:
        """Around an API request: a store mirror's search copy, brought up to date when due."""
        if self.copy is None:
            yield
            return
        with self.copy.reading():
            yield

    def _read_object(self, path: Path) -> bytes:
        """An item of a store mirror, by its path in the local copy the API searches."""
        assert self.store is not None
        data = self.store.get_bytes(Path(path).relative_to(self.out).as_posix())
        if data is None:
            raise FileNotFoundError(path)
        return data
