"""Moving bytes from a download host to disk: the only place stacmirror downloads a file.

Each file streams into a hidden ``.<name>.part`` beside its target, resumes
with ``Range`` after a dropped connection or a killed run, is checked against
``Content-Length``, sha256 and its magic bytes (an HTML error page is not a
GeoTIFF), and only then is renamed into place. The rename is what makes a file appear whole, even
to a run killed with -9; an ``fsync`` before it (``TransferPolicy.fsync``) only adds survival of a
power cut, at the price of waiting for the disk, so it is asked for, not the default. Memory use is one chunk,
whatever the file size. Download hosts never see the M2M API key: this module
has its own HTTP session.

Failures come in two classes. Transient ones (connection errors, dropped
bodies, HTTP 5xx and 429) get bounded exponential back-off with jitter.
Deterministic ones (a body of the wrong kind, a checksum that does not match,
HTTP 404/410) get one immediate retry and then, when the same failure comes back, fail the file
with the reason:
waiting would not change the answer. The time one file may spend retrying is
bounded too. M2M's advertised ``filesize`` is a hint (a host may build a bundle
on request with other bytes): a difference from it is a note, not a failure,
when ``Content-Length`` or the sha256 vouch for the bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential, wait_random

from ..layout import partial_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # disk reads
READ_SIZE = 1 << 20  # at most this much per socket read; each read returns what has arrived
NETWORK_CHUNK = 1 << 16  # without read1 (urllib3 < 2.3): a cut loses the chunk being filled
PROGRESS_STEP = 1 << 20  # bytes between progress events
HEAD = 512  # bytes the file-type check looks at
USER_AGENT = "stacmirror-download"


class TransferError(Exception):
    """A transfer failed; the message says why."""


class TransientError(TransferError):
    """A failure that another attempt, after a pause, may fix (connection, 5xx, 429, dropped body)."""


class ExpiredURLError(TransferError):
    """The signed URL was refused (HTTP 403); a fresh one is needed."""


class IntegrityError(TransferError):
    """Deterministic: the bytes are not the advertised file (checksum or type), or the host has none
    (404/410). One immediate retry, then the file fails."""


@dataclass(frozen=True)
class FileJob:
    target: Path  # its name decides the file-type check; a local download is renamed to it
    size: int | None  # advertised by download-options (None: unknown)
    sha256: str | None
    sink: Any = None  # where the bytes go (None: a PartFile beside ``target``; else e.g. a StoreUpload)


@dataclass(frozen=True)
class FileResult:
    size: int
    sha256: str
    resumed_from: int
    attempts: int
    note: str | None = None  # e.g. the size differs from what M2M advertised


@dataclass(frozen=True)
class TransferPolicy:
    attempts: int = 6  # transient failures
    initial_wait: float = 1.0
    max_wait: float = 30.0
    url_refreshes: int = 3
    deterministic_retries: int = 1  # immediate, for a wrong body, a bad checksum or a 404
    max_seconds: float = 900.0  # no more retries for one file after this long
    timeout: tuple[float, float] = (15.0, 120.0)
    fsync: bool = False  # flush each file to disk before its rename (power-cut safe; waits for the disk)


def download_session(workers: int) -> requests.Session:
    """A session for download hosts only: never carries the API key."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, workers))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


_MAGIC: dict[str, Callable[[bytes], bool]] = {
    ".tif": lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tar": lambda h: len(h) >= 262 and h[257:262] == b"ustar",
    ".txt": lambda h: h.lstrip()[:5] == b"GROUP",
    ".xml": lambda h: h.lstrip()[:1] == b"<" and b"<html" not in h[:512].lower(),
    ".json": lambda h: h.lstrip()[:1] in (b"{", b"["),
    ".jpg": lambda h: h[:3] == b"\xff\xd8\xff",
    ".jpeg": lambda h: h[:3] == b"\xff\xd8\xff",
    ".png": lambda h: h[:8] == b"\x89PNG\r\n\x1a\n",
    ".webp": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP",
    ".gif": lambda h: h[:6] in (b"GIF87a", b"GIF89a"),
}
IMAGE_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif"}


def image_extension(head: bytes) -> str | None:
    """The extension of an image by its bytes (browse images come as JPEG, PNG, WebP, ...)."""
    return next((ext for ext in IMAGE_TYPES if _MAGIC[ext](head)), None)


def looks_like(name: str, head: bytes) -> bool:
    """Whether the first bytes fit the file type the name promises (unknown types pass)."""
    check = _MAGIC.get(Path(name).suffix.lower())
    return True if check is None else check(head)


def fetch(
    session: requests.Session,
    job: FileJob,
    url: Callable[[], str],
    *,
    refresh_url: Callable[[], str] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    policy: TransferPolicy | None = None,
    transcript: Any = None,
) -> FileResult:
    """Download ``job`` from ``url()``, retrying and resuming; raises TransferError when it gives up."""
    policy = policy or TransferPolicy()
    if job.sink is None:
        job = replace(job, sink=PartFile(job.target))
    current: dict[str, Any] = {"url": url(), "refreshes": 0, "deterministic": 0, "last": None}
    resumed_from = job.sink.offset()

    def attempt() -> FileResult:
        try:
            size, digest, note = _transfer(session, job, current["url"], on_bytes, policy, transcript)
        except ExpiredURLError:
            if refresh_url is None or current["refreshes"] >= policy.url_refreshes:
                raise
            current["refreshes"] += 1
            log.info("%s: signed URL expired, asking M2M for a fresh one", job.target.name)
            current["url"] = refresh_url()
            raise
        except IntegrityError as exc:
            # counted while the same failure repeats back to back; anything else in between (a 5xx,
            # a cut) means the host is flaky rather than wrong, and the count starts again
            same = current.get("last") == str(exc)
            current["deterministic"] = current["deterministic"] + 1 if same else 1
            current["last"] = str(exc)
            raise
        except TransferError:
            current["deterministic"], current["last"] = 0, None
            raise
        return FileResult(size, digest, resumed_from, 0, note)

    def retry(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, IntegrityError):
            return current["deterministic"] <= policy.deterministic_retries
        return isinstance(exc, (TransientError, ExpiredURLError))

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, (ExpiredURLError, IntegrityError)):
            return 0.0  # a fresh URL, or the one immediate retry: waiting would not change the answer
        return (
            wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait)
            + wait_random(0, policy.initial_wait)
        )(state)

    retrying = Retrying(
        retry=retry,
        stop=stop_after_attempt(policy.attempts + policy.url_refreshes + 2 * policy.deterministic_retries + 2)
        | stop_after_delay(policy.max_seconds),
        wait=wait,
        reraise=True,
        before_sleep=lambda s: log.info("%s: %s; retrying", job.target.name, s.outcome.exception()),
    )
    result = retrying(attempt)
    attempts = retrying.statistics.get("attempt_number", 1)
    return FileResult(result.size, result.sha256, resumed_from, attempts, result.note)


class PartFile:
    """A download's local sink: the hidden ``.<name>.part`` beside the target, kept across attempts
    and runs (a resumed download appends to it), renamed onto the target once verified."""

    def __init__(self, target: Path):
        self.target = target
        self.part = partial_path(target)
        self._handle: Any = None

    def offset(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def prefix_digest(self, length: int) -> hashlib._Hash:
        digest = hashlib.sha256()
        with self.part.open("rb") as handle:
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                digest.update(chunk)
                remaining -= len(chunk)
        return digest

    def begin(self, offset: int, digest: hashlib._Hash) -> None:
        """Open for writing from ``offset``. ``digest`` is the transfer's running sha256 (a part file
        on disk hashes its prefix again when asked, so it keeps no reference)."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.part.open("r+b" if offset else "wb")
        self._handle.seek(offset)
        self._handle.truncate()

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)

    def end(self, sync: bool) -> None:
        if self._handle is None:
            return
        try:
            if sync:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
            self._handle = None

    def head(self) -> bytes:
        with self.part.open("rb") as handle:
            return handle.read(HEAD)

    def discard(self) -> None:
        self.end(False)
        self.part.unlink(missing_ok=True)

    def commit(self) -> None:
        os.replace(self.part, self.target)


def _transfer(
    session: requests.Session,
    job: FileJob,
    url: str,
    on_bytes: Callable[[int], None] | None,
    policy: TransferPolicy,
    transcript: Any = None,
) -> tuple[int, str, str | None]:
    sink = job.sink
    offset = sink.offset()
    if job.size is not None and offset > job.size:
        offset = 0  # longer than the real file: not ours to trust
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    started = time.monotonic()
    try:
        response = session.get(url, headers=headers, stream=True, timeout=policy.timeout)
    except requests.RequestException as exc:
        raise TransientError(f"connection failed ({type(exc).__name__})") from None
    if transcript is not None:  # --record: status and headers, never the body
        transcript.download(url, response.status_code, dict(response.headers), started)
    with response:
        status = response.status_code
        if status == 403:
            raise ExpiredURLError("HTTP 403 from the download host (signed URL expired or invalid)")
        if status == 416 and offset and offset == job.size:
            return _finish(job, offset, sink.prefix_digest(offset))
        if status == 416:
            sink.discard()
            raise TransientError("HTTP 416 for a partial file; starting over")
        if status == 429 or status >= 500:
            raise TransientError(f"HTTP {status} from the download host")
        if status in (404, 410):
            raise IntegrityError(f"HTTP {status}: the download host has no such file")
        if status not in (200, 206):
            raise TransientError(f"unexpected HTTP {status} from the download host")
        if "text/html" in response.headers.get("Content-Type", ""):
            raise IntegrityError("the download host sent an HTML page instead of the file")
        if status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != offset:
                sink.discard()
                raise TransientError("the host answered a different range; starting over")
        else:
            offset = 0  # the host ignored Range: take the whole file from the start
        length = response.headers.get("Content-Length")
        expected_total = offset + int(length) if length is not None and length.isdigit() else None
        digest = sink.prefix_digest(offset) if offset else hashlib.sha256()
        written = offset
        head = None if offset else b""  # the first bytes, held until the file type can be checked
        unreported = 0
        complete = False
        try:
            sink.begin(offset, digest)  # the one sha256 of these bytes, updated below
            for chunk in _body(response):
                if head is not None:
                    head += chunk
                    if len(head) < HEAD:
                        continue
                    _check_type(job.target, head)
                    chunk, head = head, None
                sink.write(chunk)
                digest.update(chunk)  # hashlib releases the GIL on large buffers
                written += len(chunk)
                unreported += len(chunk)
                if on_bytes and unreported >= PROGRESS_STEP:
                    on_bytes(unreported)
                    unreported = 0
            if head:  # a file shorter than HEAD bytes
                _check_type(job.target, head)
                sink.write(head)
                digest.update(head)
                written += len(head)
                unreported += len(head)
            complete = True
        except _Dropped as exc:
            raise TransientError(f"connection dropped after {written} bytes ({exc})") from None
        except IntegrityError:
            sink.discard()
            raise
        finally:
            sink.end(complete and policy.fsync)
            if on_bytes and unreported:
                on_bytes(unreported)
        if expected_total is not None and written != expected_total:
            raise TransientError(f"connection dropped after {written} of {expected_total} bytes")
        return _finish(job, written, digest, vouched=expected_total is not None)


_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class _Dropped(Exception):
    """The body stopped arriving (a cut connection, a read timeout); the message names the error."""


def _body(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. Each read returns what the socket holds, up to READ_SIZE: a fast link
    is read in large pieces (few Python steps per MB), and a cut loses nothing already received."""
    read1 = getattr(response.raw, "read1", None)
    try:
        if read1 is None:
            yield from response.iter_content(NETWORK_CHUNK)
            return
        while chunk := read1(READ_SIZE, decode_content=True):
            yield chunk
    except _READ_ERRORS as exc:
        raise _Dropped(type(exc).__name__) from None


def _check_type(target: Path, head: bytes) -> None:
    if not looks_like(target.name, head[:HEAD]):
        raise IntegrityError(
            f"the body does not look like a {target.suffix or 'file'} (an error page saved as data?)"
        )


def _finish(
    job: FileJob, size: int, digest: hashlib._Hash, vouched: bool = True
) -> tuple[int, str, str | None]:
    """Verify, then commit (rename into place, or complete the upload). ``vouched``:
    Content-Length confirmed every byte arrived."""
    sink = job.sink
    hexdigest = digest.hexdigest()
    if job.sha256 and hexdigest != job.sha256.lower():
        sink.discard()
        raise IntegrityError(f"sha256 {hexdigest[:12]}... differs from the advertised checksum")
    note = None
    if job.size is not None and size != job.size:
        if not vouched and not job.sha256 and size < job.size:
            # no length, no checksum and fewer bytes than advertised: most likely a cut body
            raise TransientError(f"only {size} of the {job.size} advertised bytes arrived")
        note = f"{size} bytes, M2M advertised {job.size}"
    if not looks_like(job.target.name, sink.head()):
        sink.discard()
        raise IntegrityError(f"the file does not look like a {job.target.suffix}")
    sink.commit()
    return size, hexdigest, note
