"""Keeping a mirror current: every subscription searched again, and the mirror brought in step.

A sync runs in two phases, so that bad input fails before anything is written:

1. **search**: each subscription's selection over its whole date range (an open end ends today),
   once per subscription and per region; a dataset the service no longer knows is an error that
   names the subscription.
2. **bring in step**, under the mirror's lock: each subscription is harvested again with what it
   chose plus the acquisitions it already holds; products USGS replaced (the same entity id with a
   newer product id: a later processing date, or Real-Time become Tier 1/2) are swapped in safely
   (:mod:`.harvester.swap`); products no subscription lists any more are reported and, with
   ``prune``, removed. Then the catalog and items.parquet are updated, and the crop stacks that
   used a replaced or removed scene are cropped again.

A dry run does phase 1 and plans phase 2 against a copy of the ledger, and writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from .errors import InvalidInput
from .harvester.options import HarvestResult
from .harvester.subscription import Subscription, files_of, options_of
from .layout import Mirror
from .ledger import Ledger, MirrorLock
from .m2m import M2MClient, Scene


@dataclass
class SubscriptionReport:
    """What a sync found and did for one subscription."""

    subscription: Subscription
    listed: int = 0
    harvest: HarvestResult | None = None
    gone: list[str] = field(default_factory=list)  # held products no subscription lists any more
    removed: list[str] = field(default_factory=list)  # of those, removed (prune)

    @property
    def files_failed(self) -> int:
        return self.harvest.files_failed if self.harvest else 0

    def to_dict(self) -> dict[str, Any]:
        h = self.harvest
        return {
            "subscription": self.subscription.id,
            "dataset": self.subscription.dataset,
            "description": self.subscription.describe(),
            "scenesListed": self.listed,
            "added": h.added if h else [],
            "replaced": h.replaced if h else [],
            "gone": self.gone,
            "removed": self.removed,
            "filesDownloaded": h.files_downloaded if h else 0,
            "filesFailed": self.files_failed,
            "bytesDownloaded": h.bytes_downloaded if h else 0,
            "bytesToFetch": h.bytes_planned if h else 0,
            "failures": h.failures if h else [],
            **({"planned": h.planned} if h and h.planned else {}),
        }


@dataclass
class SyncResult:
    """What ``sync`` did; ``to_dict()`` is what ``sync --json`` prints."""

    out: Path
    dry_run: bool = False
    subscriptions: list[SubscriptionReport] = field(default_factory=list)
    catalog: Any = None
    crops: list[Any] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def files_failed(self) -> int:
        return sum(r.files_failed for r in self.subscriptions)

    @property
    def ok(self) -> bool:
        crops_ok = all(c.action != "failed" for c in self.crops)
        return not self.files_failed and crops_ok and (self.catalog is None or not self.catalog.errors)

    @property
    def current(self) -> bool:
        """Nothing was (or, in a dry run, would be) added, replaced or removed."""
        return not any(
            r.gone or (r.harvest and (r.harvest.added or r.harvest.replaced)) for r in self.subscriptions
        )

    def total(self, key: str) -> int:
        return sum(len(v) if isinstance(v := r.to_dict()[key], list) else v for r in self.subscriptions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "dryRun": self.dry_run,
            "current": self.current,
            "subscriptions": [r.to_dict() for r in self.subscriptions],
            "added": self.total("added"),
            "replaced": self.total("replaced"),
            "gone": self.total("gone"),
            "removed": self.total("removed"),
            "filesDownloaded": self.total("filesDownloaded"),
            "filesFailed": self.files_failed,
            "bytesDownloaded": self.total("bytesDownloaded"),
            "bytesToFetch": self.total("bytesToFetch"),
            "catalog": self.catalog.to_dict() if self.catalog is not None else None,
            "cropStacks": [c.to_dict() for c in self.crops],
            "apiCalls": dict(sorted(self.api_calls.items())),
            "apiCallsTotal": sum(self.api_calls.values()),
            "elapsedSeconds": round(self.elapsed, 3),
        }


def read_subscriptions(mirror: Mirror) -> list[Subscription]:
    """The mirror's subscriptions, read from a copy of its ledger (nothing is written)."""
    if not mirror.ledger_path.exists():
        raise InvalidInput(
            "out",
            f"{mirror.root} is not a stacmirror mirror (no .stacmirror/ledger.sqlite); harvest into it first",
        )
    with Ledger.snapshot(mirror) as ledger:
        return [
            Subscription(r["id"], r["spec"], r["created"], r["last_run"], r["scenes"])
            for r in ledger.subscriptions()
        ]


@dataclass
class _Plan:
    """Phase 1's answer for one subscription."""

    subscription: Subscription
    options: Any  # HarvestOptions
    scenes: list[Scene]  # what the harvest runs over: its choice plus the members still listed
    listed: dict[str, Scene]
    members: set[str]


def run_sync(
    client: M2MClient,
    out: Path | str,
    *,
    dry_run: bool = False,
    prune: bool = False,
    keep_superseded: bool = False,
    catalog: bool = True,
    on_event: ev.EventHandler | None = None,
    **harvest_options: Any,
) -> SyncResult:
    """Sync ``out`` with ``client``'s service (see the module docstring). ``out`` may be a store URL:
    the state is then pulled into the cache (under the store's lock) and the harvests, swaps and
    deletions go to the store."""
    from .harvester.run import Harvest
    from .storage import StoreMirror, is_store_url

    started = time.monotonic()
    emit = ev.emitter(on_event)
    store = StoreMirror.open(str(out)) if is_store_url(out) else None
    if store is not None:
        store.pull_state()  # into the cache: the subscriptions and what each holds
    mirror = store.local if store is not None else Mirror(Path(out))
    target = store.url if store is not None else mirror.root
    subscriptions = read_subscriptions(mirror)
    if not subscriptions:
        raise InvalidInput(
            "out",
            f"{mirror.root} has no subscriptions (each harvest records one; see: stacmirror subscriptions)",
        )
    lock = store if store is not None else MirrorLock(mirror)
    lock.check_free()  # busy: refused before the first API call
    result = SyncResult(out, dry_run=dry_run)
    plans = [
        _search(client, mirror, target, s, dry_run, keep_superseded, harvest_options, emit)
        for s in subscriptions
    ]
    if not dry_run:
        lock.acquire()
    try:
        if store is not None and not dry_run:
            store.pull_state()  # under the lock, as a harvest does
        for plan in plans:
            report = SubscriptionReport(plan.subscription, listed=len(plan.listed))
            harvest = Harvest(client, plan.options, on_event, locked=True, store=store)
            report.harvest = harvest.run(scenes=plan.scenes, files=files_of(plan.subscription.spec))
            result.subscriptions.append(report)
        _gone(mirror, plans, result, prune, apply=not dry_run, emit=emit, store=store)
        if store is not None and prune and not dry_run:
            store.push_state()
        for report in result.subscriptions:
            emit(
                ev.SubscriptionSynced(
                    report.subscription.id,
                    len(report.harvest.added if report.harvest else []),
                    len(report.harvest.replaced if report.harvest else []),
                    len(report.gone),
                    report.files_failed,
                )
            )
        if not dry_run and catalog:
            _catalog_and_crops(mirror, target, result, on_event, store)
    finally:
        if not dry_run:
            lock.release()
    result.elapsed = time.monotonic() - started
    return result


def _search(client, mirror, target, subscription, dry_run, keep_superseded, harvest_options, emit) -> _Plan:
    """Phase 1 for one subscription: its listing, and the scenes its harvest runs over."""
    from .harvester.run import listing

    def bad(message: str) -> InvalidInput:
        return InvalidInput(
            "subscription", f"subscription {subscription.id} ({subscription.dataset}): {message}"
        )

    try:
        options = options_of(
            target,
            subscription.id,
            subscription.spec,
            dry_run=dry_run,
            keep_superseded=keep_superseded,
            command=f"sync (subscription {subscription.id})",
            **harvest_options,
        )
        chosen, listed = listing(client, options)
    except InvalidInput as exc:
        if exc.field == "dataset":
            raise bad("the dataset no longer exists at the service") from None
        raise bad(exc.message) from None
    emit(ev.SubscriptionSearched(subscription.id, subscription.dataset, len(listed)))
    with Ledger.snapshot(mirror) as ledger:
        members = ledger.members(subscription.id)
    chosen_ids = {s.entity_id for s in chosen}
    held = [listed[e] for e in sorted(members) if e in listed and e not in chosen_ids]
    return _Plan(subscription, options, [*chosen, *held], listed, members)


def _gone(
    mirror: Mirror, plans: list[_Plan], result: SyncResult, prune: bool, *, apply: bool, emit, store=None
) -> None:
    """Held products whose acquisition a subscription had, and no subscription lists any more:
    reported, and with ``prune`` removed (a dry run lists them as to remove, and removes nothing)."""
    from .harvester.swap import remove_product

    listed = {e for plan in plans for e in plan.listed}
    held_keys = None
    if store is not None:  # one listing stands in for a folder test per product
        held_keys = {k.rsplit("/", 1)[0] for p in plans for k in store.sizes(p.subscription.dataset)}
    reports = {r.subscription.id: r for r in result.subscriptions}
    with Ledger(mirror) if prune and apply else Ledger.snapshot(mirror) as ledger:
        for plan in plans:
            report = reports[plan.subscription.id]
            for entity in sorted(plan.members - listed):
                for held in ledger.scenes_of_entity(entity):
                    there = (
                        held["folder"] in held_keys
                        if held_keys is not None
                        else (mirror.root / held["folder"]).is_dir()
                    )
                    if not there:
                        continue
                    report.gone.append(held["display_id"])
                    if prune:
                        report.removed.append(held["display_id"])
                    if prune and apply:
                        remove_product(mirror, ledger, held["dataset"], held["display_id"], store)
                    emit(ev.ProductGone(held["display_id"], prune and apply))
                if prune and apply:
                    ledger.drop_member(entity)


def _catalog_and_crops(mirror: Mirror, target, result: SyncResult, on_event, store=None) -> None:
    """The catalog (and items.parquet) in step, then the crops of changed stacks, then the catalog
    again if crops changed (it links the crop collections)."""
    from .api import build_catalog
    from .cropper.refresh import refresh_crops
    from .executors import executor_for

    result.catalog = build_catalog(target, on_event=on_event)
    changed = {
        r["old"] for rep in result.subscriptions for r in (rep.harvest.replaced if rep.harvest else [])
    }
    changed |= {d for rep in result.subscriptions for d in rep.removed}
    if changed and mirror.crop_collections():
        with executor_for(None, workers=None) as (pool, _):
            result.crops = refresh_crops(mirror, changed, pool, store.url if store is not None else None)
        for crop in result.crops:
            ev.emitter(on_event)(ev.Note(f"crops {crop.stack_id}: {crop.action} {crop.detail}".strip()))
        if result.crops:
            result.catalog = build_catalog(target, on_event=on_event)
