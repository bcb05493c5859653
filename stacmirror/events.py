"""Typed progress events: how the library tells its caller what is happening.

Every long operation takes ``on_event``, a callable that receives these frozen
dataclasses in the order things happen. The library never prints; the CLI
renders events (rich bars on a terminal, plain lines otherwise, JSON lines on
request), and a notebook or service can do what it likes with them. Events
may arrive from worker threads, so a handler must be thread-safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base class; ``to_dict()`` gives ``{"event": "<snake_case name>", ...fields}``."""

    def to_dict(self) -> dict[str, Any]:
        return {"event": event_name(type(self)), **dataclasses.asdict(self)}


def event_name(cls: type) -> str:
    name = cls.__name__
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


EventHandler = Callable[[Event], None]


def emitter(on_event: EventHandler | None) -> EventHandler:
    """``on_event`` itself, or a handler that drops everything."""
    return on_event if on_event is not None else _drop


def _drop(event: Event) -> None:
    return None


# -- anything -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note(Event):
    """Something the user should know that is not a failure (``level`` "info" or "warning")."""

    message: str
    level: str = "info"


@dataclass(frozen=True)
class Waiting(Event):
    """The service asked us to wait (throttling, download quota); work resumes by itself."""

    message: str


# -- harvest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchDone(Event):
    dataset: str
    scenes: int


@dataclass(frozen=True)
class FilesPlanned(Event):
    """The files that will be fetched, before the first byte moves."""

    files: int
    bytes: int
    dry_run: bool = False


@dataclass(frozen=True)
class FileStarted(Event):
    path: str  # relative to the mirror root
    name: str
    size: int | None
    resumed_from: int = 0


@dataclass(frozen=True)
class BytesTransferred(Event):
    path: str
    amount: int


@dataclass(frozen=True)
class FileVerified(Event):
    path: str
    name: str
    size: int
    resumed_from: int = 0


@dataclass(frozen=True)
class FileFailed(Event):
    path: str
    name: str
    reason: str


@dataclass(frozen=True)
class TransfersDone(Event):
    downloaded: int
    failed: int


@dataclass(frozen=True)
class ProductReplaced(Event):
    """A newer product of an acquisition (reprocessed, or Real-Time become Tier 1/2) took the old
    one's place; the old one is gone from the catalog (kept aside only with keep_superseded)."""

    old: str
    new: str


# -- sync ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSearched(Event):
    subscription: int
    dataset: str
    scenes: int


@dataclass(frozen=True)
class ProductGone(Event):
    """A product the mirror holds that no subscription's search lists any more, nothing replacing it:
    kept and reported, or removed with ``prune``."""

    display_id: str
    removed: bool


@dataclass(frozen=True)
class SubscriptionSynced(Event):
    subscription: int
    added: int
    replaced: int
    gone: int
    failed: int


# -- catalog ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogStarted(Event):
    scenes: int


@dataclass(frozen=True)
class ItemWritten(Event):
    item_id: str
    path: str  # relative to the mirror root


@dataclass(frozen=True)
class ItemFailed(Event):
    path: str
    reason: str


@dataclass(frozen=True)
class CatalogDone(Event):
    written: int
    unchanged: int
    removed: int
    errors: int


# -- crop ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackCropped(Event):
    stack_id: str
    items: int
    files: int
    unchanged: bool
    errors: int
