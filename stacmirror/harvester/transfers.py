"""The transfer half of a harvest: request in waves, poll, fetch, verify, unpack, browse images.

A mixin of :class:`.run.Harvest`, which holds the state it uses (options, ledger, queue, the
folder each product goes to)."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import events as ev
from ..layout import partial_path
from ..ledger import FileRecord, Ledger
from ..m2m import Scene
from .bundle import Extracted, UnsafeArchiveError, extract_bundle
from .download import FileJob, TransferError, TransferPolicy, fetch, image_extension
from .plan import Want
from .queue import DownloadQueue, Entry, sleep_until
from .upload import BundleUpload, StoreUpload

log = logging.getLogger(__name__)

# Browse images are extras: a few seconds at most each, one quick retry, and never a failure.
BROWSE_POLICY = TransferPolicy(
    attempts=1, initial_wait=0.2, max_wait=0.5, url_refreshes=0, deterministic_retries=0,
    max_seconds=5.0, timeout=(3.0, 5.0),
)  # fmt: skip
BROWSE_MISSES = 3


class Transfers:
    # -- requesting and polling ------------------------------------------------------------------

    def _fetch_all(self, ledger: Ledger, wants: list[Want], session: Any) -> None:
        """Request in waves that fit the quotas, poll until every accepted item has a URL, fetch."""
        options = self.options
        self.emit(ev.FilesPlanned(len(wants), sum(w.size or 0 for w in wants)))
        queue = self.queue = DownloadQueue(self.client, self.label, self._note)
        queue.refresh_limits()  # the first wave must fit the quotas too (one call, whatever the size)
        futures: list[Future[None]] = []
        deadline = time.monotonic() + options.poll_timeout
        self._settling: list[Future[None]] = []
        self._refetched: set[int] = set()
        # uploads completing while their worker fetches the next file: at most one per worker
        self._commit_slots = threading.BoundedSemaphore(options.workers)
        with (
            ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="fetch") as pool,
            ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="commit") as self._committer,
        ):

            def submit(entries: list[Entry]) -> None:
                # largest first: the last file to start is then a small one, so the workers finish
                # together instead of one of them fetching a big band alone at the end
                for entry in sorted(entries, key=lambda e: -(e.want.size or 0)):
                    futures.append(pool.submit(self._fetch_one, ledger, entry, session))

            self._fetch_again = lambda entry: submit([entry])

            pending = list(wants)
            while pending:
                size = queue.wave_size()
                while size <= 0 and time.monotonic() < deadline:
                    # the quotas are used up: let the transfers in flight land, then ask again
                    self._note("M2M download quota used up; waiting for transfers in flight", "warning")
                    for future in futures:
                        future.result()
                    queue.refresh_limits()
                    size = queue.wave_size()
                    if size <= 0:
                        sleep_until(deadline, options.poll_interval)
                if size <= 0:
                    for want in pending:
                        self._fail(ledger, want.display_id, want, "the M2M download quota stayed used up")
                    break
                wave, pending = pending[:size], pending[size:]
                ready, refused = queue.request(wave)
                for want, reason in refused:
                    self._fail(ledger, want.display_id, want, reason)
                submit(ready)
                self._poll(queue, submit, ledger, deadline)
            self._wait_all(futures)
        self.emit(ev.TransfersDone(self.summary.files_downloaded, self.summary.files_failed))

    def _wait_all(self, futures: list[Future[None]]) -> None:
        """Every fetch and every completing upload done. A completion the store refused submits its
        file again (into ``futures``), so this goes on until neither list grows."""
        fetched = settled = 0
        while True:
            while fetched < len(futures):
                futures[fetched].result()
                fetched += 1
            while settled < len(self._settling):
                self._settling[settled].result()
                settled += 1
            if fetched == len(futures):
                return

    def _poll(self, queue: DownloadQueue, submit, ledger: Ledger, deadline: float) -> None:
        interval = min(2.0, self.options.poll_interval)
        while queue.waiting():
            ready, gone = queue.poll_once()
            submit(ready)
            stale = [e for e in gone if e.label not in queue.own_labels and not e.re_requested]
            for entry in gone:
                if entry not in stale:
                    entry.failed = True
                    reason = "M2M lists it nowhere and queues nothing (download temporarily disabled?)"
                    self._fail(ledger, entry.want.display_id, entry.want, reason)
            if stale:
                self._note(f"{len(stale)} earlier request(s) no longer listed; requesting them again", "info")
                again, refused = queue.re_request(stale)
                submit(again)
                for want, reason in refused:
                    self._fail(ledger, want.display_id, want, reason)
            if not queue.waiting() or time.monotonic() >= deadline:
                break
            log.info("%d download(s) still being prepared", len(queue.waiting()))
            sleep_until(deadline, interval)
            interval = min(interval * 2, self.options.poll_interval)
        for entry in queue.waiting():
            entry.failed = True
            reason = f"not ready after {self.options.poll_timeout:.0f} s of polling download-retrieve"
            self._fail(ledger, entry.want.display_id, entry.want, reason)

    def _refresh_url(self, entry: Entry) -> str:
        """A fresh signed URL for a download whose URL expired."""
        url = self.queue.fresh_url(entry) if self.queue else None
        if url is None:
            raise TransferError("M2M no longer lists this download; cannot refresh its URL")
        return url

    # -- fetching --------------------------------------------------------------------------------

    def _fetch_one(self, ledger: Ledger, entry: Entry, session: Any) -> None:
        want = entry.want
        target = self._dir(want.display_id) / want.name
        rel = self.mirror.rel(target)
        sink = self._store_sink(want, rel)
        part = partial_path(target)
        done = part.stat().st_size if sink is None and part.exists() else 0
        self.emit(ev.FileStarted(rel, want.name, want.size, done))
        ledger.set_file(
            FileRecord(rel, want.display_id, want.name, want.kind, want.size, want.sha256, "downloading")
        )
        try:
            result = fetch(
                session,
                FileJob(target, want.size, want.sha256, sink),
                lambda: str(entry.ready.url if entry.ready else ""),
                refresh_url=lambda: self._refresh_url(entry),
                transcript=self.client.transcript,
                on_bytes=lambda n: self.emit(ev.BytesTransferred(rel, n)),
                policy=self.options.transfer,
            )
        except BaseException as exc:
            if sink is not None:
                sink.discard()  # an upload a failure left open is aborted: no object appears
            if isinstance(exc, UnsafeArchiveError):  # unpacked while streaming into a store
                self._fail(ledger, want.display_id, want, f"bundle refused: {exc}")
                return
            if isinstance(exc, TransferError):
                self._fail(ledger, want.display_id, want, str(exc))
                return
            if isinstance(exc, Exception):
                self._fail(ledger, want.display_id, want, f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(sink, StoreUpload):  # verified; its upload completes while this worker goes on
            self._commit_slots.acquire()
            settle = self._committer.submit(self._settle, ledger, entry, target, rel, sink, result)
            self._settling.append(settle)
            return
        self._fetched(ledger, entry, target, rel, sink, result)

    def _settle(
        self, ledger: Ledger, entry: Entry, target: Path, rel: str, sink: StoreUpload, result: Any
    ) -> None:
        """A verified file's upload awaited (in the commit pool), then the file recorded. One the
        store refused after its own retries is fetched again from its first byte, once."""
        want = entry.want
        try:
            sink.settle()
        except TransferError as exc:
            if id(entry) in self._refetched:
                self._fail(ledger, want.display_id, want, str(exc))
            else:
                self._refetched.add(id(entry))
                log.info("%s: %s; fetching it again", want.name, exc)
                self._fetch_again(entry)
            return
        finally:
            self._commit_slots.release()
        self._fetched(ledger, entry, target, rel, sink, result)

    def _fetched(self, ledger: Ledger, entry: Entry, target: Path, rel: str, sink: Any, result: Any) -> None:
        """A file verified and in place (on disk, or completed in the store): counted and recorded;
        a bundle on disk is unpacked."""
        want = entry.want
        with self._lock:
            self.summary.files_downloaded += 1
            self.summary.bytes_downloaded += result.size - result.resumed_from
            self._completed[entry.download_id] = result.size
        if result.note:
            self._note(f"{want.name}: {result.note}; Content-Length and the checksum agree", "warning")
        self.emit(ev.FileVerified(rel, want.name, result.size, result.resumed_from))
        if want.kind != "bundle":
            ledger.set_file(
                FileRecord(rel, want.display_id, want.name, want.kind, result.size, result.sha256, "done")
            )
            self._landed(ledger, rel, result.size)
            return
        if sink is not None:  # its members are already in the store, completed after the bundle verified
            for member in sink.members:
                self._record_member(ledger, want, target.parent, member)
            ledger.set_file(
                FileRecord(rel, want.display_id, want.name, "bundle", result.size, result.sha256, "done")
            )
            return
        ledger.set_file(
            FileRecord(rel, want.display_id, want.name, "bundle", result.size, result.sha256, "downloaded")
        )
        self._unpack(ledger, want, target, rel, result.size, result.sha256)

    def _store_sink(self, want: Want, rel: str) -> StoreUpload | BundleUpload | None:
        """Where the bytes go in a mirror in an object store (None: the local disk)."""
        if self.store is None:
            return None
        if want.kind == "bundle":
            return BundleUpload(self.store.store, rel.rpartition("/")[0], want.name)
        return StoreUpload(self.store.store, rel, deferred=True)

    def _landed(self, ledger: Ledger, rel: str, size: int) -> None:
        """A file is in the store now (there, the run's one listing stands in for stat)."""
        if ledger.present_sizes is not None:
            with self._lock:
                ledger.present_sizes[rel] = size

    def _record_member(self, ledger: Ledger, want: Want, folder: Path, member: Extracted) -> None:
        """A bundle member is in place (on disk, or completed in the store)."""
        path = self.mirror.rel(folder / member.name)
        ledger.set_file(
            FileRecord(path, want.display_id, member.name, "extracted", member.size, member.sha256, "done")
        )
        self._landed(ledger, path, member.size)

    def _unpack(self, ledger: Ledger, want: Want, target: Path, rel: str, size: int, sha256: str) -> None:
        folder = target.parent

        def record(member: Extracted) -> None:
            self._record_member(ledger, want, folder, member)

        try:
            extract_bundle(target, folder, on_member=record, fsync=self.options.transfer.fsync)
        except UnsafeArchiveError as exc:
            self._fail(ledger, want.display_id, want, f"bundle refused: {exc}")
            target.unlink(missing_ok=True)
            return
        if not self.options.keep_tar:
            target.unlink()
        ledger.set_file(FileRecord(rel, want.display_id, want.name, "bundle", size, sha256, "done"))

    def _fetch_browse(self, ledger: Ledger, scenes: list[Scene], session: Any) -> None:
        """The natural-colour browse image of each scene, for the catalog's thumbnails: an optional
        extra. It is named and typed by its bytes (JPEG, PNG, WebP, GIF), gets a few seconds at most,
        and one that cannot be had is a note, never a failure; after a few misses in a row the rest
        are skipped (the catalog renders thumbnails from the bands instead)."""
        misses = 0
        for scene in scenes:
            browse = scene.natural_colour_browse()
            if browse is None or any(
                r.kind == "browse" and ledger.is_present(r.path) for r in ledger.files_of(scene.display_id)
            ):
                continue
            if misses >= BROWSE_MISSES:
                self._note(f"browse images skipped after {misses} failures in a row", "warning")
                return
            folder = self._dir(scene.display_id)
            stem = self.mirror.browse_stem(scene.display_id)
            incoming = folder / f".{stem}.incoming"
            try:
                job = FileJob(incoming, None, None)
                result = fetch(
                    session,
                    job,
                    lambda b=browse: b.url,
                    policy=BROWSE_POLICY,
                    transcript=self.client.transcript,
                )
                with incoming.open("rb") as handle:
                    extension = image_extension(handle.read(16))
                if extension is None:
                    raise TransferError("the browse URL did not answer with an image")
            except TransferError as exc:
                incoming.unlink(missing_ok=True)
                misses += 1
                self._note(f"{scene.display_id}: no browse image ({exc})")
                continue
            misses = 0
            target = folder / f"{stem}{extension}"
            rel = self.mirror.rel(target)
            if self.store is not None:  # a small image: fetched to the cache, then one put
                self.store.put_bytes(rel, incoming.read_bytes())
                incoming.unlink()
                self._landed(ledger, rel, result.size)
            else:
                os.replace(incoming, target)
            ledger.set_file(
                FileRecord(rel, scene.display_id, target.name, "browse", result.size, result.sha256, "done")
            )
