"""A harvest from start to end: search, plan, request, poll, fetch, verify, unpack, clean up.

API use is batched so the number of calls does not grow with the number of
bands: one scene list and one ``download-options`` per 5 000 scenes, one
``download-request`` per 1 000 files, polling by label, and cleanup by label.
Files already verified in the ledger are skipped, so re-running a finished
harvest only searches.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import events as ev
from ..catalog.constants import SENSORS
from ..errors import InvalidInput
from ..landsat import ProductId
from ..layout import Mirror, partial_path
from ..ledger import FileRecord, Ledger, MirrorLock
from ..m2m import AccessDeniedError, M2MClient, Scene
from .bundle import UnsafeArchiveError, extract_bundle
from .download import FileJob, TransferError, TransferPolicy, download_session, fetch, image_extension
from .options import HarvestOptions, HarvestResult
from .plan import Want, choose, resolve_bands
from .queue import DownloadQueue, Entry, sleep_until
from .selection import search

log = logging.getLogger(__name__)

# Browse images are extras: a few seconds at most each, one quick retry, and never a failure.
BROWSE_POLICY = TransferPolicy(
    attempts=1, initial_wait=0.2, max_wait=0.5, url_refreshes=0, deterministic_retries=0,
    max_seconds=5.0, timeout=(3.0, 5.0),
)  # fmt: skip
BROWSE_MISSES = 3
SCENE_LIST_CHUNK = 5_000
LABEL_PREFIX = "stacmirror-"


def find_scenes(client: M2MClient, options: HarvestOptions) -> list[Scene]:
    if not options.regions:
        return search(client, options.selection, limit=options.max_scenes)
    chosen: dict[str, Scene] = {}
    for region in options.regions:
        found = search(client, options.selection.with_area(region))
        if options.per_region:
            found = sorted(found, key=lambda s: s.cloud_cover if s.cloud_cover is not None else 101.0)
            found = found[: options.per_region]
        for scene in found:
            chosen.setdefault(scene.entity_id, scene)
    scenes = sorted(chosen.values(), key=lambda s: s.acquisition_date or dt.date.min, reverse=True)
    return scenes[: options.max_scenes] if options.max_scenes else scenes


class Harvest:
    def __init__(self, client: M2MClient, options: HarvestOptions, on_event: ev.EventHandler | None = None):
        self.client = client
        self.options = options
        self.mirror = Mirror(options.out)
        self.emit = ev.emitter(on_event)
        self.summary = HarvestResult(options.out, dry_run=options.dry_run)
        self.label = f"{LABEL_PREFIX}{dt.datetime.now():%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self.queue: DownloadQueue | None = None
        self._missing: dict[str, list[str]] = {}  # scene -> requested files it does not offer
        self._completed: dict[int, int] = {}  # downloadId -> bytes

    # -- preparation (no writes) ----------------------------------------------------------------

    def wanted_names(self, level: int, scenes: list[Scene] = ()) -> tuple[set[str] | None, set[str] | None]:
        """Validated (suffixes, groups) for bands / band-group modes, from dataset-file-groups."""
        mode, dataset = self.options.mode, self.options.selection.dataset
        if mode == "bundle":
            return None, None
        groups = self.client.dataset_file_groups(dataset)
        if mode == "bands":
            names = {name for g in groups for name in g.files}
            sensors = set()
            for scene in scenes:
                pid = ProductId.maybe(scene.display_id)
                if pid is not None:
                    sensors.add((SENSORS[pid.sensor], pid.satellite))
            return resolve_bands(self.options.bands, level, names, sensors), None
        known = {g.group_id: g for g in groups}
        wanted = {g.strip() for g in self.options.file_groups if g.strip()}
        if not wanted:
            raise InvalidInput(
                "file_groups", "mode 'band-group' needs file groups (valid: " + ", ".join(sorted(known)) + ")"
            )
        unknown = wanted - set(known)
        if unknown:
            raise InvalidInput(
                "file_groups",
                f"unknown group(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}",
            )
        return {name for g in wanted for name in known[g].files}, wanted

    def expected_names(self, display_id: str, suffixes: set[str] | None) -> list[str] | None:
        """File names a scene must have on disk to count as complete (None: decided by bundle state)."""
        if suffixes is None:
            return None
        return [f"{display_id}_{suffix}" for suffix in sorted(suffixes)]

    def scene_complete(self, ledger: Ledger, scene: Scene, suffixes: set[str] | None) -> bool:
        rel = Path(self.mirror.rel(self.mirror.scene_dir(self.options.selection.dataset, scene.display_id)))
        names = self.expected_names(scene.display_id, suffixes)
        if names is not None:  # names compared case-insensitively, as the service's may differ
            present = {r.name.lower() for r in ledger.files_of(scene.display_id) if ledger.is_present(r.path)}
            return all(name.lower() in present for name in names)
        bundle = ledger.file(str(rel / f"{scene.display_id}.tar"))
        if bundle is None or bundle.state != "done":
            return False
        return all(
            ledger.is_present(r.path) for r in ledger.files_of(scene.display_id) if r.kind == "extracted"
        )

    # -- the run --------------------------------------------------------------------------------

    def check_access(self) -> None:
        """Fail before writing anything when the account may not download (no MACHINE role)."""
        if "download" not in self.client.permissions():
            raise AccessDeniedError(
                "AUTH_UNAUTHROIZED", "this account may search but not download", endpoint="permissions"
            )

    def run(self) -> HarvestResult:
        options = self.options
        scenes = find_scenes(self.client, options)
        self.emit(ev.SearchDone(options.selection.dataset, len(scenes)))
        if scenes:
            self.check_access()
        self.summary.scenes_found = len(scenes)
        if not scenes:
            self.emit(ev.Note("no scene matches the selection"))
        levels = {ProductId.parse(s.display_id).level for s in scenes}
        level = levels.pop() if len(levels) == 1 else 2
        suffixes, groups = (
            self.wanted_names(level, scenes) if scenes or options.mode != "bundle" else (None, None)
        )
        if options.dry_run:
            self._dry_run(scenes, suffixes, groups)
            return self.summary
        lock = MirrorLock(options.out)
        lock.acquire()
        ledger = Ledger(options.out)
        run_id = ledger.start_run(options.command, self.client.service_url, self.label)
        status = "failed"
        try:
            self._harvest(ledger, run_id, scenes, suffixes, groups)
            status = "ok" if not self.summary.files_failed else "incomplete"
        finally:
            ledger.finish_run(
                run_id,
                status,
                {"downloaded": self.summary.files_downloaded, "failed": self.summary.files_failed},
            )
            ledger.close()
            lock.release()
        return self.summary

    def _dry_run(self, scenes: list[Scene], suffixes: set[str] | None, groups: set[str] | None) -> None:
        """Plan, and say what would be fetched; nothing is written."""
        plan = self._plan(scenes, suffixes, groups) if scenes else {}
        total = 0
        for scene in scenes:
            for want in plan.get(scene.display_id, []):
                total += want.size or 0
                self.summary.planned.append(
                    {"scene": scene.display_id, "file": want.name, "size": want.size, "kind": want.kind}
                )
        self.emit(ev.FilesPlanned(len(self.summary.planned), total, dry_run=True))

    def _plan(
        self, scenes: list[Scene], suffixes: set[str] | None, groups: set[str] | None
    ) -> dict[str, list[Want]]:
        dataset, mode = self.options.selection.dataset, self.options.mode
        plan: dict[str, list[Want]] = {}
        for start in range(0, len(scenes), SCENE_LIST_CHUNK):
            chunk = scenes[start : start + SCENE_LIST_CHUNK]
            list_id = f"{self.label}-{start // SCENE_LIST_CHUNK}"
            try:
                self.client.scene_list_add(list_id, dataset, [s.entity_id for s in chunk])
                options = self.client.download_options(
                    dataset, list_id=list_id, include_secondary_file_groups=(mode == "band-group")
                )
            finally:
                try:
                    self.client.scene_list_remove(list_id)
                except Exception as exc:  # cleanup must not hide the real outcome
                    log.warning("could not remove scene list %s: %s", list_id, exc)
            plan.update(
                choose(
                    options, mode, suffixes=suffixes, groups=groups, notify=self._note, missing=self._missing
                )
            )
        return plan

    def _harvest(
        self,
        ledger: Ledger,
        run_id: int,
        scenes: list[Scene],
        suffixes: set[str] | None,
        groups: set[str] | None,
    ) -> None:
        options = self.options
        dataset = options.selection.dataset
        pending: list[Scene] = []
        for scene in scenes:
            folder = self.mirror.scene_dir(dataset, scene.display_id)
            ledger.record_scene(run_id, dataset, scene, self.mirror.rel(folder))
            if self.scene_complete(ledger, scene, suffixes):
                self.summary.scenes_complete_before += 1
            else:
                pending.append(scene)
        wants: list[Want] = []
        if pending:
            plan = self._plan(pending, suffixes, groups)
            for scene in pending:
                for want in plan.get(scene.display_id, []):
                    rel = Path(self.mirror.rel(self.mirror.scene_dir(dataset, scene.display_id))) / want.name
                    record = ledger.file(str(rel))
                    target = options.out / rel
                    if want.kind == "band" and ledger.is_present(str(rel)):
                        self.summary.files_skipped += 1
                    elif (
                        want.kind == "bundle"
                        and record is not None
                        and record.state == "downloaded"
                        and target.is_file()
                        and target.stat().st_size == record.size
                    ):
                        # verified before a crash interrupted the extraction: unpack, do not re-fetch
                        self._unpack(ledger, want, target, str(rel), record.size or 0, record.sha256 or "")
                    else:
                        wants.append(want)
                if scene.display_id not in plan:
                    self._fail(ledger, scene.display_id, None, "no download options were offered")
                for suffix in self._missing.get(scene.display_id, []):
                    name = f"{scene.display_id}_{suffix}"
                    self._fail(ledger, scene.display_id, None, f"{name} is not offered for download")
        pending_ids = {s.entity_id for s in pending}
        self.summary.files_skipped += sum(
            len(self.expected_names(s.display_id, suffixes) or [1])
            for s in scenes
            if s.entity_id not in pending_ids
        )
        session = download_session(options.workers)
        try:
            if wants:
                self._fetch_all(ledger, wants, session)
            if options.browse:
                self._fetch_browse(ledger, scenes, session)
        finally:
            session.close()
            self._cleanup()

    # -- requesting and polling ------------------------------------------------------------------

    def _fetch_all(self, ledger: Ledger, wants: list[Want], session: Any) -> None:
        """Request in waves that fit the quotas, poll until every accepted item has a URL, fetch."""
        options = self.options
        self.emit(ev.FilesPlanned(len(wants), sum(w.size or 0 for w in wants)))
        queue = self.queue = DownloadQueue(self.client, self.label, self._note)
        queue.refresh_limits()  # the first wave must fit the quotas too (one call, whatever the size)
        futures: list[Future[None]] = []
        deadline = time.monotonic() + options.poll_timeout
        with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="fetch") as pool:

            def submit(entry: Entry) -> None:
                futures.append(pool.submit(self._fetch_one, ledger, entry, session))

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
                for entry in ready:
                    submit(entry)
                self._poll(queue, submit, ledger, deadline)
            for future in futures:
                future.result()
        self.emit(ev.TransfersDone(self.summary.files_downloaded, self.summary.files_failed))

    def _poll(self, queue: DownloadQueue, submit, ledger: Ledger, deadline: float) -> None:
        interval = min(2.0, self.options.poll_interval)
        while queue.waiting():
            ready, gone = queue.poll_once()
            for entry in ready:
                submit(entry)
            stale = [e for e in gone if e.label not in queue.own_labels and not e.re_requested]
            for entry in gone:
                if entry not in stale:
                    entry.failed = True
                    reason = "M2M lists it nowhere and queues nothing (download temporarily disabled?)"
                    self._fail(ledger, entry.want.display_id, entry.want, reason)
            if stale:
                self._note(f"{len(stale)} earlier request(s) no longer listed; requesting them again", "info")
                again, refused = queue.re_request(stale)
                for entry in again:
                    submit(entry)
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
        target = self.mirror.scene_dir(self.options.selection.dataset, want.display_id) / want.name
        rel = self.mirror.rel(target)
        part = partial_path(target)
        done = part.stat().st_size if part.exists() else 0
        self.emit(ev.FileStarted(rel, want.name, want.size, done))
        ledger.set_file(
            FileRecord(rel, want.display_id, want.name, want.kind, want.size, want.sha256, "downloading")
        )
        try:
            result = fetch(
                session,
                FileJob(target, want.size, want.sha256),
                lambda: str(entry.ready.url if entry.ready else ""),
                refresh_url=lambda: self._refresh_url(entry),
                transcript=self.client.transcript,
                on_bytes=lambda n: self.emit(ev.BytesTransferred(rel, n)),
                policy=self.options.transfer,
            )
        except TransferError as exc:
            self._fail(ledger, want.display_id, want, str(exc))
            return
        except Exception as exc:
            self._fail(ledger, want.display_id, want, f"{type(exc).__name__}: {exc}")
            raise
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
            return
        ledger.set_file(
            FileRecord(rel, want.display_id, want.name, "bundle", result.size, result.sha256, "downloaded")
        )
        self._unpack(ledger, want, target, rel, result.size, result.sha256)

    def _unpack(self, ledger: Ledger, want: Want, target: Path, rel: str, size: int, sha256: str) -> None:
        folder = target.parent

        def record(member) -> None:
            path = self.mirror.rel(folder / member.name)
            ledger.set_file(
                FileRecord(
                    path, want.display_id, member.name, "extracted", member.size, member.sha256, "done"
                )
            )

        try:
            extract_bundle(target, folder, on_member=record)
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
            folder = self.mirror.scene_dir(self.options.selection.dataset, scene.display_id)
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
            os.replace(incoming, target)
            rel = self.mirror.rel(target)
            ledger.set_file(
                FileRecord(rel, scene.display_id, target.name, "browse", result.size, result.sha256, "done")
            )

    def _note(self, message: str, level: str = "info") -> None:
        self.emit(ev.Note(message, level))

    def _fail(self, ledger: Ledger, display_id: str, want: Want | None, reason: str) -> None:
        name = want.name if want else display_id
        folder = self.mirror.scene_dir(self.options.selection.dataset, display_id)
        rel = self.mirror.rel(folder / want.name) if want else self.mirror.rel(folder)
        with self._lock:
            self.summary.files_failed += 1
            self.summary.failures.append(f"{name}: {reason}")
        self.emit(ev.FileFailed(rel, name, reason))
        if want is not None:
            ledger.set_file(
                FileRecord(rel, display_id, want.name, want.kind, want.size, want.sha256, "failed"),
                error=reason,
            )

    def _cleanup(self) -> None:
        """Leave the user's M2M download queue as we found it (this run's labels only)."""
        if self.queue is not None:
            self.queue.cleanup(self._completed)
