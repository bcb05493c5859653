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
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import events as ev
from ..errors import InvalidInput
from ..landsat import ProductId
from ..layout import Mirror, partial_path
from ..ledger import FileRecord, Ledger, MirrorLock
from ..m2m import AccessDeniedError, M2MClient, ReadyDownload, Scene
from .bundle import UnsafeArchiveError, extract_bundle
from .download import FileJob, TransferError, download_session, fetch
from .options import HarvestOptions, HarvestResult
from .plan import Want, choose, resolve_bands
from .selection import search

log = logging.getLogger(__name__)

SCENE_LIST_CHUNK = 5_000
REQUEST_CHUNK = 1_000
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
        self._labels_used: set[str] = set()
        self._downloads: dict[str, ReadyDownload] = {}  # entityId -> ready download
        self._completed: dict[int, int] = {}  # downloadId -> bytes

    # -- preparation (no writes) ----------------------------------------------------------------

    def wanted_names(self, level: int) -> tuple[set[str] | None, set[str] | None]:
        """Validated (suffixes, groups) for bands / band-group modes, from dataset-file-groups."""
        mode, dataset = self.options.mode, self.options.selection.dataset
        if mode == "bundle":
            return None, None
        groups = self.client.dataset_file_groups(dataset)
        if mode == "bands":
            names = {name for g in groups for name in g.files}
            return resolve_bands(self.options.bands, level, names), None
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
        if names is not None:
            return all(ledger.is_present(str(rel / name)) for name in names)
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
        suffixes, groups = self.wanted_names(level) if scenes or options.mode != "bundle" else (None, None)
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
            plan.update(choose(options, mode, suffixes=suffixes, groups=groups, notify=self._note))
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
        options = self.options
        by_entity = {w.entity_id: w for w in wants}
        self.emit(ev.FilesPlanned(len(wants), sum(w.size or 0 for w in wants)))
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="fetch") as pool:

            def submit(ready: ReadyDownload) -> None:
                want = by_entity.pop(str(ready.entity_id), None)
                if want is None or not ready.url:
                    return
                with self._lock:
                    self._downloads[want.entity_id] = ready
                futures.append(pool.submit(self._fetch_one, ledger, want, session))

            extra_labels: set[str] = set()
            for start in range(0, len(wants), REQUEST_CHUNK):
                chunk = wants[start : start + REQUEST_CHUNK]
                result = self.client.download_request(
                    self.label,
                    downloads=[{"entityId": w.entity_id, "productId": w.product_id} for w in chunk],
                )
                self._labels_used.add(self.label)
                extra_labels.update(result.duplicate_products.values())
                for ready in result.available:
                    if ready.entity_id:
                        submit(ready)
                for failed in result.failed:
                    entity = str(failed.get("entityId", "")) if isinstance(failed, dict) else ""
                    want = by_entity.pop(entity, None)
                    if want:
                        self._fail(ledger, want.display_id, want, f"refused by M2M: {failed}")
                if result.num_invalid_scenes:
                    self._note(f"M2M rejected {result.num_invalid_scenes} requested item(s)", "warning")
            self._labels_used.update(label for label in extra_labels if label.startswith(LABEL_PREFIX))
            labels = [self.label, *sorted(extra_labels - {self.label})]
            self._poll(labels, by_entity, submit, ledger)
            for future in futures:
                future.result()
        self.emit(ev.TransfersDone(self.summary.files_downloaded, self.summary.files_failed))

    def _poll(self, labels: list[str], waiting: dict[str, Want], submit, ledger: Ledger) -> None:
        interval = min(2.0, self.options.poll_interval)
        deadline = time.monotonic() + self.options.poll_timeout
        first = True
        while waiting:
            if not first:
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                interval = min(interval * 2, self.options.poll_interval)
            first = False
            for label in labels:
                for ready in self.client.download_retrieve(label).with_urls():
                    if ready.entity_id in waiting:
                        submit(ready)
                if not waiting:
                    break
            if waiting:
                log.info("%d download(s) still being prepared", len(waiting))
        for want in list(waiting.values()):
            self._fail(
                ledger,
                want.display_id,
                want,
                f"not ready after {self.options.poll_timeout:.0f} s of polling download-retrieve",
            )
        waiting.clear()

    def _refresh_url(self, entity_id: str) -> str:
        """A fresh signed URL for a download whose URL expired."""
        current = self._downloads[entity_id]
        for label in [current.label or self.label, self.label, *sorted(self._labels_used)]:
            for ready in self.client.download_retrieve(label).with_urls():
                if ready.download_id == current.download_id or ready.entity_id == entity_id:
                    self._downloads[entity_id] = ready
                    return str(ready.url)
        raise TransferError("M2M no longer lists this download; cannot refresh its URL")

    # -- fetching --------------------------------------------------------------------------------

    def _fetch_one(self, ledger: Ledger, want: Want, session: Any) -> None:
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
                lambda: str(self._downloads[want.entity_id].url),
                refresh_url=lambda: self._refresh_url(want.entity_id),
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
            self._completed[self._downloads[want.entity_id].download_id] = result.size
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
        """The natural-colour browse image of each scene, for the catalog's thumbnails."""
        for scene in scenes:
            browse = scene.natural_colour_browse()
            if browse is None:
                continue
            folder = self.mirror.scene_dir(self.options.selection.dataset, scene.display_id)
            target = folder / f"{self.mirror.browse_stem(scene.display_id)}.jpg"
            rel = self.mirror.rel(target)
            if ledger.is_present(rel):
                continue
            try:
                result = fetch(
                    session, FileJob(target, None, None), lambda b=browse: b.url, policy=self.options.transfer
                )
            except TransferError as exc:
                self._note(f"{scene.display_id}: browse image not saved ({exc})", "warning")
                continue
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
        """Leave the user's M2M download queue as we found it."""
        if self._completed:
            try:
                self.client.download_complete_proxied(dict(self._completed))
            except Exception as exc:
                log.warning("download-complete-proxied failed: %s", exc)
        for label in sorted(self._labels_used):
            try:
                self.client.download_order_remove(label)
            except Exception as exc:
                log.warning("could not remove download order %s: %s", label, exc)
