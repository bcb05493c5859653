"""A transcript of a run's conversation with M2M, for turning a failing real run into a test case.

``--record DIR`` appends one JSON object per line to ``DIR/transcript.jsonl``: each API call
(endpoint, request, response, HTTP status, milliseconds) and, for each download, the URL's host
and path with its status and headers, never its body. The application token, API keys, session
cookies and URL signatures are replaced by ``"<redacted>"`` before anything is written.
:mod:`stacmirror.emulator.replay` answers API calls from such a transcript.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
SECRET_KEYS = {"token", "password", "apikey", "x-auth-token", "cookie", "set-cookie", "authorization"}
SIGNED = re.compile(r"/(download|download-staging)/[A-Za-z0-9_\-=%.]+")


def redact_url(url: str) -> str:
    """A download URL without its signature: query signatures and DDS path tokens go."""
    parts = urlsplit(url)
    query = [
        (k, REDACTED if "signature" in k.lower() or k.lower() in SECRET_KEYS else v)
        for k, v in parse_qsl(parts.query)
    ]
    path = SIGNED.sub(lambda m: f"/{m.group(1)}/{REDACTED}", parts.path)
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, safe="<>"), ""))


def redact(value: Any, *, key: str = "") -> Any:
    """``value`` with every secret replaced, recursively."""
    if key.lower() in SECRET_KEYS:
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return redact_url(value)
    return value


class Transcript:
    """Appends redacted records to ``<dir>/transcript.jsonl``; safe to share between threads."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "transcript.jsonl"
        self._lock = threading.Lock()

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def api(self, endpoint: str, request: Any, status: int, response: Any, started: float) -> None:
        if endpoint in ("login-token", "login-sso") and isinstance(response, dict):
            response = {**response, "data": REDACTED if response.get("data") else response.get("data")}
        self._write(
            {
                "kind": "api",
                "endpoint": endpoint,
                "request": redact(request),
                "status": status,
                "response": redact(response),
                "ms": round((time.monotonic() - started) * 1000, 1),
                "at": time.time(),
            }
        )

    def download(self, url: str, status: int, headers: dict[str, str], started: float) -> None:
        self._write(
            {
                "kind": "download",
                "url": redact_url(url),
                "status": status,
                "headers": redact({k: v for k, v in headers.items()}),
                "ms": round((time.monotonic() - started) * 1000, 1),
                "at": time.time(),
            }
        )


def read_transcript(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / "transcript.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
