"""Download sinks for a mirror in an object store: the bytes go from the download host straight into
multipart uploads, and no whole file is ever kept on the local disk or in memory.

:class:`StoreUpload` is one object: a thread runs ``obstore.put`` over an iterator fed from a small
bounded queue, so memory stays at a few parts whatever the file size. The upload completes only
when :meth:`commit` is called, which :func:`.download.fetch` does after the size, the sha256 and the
magic bytes verified; a failure aborts it, so an unverified object never appears under its key. A
``deferred`` upload completes in its own thread while the worker goes on (:meth:`StoreUpload.commit`). A
dropped connection leaves the upload open, and the next attempt resumes it with ``Range``. A run
killed with -9 leaves an incomplete multipart upload behind, which the store never shows as an
object (a bucket lifecycle rule removes such uploads after a few days; see the README).

:class:`BundleUpload` unpacks a bundle while it streams: each tar member goes into its own upload,
checked by the same member rules as on disk, and every member is completed only once the whole
bundle verified. An unsafe member refuses the bundle and aborts all of them.
"""

from __future__ import annotations

import hashlib
import queue
import tarfile
import threading
from typing import Any

from .bundle import CHUNK, Extracted, UnsafeArchiveError, check_member
from .download import HEAD, TransientError

PART_SIZE = 5 << 20  # S3's smallest part: the shortest tail to upload at the commit (files up to 52 GB)
PART_CONCURRENCY = 4  # parts in flight per object
QUEUE_CHUNKS = 4  # chunks waiting between the download and the upload thread
_DONE = object()


class _Abort(Exception):
    """Raised inside the upload's iterator: obstore then aborts the multipart upload."""


class StoreUpload:
    """One object's upload, fed chunk by chunk, completed on :meth:`commit`."""

    def __init__(self, store: Any, key: str, *, deferred: bool = False):
        self.store, self.key, self.deferred = store, key, deferred
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self.sent = 0
        self._digest = hashlib.sha256()
        self._head = b""

    # the sink interface of download._transfer -------------------------------------------------------

    def offset(self) -> int:
        """Bytes already in the open upload (0 when none is open: a killed run's upload is not ours)."""
        return self.sent if self._alive() else 0

    def prefix_digest(self, length: int) -> hashlib._Hash:
        if length != self.sent:
            raise TransientError("the upload and the download disagree on the offset; starting over")
        return self._digest.copy()

    def begin(self, offset: int, digest: hashlib._Hash) -> None:
        """Go on with the open upload at ``offset``, or start a new one. ``digest`` is the writer's
        running sha256 of these bytes, kept by reference (so they are hashed once, by the writer) for
        :meth:`prefix_digest` when a dropped connection resumes."""
        if offset == 0 or not self._alive() or offset != self.sent:
            self.discard()
            self._start()
        self._digest = digest

    def write(self, chunk: bytes) -> None:
        if len(self._head) < HEAD:
            self._head += chunk[: HEAD - len(self._head)]
        self._feed(bytes(chunk))
        self.sent += len(chunk)

    def end(self, sync: bool) -> None:
        """Nothing: the upload stays open for the next attempt or the commit."""

    def head(self) -> bytes:
        return self._head

    def discard(self) -> None:
        """Abort the upload (obstore aborts the multipart upload when its iterator raises)."""
        if self._thread is not None:
            self._feed(_Abort(), quiet=True)
            self._thread.join()
        self._thread = None
        self.sent, self._digest, self._head, self._error = 0, hashlib.sha256(), b"", None

    def commit(self) -> None:
        """Complete the upload: the object appears under its key, whole. A ``deferred`` upload is
        only told to finish here: its last part and the completion go on in its thread, and
        :meth:`settle` waits for them, so the download worker can start its next file meanwhile."""
        if self._thread is None:
            self._start()  # an empty file
        self._feed(_DONE)
        if not self.deferred:
            self.settle()

    def settle(self) -> None:
        """Wait until the completing upload is done; TransientError when the store did not take it."""
        if self._thread is not None:
            self._thread.join()
        error, self._thread = self._error, None
        if error is not None:
            self.sent = 0
            raise TransientError(f"the store did not take {self.key} ({type(error).__name__})")

    # the upload thread ---------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        self._queue = queue.Queue(QUEUE_CHUNKS)
        self._error = None
        self.sent, self._digest, self._head = 0, hashlib.sha256(), b""
        self._thread = threading.Thread(target=self._run, name="upload", daemon=True)
        self._thread.start()

    def _chunks(self):
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Abort):
                raise item
            yield item

    def _run(self) -> None:
        import obstore

        try:
            obstore.put(
                self.store, self.key, self._chunks(), chunk_size=PART_SIZE, max_concurrency=PART_CONCURRENCY
            )
        except BaseException as exc:  # an abort, or the store gave up after its own retries
            self._error = exc

    def _feed(self, item: Any, quiet: bool = False) -> None:
        while True:
            if self._thread is None or not self._thread.is_alive():
                if quiet:
                    return
                self._thread = None
                raise TransientError(f"the upload of {self.key} failed ({type(self._error).__name__})")
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


class _Pipe:
    """A file-like reader over chunks pushed from another thread (the tar parser's input)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_CHUNKS)
        self._buffer = b""
        self._eof = False

    def push(self, chunk: Any) -> None:
        self._queue.put(chunk)

    def read(self, size: int = -1) -> bytes:
        while not self._buffer and not self._eof:
            item = self._queue.get()
            if item is _DONE:
                self._eof = True
            elif isinstance(item, _Abort):
                raise item
            else:
                self._buffer = item
        size = len(self._buffer) if size is None or size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def drain(self) -> None:
        """Read to the end (tar padding after the last member), so the feeding side never blocks."""
        try:
            while self.read(CHUNK):
                pass
        except _Abort:
            pass


class BundleUpload:
    """A bundle unpacked while it streams: each member into its own upload under ``folder``."""

    def __init__(self, store: Any, folder: str, name: str):
        self.store, self.folder, self.name = store, folder.rstrip("/"), name
        self.members: list[Extracted] = []
        self._uploads: list[StoreUpload] = []
        self._thread: threading.Thread | None = None
        self._pipe = _Pipe()
        self._error: BaseException | None = None
        self.fed = 0
        self._digest = hashlib.sha256()
        self._head = b""

    def offset(self) -> int:
        return self.fed if self._thread is not None and self._error is None else 0

    def prefix_digest(self, length: int) -> hashlib._Hash:
        if length != self.fed:
            raise TransientError("the unpacking and the download disagree on the offset; starting over")
        return self._digest.copy()

    def begin(self, offset: int, digest: hashlib._Hash) -> None:
        """As :meth:`StoreUpload.begin`: ``digest`` is the writer's running sha256 of the tar."""
        if offset == 0 or self._thread is None or offset != self.fed:
            self.discard()
            self._pipe = _Pipe()
            self._thread = threading.Thread(target=self._unpack, name="unpack", daemon=True)
            self._thread.start()
        self._digest = digest

    def write(self, chunk: bytes) -> None:
        if len(self._head) < HEAD:
            self._head += chunk[: HEAD - len(self._head)]
        self._pipe.push(bytes(chunk))
        self.fed += len(chunk)

    def end(self, sync: bool) -> None:
        """Nothing: the unpacking waits for the rest of the stream or the commit."""

    def head(self) -> bytes:
        return self._head

    def discard(self) -> None:
        if self._thread is not None:
            self._pipe.push(_Abort())
            self._thread.join()
        for upload in self._uploads:
            upload.discard()
        self._thread, self._uploads, self.members, self._error = None, [], [], None
        self.fed, self._digest, self._head = 0, hashlib.sha256(), b""

    def commit(self) -> None:
        """The bundle verified: finish reading it, then complete every member's upload."""
        if self._thread is None:
            raise UnsafeArchiveError(f"{self.name} is empty")
        self._pipe.push(_DONE)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            error = self._error
            self.discard()
            if isinstance(error, (UnsafeArchiveError, TransientError)):
                raise error
            raise UnsafeArchiveError(f"{self.name} is not a readable tar file ({error})")
        members = self.members
        try:
            for upload in self._uploads:  # every member told to finish, then all awaited: in parallel
                upload.commit()
            for upload in self._uploads:
                upload.settle()
        except TransientError:
            self.discard()
            raise
        self._uploads, self.members = [], members

    def _unpack(self) -> None:
        seen: set[str] = set()
        try:
            with tarfile.open(fileobj=self._pipe, mode="r|", bufsize=CHUNK) as archive:
                for member in archive:
                    name = check_member(member)
                    if name is None:
                        continue
                    if name in seen:
                        raise UnsafeArchiveError(f"{self.name} holds two members with the same file name")
                    seen.add(name)
                    source = archive.extractfile(member)
                    if source is None:
                        raise UnsafeArchiveError(f"member {member.name!r} cannot be read")
                    upload = StoreUpload(self.store, f"{self.folder}/{name}", deferred=True)
                    self._uploads.append(upload)
                    digest = hashlib.sha256()  # the member's own checksum, for the ledger
                    upload.begin(0, digest)
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        upload.write(chunk)
                    if upload.sent != member.size:
                        raise UnsafeArchiveError(f"member {member.name!r} is truncated")
                    self.members.append(Extracted(name, upload.sent, digest.hexdigest()))
        except _Abort:
            return
        except BaseException as exc:
            self._error = exc
        self._pipe.drain()
