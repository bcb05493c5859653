"""This run's items in the user's M2M download queue: requested, matched to files, polled, cleaned up.

Downloads are keyed by ``downloadId``, the one id every answer carries. Live
``download-request`` entries may hold only ``{downloadId, eulaCode, url}``, so a
downloadId is matched to its file by the entity id when given, else by the URL
(a bundle URL names its product, a band-file URL its file), else by
``download-search`` on the label. The expected set is the keys of
``newRecords`` and ``duplicateProducts``: a requested file outside it was
refused, and fails at once. Polling stops when every expected item has a URL,
or when nothing is left queued; a ``/download-staging/`` URL is not a URL yet.
A duplicate whose old label no longer lists it (a crashed earlier run) is
removed and requested again under this run's label. Requests go out in waves
that fit the quotas in ``remainingLimits``; cleanup removes this run's labels
only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from ..m2m import M2MClient, ReadyDownload
from .plan import Want

log = logging.getLogger(__name__)

REQUEST_CHUNK = 1_000  # items per download-request ("large numbers have been leading to issues")
READY_STATUSES = {"a", "p", "available", "proxied", "complete", "c"}
QUOTA_MARGIN = 10  # leave a few downloads of each quota for whatever else the user runs


def usable(ready: ReadyDownload, *, from_available: bool = False) -> bool:
    """Whether a URL can be fetched now: a staging URL is a placeholder until the status says ready."""
    if not ready.url:
        return False
    if "/download-staging/" not in ready.url:
        return True
    return from_available or str(ready.status or "").lower() in READY_STATUSES


def file_named_by(url: str | None) -> str | None:
    """The product (bundle) or file name a download URL names, if it names one."""
    if not url:
        return None
    parts = urlsplit(url)
    product = parse_qs(parts.query).get("landsat_product_id")
    if product:
        return product[0]
    last = unquote(parts.path.rsplit("/", 1)[-1])
    return last if "_" in last and "." in last else None


@dataclass
class Entry:
    want: Want
    download_id: int
    label: str
    ready: ReadyDownload | None = None
    re_requested: bool = False
    failed: bool = False


@dataclass
class Limits:
    """What the quotas still allow (None: not known yet)."""

    recent: int | None = None
    pending: int | None = None
    unattempted: int | None = None

    @classmethod
    def from_json(cls, limits: Iterable[dict]) -> Limits:
        user = next((lim for lim in limits if lim.get("limitType") == "user"), None)
        if user is None:
            return cls()

        def number(name: str) -> int | None:
            value = user.get(name)
            try:
                return int(str(value).strip())
            except (TypeError, ValueError):
                return None

        return cls(
            number("recentDownloadCount"), number("pendingDownloadCount"), number("unattemptedDownloadCount")
        )

    def room(self) -> int | None:
        known = [v for v in (self.recent, self.pending, self.unattempted) if v is not None]
        return max(0, min(known) - QUOTA_MARGIN) if known else None


@dataclass
class DownloadQueue:
    client: M2MClient
    label: str
    note: Callable[[str, str], None]
    entries: dict[int, Entry] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    own_labels: set[str] = field(default_factory=set)
    _searched: dict[str, list[ReadyDownload]] = field(default_factory=dict)

    # -- requesting ------------------------------------------------------------------------------

    def wave_size(self) -> int:
        room = self.limits.room()
        return REQUEST_CHUNK if room is None else min(REQUEST_CHUNK, room)

    def refresh_limits(self) -> None:
        summary = self.client.rate_limit_summary()
        self.limits = Limits.from_json(summary.get("remainingLimits") or [])

    def request(self, wants: list[Want]) -> tuple[list[Entry], list[tuple[Want, str]]]:
        """Request ``wants``: (entries with a usable URL now, (want, reason) refused)."""
        result = self.client.download_request(
            self.label, downloads=[{"entityId": w.entity_id, "productId": w.product_id} for w in wants]
        )
        self.own_labels.add(self.label)
        if result.remaining_limits:
            self.limits = Limits.from_json(result.remaining_limits)
        expected = {**{i: self.label for i in result.new_records}, **result.duplicate_products}
        answered = {d.download_id: (d, True) for d in result.available}
        answered.update(
            {d.download_id: (d, False) for d in result.preparing if d.download_id not in answered}
        )
        unmatched = {w.entity_id: w for w in wants}
        ready_now: list[Entry] = []
        for download_id, (ready, available) in answered.items():
            want = self._match(ready, unmatched)
            if want is None:
                continue
            entry = self._add(want, download_id, expected.get(download_id, ready.label or self.label))
            if usable(ready, from_available=available):
                entry.ready = ready
                ready_now.append(entry)
        for download_id, label in expected.items():
            if download_id not in self.entries and unmatched:
                record = self._search(label, download_id)
                want = self._match(record, unmatched) if record else None
                if want is not None:
                    self._add(want, download_id, label)
        reasons = [str(f.get("errorMessage") or f) if isinstance(f, dict) else str(f) for f in result.failed]
        why = "; ".join(dict.fromkeys(reasons)) or "not accepted into the download queue"
        refused = [(w, f"refused by M2M: {why}") for w in unmatched.values()]
        if result.num_invalid_scenes:
            self.note(f"M2M found {result.num_invalid_scenes} requested item(s) invalid", "warning")
        return ready_now, refused

    def _add(self, want: Want, download_id: int, label: str) -> Entry:
        entry = Entry(want, download_id, label)
        self.entries[download_id] = entry
        return entry

    @staticmethod
    def _match(ready: ReadyDownload, unmatched: dict[str, Want]) -> Want | None:
        if ready.entity_id and str(ready.entity_id) in unmatched:
            return unmatched.pop(str(ready.entity_id))
        names = {ready.display_id, file_named_by(ready.url)} - {None}
        for key, want in unmatched.items():
            if want.name in names or (want.kind == "bundle" and want.display_id in names):
                return unmatched.pop(key)
        return None

    def _search(self, label: str, download_id: int) -> ReadyDownload | None:
        """The queue record of ``download_id`` under ``label``, by ``download-search`` (once a label)."""
        if label not in self._searched:
            self._searched[label] = self.client.download_search(label)
        return next((r for r in self._searched[label] if r.download_id == download_id), None)

    # -- polling ---------------------------------------------------------------------------------

    def waiting(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.ready is None and not e.failed]

    def poll_once(self) -> tuple[list[Entry], list[Entry]]:
        """One round of ``download-retrieve`` over the labels still awaited: (ready, gone for good)."""
        ready, gone = [], []
        by_label: dict[str, list[Entry]] = {}
        for entry in self.waiting():
            by_label.setdefault(entry.label, []).append(entry)
        for label, entries in sorted(by_label.items()):
            answer = self.client.download_retrieve(label)
            listed = {d.download_id: d for d in answer.available + answer.requested}
            for entry in entries:
                found = listed.get(entry.download_id)
                if found is not None and usable(found):
                    entry.ready = found
                    ready.append(entry)
                elif found is None and answer.queue_size == 0:
                    gone.append(entry)  # not listed, nothing queued: it will not come under this label
        return ready, gone

    def re_request(self, entries: list[Entry]) -> tuple[list[Entry], list[tuple[Want, str]]]:
        """Remove stale duplicates (their old label lost them) and ask for them again under ours."""
        for entry in entries:
            entry.re_requested = True
            self.client.download_remove(entry.download_id)
            del self.entries[entry.download_id]
        ready, refused = self.request([e.want for e in entries])
        for new in self.entries.values():
            if any(new.want is e.want for e in entries):
                new.re_requested = True
        return ready, refused

    def fresh_url(self, entry: Entry) -> str | None:
        """A new signed URL for an entry whose URL expired, from ``download-retrieve``."""
        for label in dict.fromkeys([entry.label, self.label]):
            for found in self.client.download_retrieve(label).with_urls():
                if found.download_id == entry.download_id and usable(found):
                    entry.ready = found
                    return str(found.url)
        return None

    # -- cleanup ---------------------------------------------------------------------------------

    def cleanup(self, completed: dict[int, int]) -> None:
        """Leave the user's queue as we found it: this run's labels only."""
        if completed:
            try:
                self.client.download_complete_proxied(dict(completed))
            except Exception as exc:  # cleanup must not hide the real outcome
                log.warning("download-complete-proxied failed: %s", exc)
        for label in sorted(self.own_labels):
            try:
                self.client.download_order_remove(label)
            except Exception as exc:
                log.warning("could not remove download order %s: %s", label, exc)


def sleep_until(deadline: float, interval: float) -> None:
    time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
