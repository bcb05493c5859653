"""Answering M2M API calls from a transcript written with ``--record`` (``stacmirror emulator --replay``).

A call is matched by its endpoint and its request body, ignoring what differs between runs: API
keys and tokens, labels (this run's ``stacmirror-…`` names, and scene-list ids made from them)
and timestamps. Repeated identical calls (``download-retrieve`` polling) get the recorded answers
in order, the last one again once they run out. A call the transcript does not hold gets an
``errorCode`` saying so, with HTTP 404, so a replayed run stops at the first divergence.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..m2m.transcript import REDACTED, read_transcript

IGNORED_KEYS = {"label", "token", "apiKey", "username", "listId", "excludeListName", "downloadApplication"}
LABEL = re.compile(r"stacmirror-\d{14}-[0-9a-f]{6}(-\d+)?")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


def normalise(value: Any) -> Any:
    """A request body with everything that differs between runs blanked."""
    if isinstance(value, dict):
        return {k: "*" if k in IGNORED_KEYS else normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return TIMESTAMP.sub("<time>", LABEL.sub("<label>", value))
    return value


def call_key(endpoint: str, request: Any) -> str:
    return endpoint + " " + json.dumps(normalise(request or {}), sort_keys=True)


class Replay:
    """The recorded answers, by call."""

    def __init__(self, folder: Path):
        self.answers: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        self.served: dict[str, int] = defaultdict(int)
        self.missing: list[str] = []
        self._lock = threading.Lock()
        for record in read_transcript(Path(folder)):
            if record.get("kind") == "api":
                key = call_key(record["endpoint"], record.get("request"))
                self.answers[key].append((int(record.get("status") or 200), record.get("response")))

    def answer(self, endpoint: str, request: Any) -> tuple[int, dict[str, Any]]:
        if endpoint in ("login-token", "login-sso"):
            key = "replay-key-" + endpoint
            return 200, _envelope(key if endpoint == "login-token" else {"apiKey": key, "username": "replay"})
        if endpoint == "logout":
            return 200, _envelope(None)
        key = call_key(endpoint, request)
        with self._lock:
            recorded = self.answers.get(key)
            if not recorded:
                self.missing.append(key)
                return 404, _envelope(
                    None, "REPLAY_MISSING", f"the transcript holds no {endpoint} call like this"
                )
            index = min(self.served[key], len(recorded) - 1)
            self.served[key] += 1
        status, body = recorded[index]
        if not isinstance(body, dict) or body.get("data") == REDACTED:
            return status, _envelope(None, "REPLAY_UNUSABLE", f"the recorded {endpoint} answer was not JSON")
        return status, body


def _envelope(data: Any, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    return {
        "requestId": 0,
        "version": "stable",
        "sessionId": 0,
        "data": data,
        "errorCode": code,
        "errorMessage": message,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm on, the body then waits
    # for the client's delayed ACK, 40 ms a response on keep-alive connections (production servers
    # set TCP_NODELAY too)
    disable_nagle_algorithm = True
    server: ReplayServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        endpoint = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            request = json.loads(raw) if raw.strip() else {}
        except ValueError:
            request = {}
        status, body = self.server.replay.answer(endpoint, request)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST  # noqa: N815 - the service accepts GET with a body too


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0):
        self.replay = Replay(folder)
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def service_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/api/api/json/stable/"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(target=self.serve_forever, name="m2m-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.shutdown()
        self.server_close()
