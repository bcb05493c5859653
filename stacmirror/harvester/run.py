"""A harvest from start to end: search, plan, request, poll, fetch, verify, unpack, clean up.

API use is batched so the number of calls does not grow with the number of
bands: one ``download-options`` per 5 000 scenes (entity ids in the request), one
``download-request`` per 1 000 files, polling by label, and cleanup by label.
Files already verified in the ledger are skipped, so re-running a finished
harvest only searches.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from contextlib import nullcontext
from pathlib import Path

from .. import events as ev
from ..catalog.constants import SENSORS
from ..errors import InvalidInput
from ..landsat import ProductId
from ..layout import Mirror
from ..ledger import FileRecord, Ledger, MirrorLock
from ..m2m import AccessDeniedError, M2MClient, Scene
from ..storage import StoreMirror
from .download import download_session
from .options import HarvestOptions, HarvestResult
from .plan import Want, choose, resolve_bands
from .queue import DownloadQueue
from .selection import search
from .subscription import spec_key, subscription_spec
from .swap import finish_pending, swap_in
from .transfers import Transfers

SCENE_LIST_CHUNK = 5_000
LABEL_PREFIX = "stacmirror-"


def listing(client: M2MClient, options: HarvestOptions) -> tuple[list[Scene], dict[str, Scene]]:
    """The scenes the options choose (``max_scenes``, ``per_region`` applied), and every scene the
    searches listed, by entity id (what sync checks the mirror's holdings against)."""
    if not options.regions:
        found = search(client, options.selection)
        listed = {s.entity_id: s for s in found}
        return (found[: options.max_scenes] if options.max_scenes else found), listed
    chosen: dict[str, Scene] = {}
    listed = {}
    for region in options.regions:
        found = search(client, options.selection.with_area(region))
        listed.update((s.entity_id, s) for s in found)
        if options.per_region:
            found = sorted(found, key=lambda s: s.cloud_cover if s.cloud_cover is not None else 101.0)
            found = found[: options.per_region]
        for scene in found:
            chosen.setdefault(scene.entity_id, scene)
    scenes = sorted(chosen.values(), key=lambda s: s.acquisition_date or dt.date.min, reverse=True)
    return (scenes[: options.max_scenes] if options.max_scenes else scenes), listed


def find_scenes(client: M2MClient, options: HarvestOptions) -> list[Scene]:
    return listing(client, options)[0]


class Harvest(Transfers):
    def __init__(
        self,
        client: M2MClient,
        options: HarvestOptions,
        on_event: ev.EventHandler | None = None,
        *,
        locked: bool = False,
        store: StoreMirror | None = None,
    ):
        """``locked``: the caller holds the mirror's lock (a sync running its subscriptions).
        ``store``: the opened object store when ``options.out`` is a store URL (opened here if not)."""
        self.locked = locked
        self.client = client
        self.options = options
        if store is None and isinstance(options.out, str):
            store = StoreMirror.open(options.out)
        self.store = store
        # in a store, the layout is laid over the local cache: its relative paths are the object keys
        self.mirror = store.local if store is not None else Mirror(options.out)
        self.emit = ev.emitter(on_event)
        self.summary = HarvestResult(options.out, dry_run=options.dry_run)
        self.label = f"{LABEL_PREFIX}{dt.datetime.now():%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self.queue: DownloadQueue | None = None
        self._missing: dict[str, list[str]] = {}  # scene -> requested files it does not offer
        self._completed: dict[int, int] = {}  # downloadId -> bytes
        self.replacing: dict[str, list[str]] = {}  # listed product -> older products of its acquisition held
        self.staged: set[str] = set()  # replacements downloading into OUT/.stacmirror/incoming/
        self.held_newer: set[str] = set()  # listed products the mirror holds a newer product of
        self._held: dict[str, set[str]] | None = None  # a store's product folders by WRS path/row

    def _dir(self, display_id: str) -> Path:
        """Where a product's files go: its scene folder, or the incoming folder of a replacement."""
        dataset = self.options.selection.dataset
        if display_id in self.staged:
            return self.mirror.incoming_dir(dataset, display_id)
        return self.mirror.scene_dir(dataset, display_id)

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
        rel = Path(self.mirror.rel(self._dir(scene.display_id)))
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

    def run(
        self, scenes: list[Scene] | None = None, files: tuple[set[str] | None, set[str] | None] | None = None
    ) -> HarvestResult:
        """Search (unless ``scenes`` are given, as sync does), then fetch what the mirror lacks.
        ``files``: the (suffixes, groups) a subscription resolved before, instead of asking
        ``dataset-file-groups`` again."""
        options = self.options
        if scenes is None:
            scenes = find_scenes(self.client, options)
            self.emit(ev.SearchDone(options.selection.dataset, len(scenes)))
        self.summary.scenes_found = len(scenes)
        if not scenes:
            self.emit(ev.Note("no scene matches the selection"))
        if files is not None:
            suffixes, groups = files
        elif scenes or options.mode != "bundle":
            levels = {ProductId.parse(s.display_id).level for s in scenes}
            level = levels.pop() if len(levels) == 1 else 2
            suffixes, groups = self.wanted_names(level, scenes)
        else:
            suffixes, groups = None, None
        self.files = (suffixes, groups)
        if options.dry_run:
            if self.store is not None:
                self.store.pull_state()  # into the cache only: the store is not written
            with (
                Ledger.snapshot(self.mirror) if self.mirror.ledger_path.exists() else nullcontext() as ledger
            ):
                pending = self._classify(ledger, scenes, suffixes)
                if pending:
                    self.check_access()
                self._dry_run(ledger, pending, suffixes, groups)
            return self.summary
        lock = self.store if self.store is not None else MirrorLock(options.out)
        if self.store is None:
            fresh = not self.mirror.ledger_path.exists()
            if fresh and scenes:
                self.check_access()  # before the first byte is written into a new mirror
        elif scenes:
            self.check_access()  # the lock object is the first write, and it comes next
        if not self.locked:
            lock.acquire()
        try:
            if self.store is not None:
                # under the lock: the ledger the last run (here or on another machine) left in the store
                self.store.pull_state()
                fresh = True  # access was checked above
            self._run_locked(scenes, suffixes, groups, fresh)
        finally:
            try:
                if self.store is not None:
                    self.store.push_state()
            finally:
                if not self.locked:
                    lock.release()
        return self.summary

    def _run_locked(
        self, scenes: list[Scene], suffixes: set[str] | None, groups: set[str] | None, fresh: bool
    ) -> None:
        options = self.options
        ledger = Ledger(self.mirror)
        if self.store is not None:
            ledger.present_sizes = self.store.sizes(options.selection.dataset)
        try:
            for old, new in finish_pending(self.mirror, ledger, self.store):
                self._replaced(old, new)
            pending = self._classify(ledger, scenes, suffixes)
            if pending and not fresh:
                self.check_access()
            run_id = ledger.start_run(options.command, self.client.service_url, self.label)
            status = "failed"
            try:
                self._subscribe(ledger, scenes)
                self._harvest(ledger, run_id, scenes, pending, suffixes, groups)
                status = "ok" if not self.summary.files_failed else "incomplete"
            finally:
                ledger.finish_run(
                    run_id,
                    status,
                    {"downloaded": self.summary.files_downloaded, "failed": self.summary.files_failed},
                )
        finally:
            ledger.close()

    def _subscribe(self, ledger: Ledger, scenes: list[Scene]) -> None:
        """Record what this harvest asked for (sync re-runs it) and the acquisitions it chose."""
        options = self.options
        if options.subscription is None:
            spec = subscription_spec(options, *self.files)
            options.subscription = ledger.add_subscription(spec_key(spec), spec)
        else:
            ledger.touch_subscription(options.subscription)
        self.summary.subscription = options.subscription
        ledger.add_members(options.subscription, [s.entity_id for s in scenes])

    def _classify(self, ledger: Ledger | None, scenes: list[Scene], suffixes: set[str] | None) -> list[Scene]:
        """The scenes with something to fetch, and which of them replace older products on disk.
        Writes nothing (a dry run classifies against a copy of the ledger, or none)."""
        dataset = self.options.selection.dataset
        pending = []
        for scene in scenes:
            listed = ProductId.parse(scene.display_id)
            siblings = self._siblings(ledger, dataset, scene.display_id)
            newer = [s for s in siblings if ProductId.parse(s).supersedes(listed)]
            if newer:  # the service lists an older product than the one held: keep ours
                self.held_newer.add(scene.display_id)
                self.summary.scenes_complete_before += 1
                self._note(f"{scene.display_id}: the mirror holds the newer {newer[0]}; kept", "warning")
                continue
            if siblings:
                self.replacing[scene.display_id] = siblings
                # on disk, a replacement is verified out of the tree first; in a store its own keys
                # are out of the old product's way (see swap.py)
                if self.store is None and not self.mirror.scene_dir(dataset, scene.display_id).exists():
                    self.staged.add(scene.display_id)
            if ledger is not None and self.scene_complete(ledger, scene, suffixes):
                self.summary.scenes_complete_before += 1
            else:
                pending.append(scene)
        self.summary.added = sorted(s.display_id for s in pending if s.display_id not in self.replacing)
        return pending

    def _siblings(self, ledger: Ledger | None, dataset: str, display_id: str) -> list[str]:
        """Other products of the same acquisition the mirror holds: folders on disk, or in a store
        the folders its one listing of the dataset shows."""
        if self.store is None:
            return self.mirror.acquisition_siblings(dataset, display_id)
        if self._held is None:
            keys = getattr(ledger, "present_sizes", None)
            if keys is None:  # a dry run: listed here, once
                keys = self.store.sizes(dataset)
            self._held = {}
            for key in keys:
                parts = key.split("/")
                if len(parts) == 5:  # <dataset>/<PPP>/<RRR>/<product id>/<file>
                    self._held.setdefault(f"{parts[1]}/{parts[2]}", set()).add(parts[3])
        pid = ProductId.parse(display_id)
        return sorted(
            name
            for name in self._held.get(f"{pid.path:03d}/{pid.row:03d}", ())
            if name != display_id
            and (other := ProductId.maybe(name)) is not None
            and other.acquisition == pid.acquisition
        )

    def _dry_run(
        self, ledger: Ledger | None, pending: list[Scene], suffixes: set[str] | None, groups: set[str] | None
    ) -> None:
        """Plan, and say what would be fetched (files the mirror already holds left out) and which
        products would be replaced; nothing is written."""
        plan = self._plan(pending, suffixes, groups) if pending else {}
        total = 0
        for scene in pending:
            for want in plan.get(scene.display_id, []):
                rel = self.mirror.rel(self._dir(scene.display_id) / want.name)
                if want.kind == "band" and ledger is not None and ledger.is_present(rel):
                    continue
                total += want.size or 0
                entry = {"scene": scene.display_id, "file": want.name, "size": want.size, "kind": want.kind}
                if scene.display_id in self.replacing:
                    entry["replaces"] = self.replacing[scene.display_id]
                self.summary.planned.append(entry)
        self.summary.bytes_planned = total
        for new, olds in self.replacing.items():
            self.summary.replaced += [{"old": old, "new": new} for old in olds]
        self.emit(ev.FilesPlanned(len(self.summary.planned), total, dry_run=True))

    def _plan(
        self, scenes: list[Scene], suffixes: set[str] | None, groups: set[str] | None
    ) -> dict[str, list[Want]]:
        dataset, mode = self.options.selection.dataset, self.options.mode
        plan: dict[str, list[Want]] = {}
        for start in range(0, len(scenes), SCENE_LIST_CHUNK):
            # the entity ids go in the request itself (API.md §4.9): a scene list would cost an
            # add and a remove call per chunk for the same answer
            chunk = scenes[start : start + SCENE_LIST_CHUNK]
            options = self.client.download_options(
                dataset,
                entity_ids=[s.entity_id for s in chunk],
                include_secondary_file_groups=(mode == "band-group"),
            )
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
        pending: list[Scene],
        suffixes: set[str] | None,
        groups: set[str] | None,
    ) -> None:
        options = self.options
        dataset = options.selection.dataset
        for scene in scenes:
            if scene.display_id not in self.held_newer:
                folder = self.mirror.scene_dir(dataset, scene.display_id)
                ledger.record_scene(run_id, dataset, scene, self.mirror.rel(folder))
        wants: list[Want] = []
        if pending:
            plan = self._plan(pending, suffixes, groups)
            for scene in pending:
                for want in plan.get(scene.display_id, []):
                    target = self._dir(scene.display_id) / want.name
                    rel = self.mirror.rel(target)
                    record = ledger.file(rel)
                    if want.kind == "band" and ledger.is_present(rel):
                        self.summary.files_skipped += 1
                    elif (
                        want.kind == "bundle"
                        and record is not None
                        and record.state == "downloaded"
                        and target.is_file()
                        and target.stat().st_size == record.size
                    ):
                        # verified before a crash interrupted the extraction: unpack, do not re-fetch
                        self._unpack(ledger, want, target, rel, record.size or 0, record.sha256 or "")
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
            self._swap_replacements(ledger, scenes, suffixes)
            if options.browse:
                self._fetch_browse(
                    ledger, [s for s in scenes if s.display_id not in self.held_newer], session
                )
        finally:
            session.close()
            self._cleanup()

    def _swap_replacements(self, ledger: Ledger, scenes: list[Scene], suffixes: set[str] | None) -> None:
        """Each replacement whose files all verified takes the place of the products it replaces."""
        by_id = {s.display_id: s for s in scenes}
        for new, olds in self.replacing.items():
            if not self.scene_complete(ledger, by_id[new], suffixes):
                self._note(f"{', '.join(olds)} kept: its replacement {new} did not arrive in full", "warning")
                continue
            swap_in(
                self.mirror,
                ledger,
                self.options.selection.dataset,
                new,
                olds,
                keep=self.options.keep_superseded,
                store=self.store,
            )
            self.staged.discard(new)
            for old in olds:
                self._replaced(old, new)

    def _replaced(self, old: str, new: str) -> None:
        self.summary.replaced.append({"old": old, "new": new})
        self.emit(ev.ProductReplaced(old, new))

    def _note(self, message: str, level: str = "info") -> None:
        self.emit(ev.Note(message, level))

    def _fail(self, ledger: Ledger, display_id: str, want: Want | None, reason: str) -> None:
        name = want.name if want else display_id
        folder = self._dir(display_id)
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
