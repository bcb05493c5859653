"""What a harvest is asked to do, checked before anything is requested or written, and what it did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..storage import is_store_url
from .download import TransferPolicy
from .selection import Selection

MODES = ("bands", "bundle", "band-group")
MAX_WORKERS = 10  # the service tolerates a few parallel transfers per user


def _names(value: str | Iterable[str] | None) -> list[str]:
    """``"red,nir08"`` or ``["red", "nir08"]`` as a clean list."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [str(p).strip() for p in parts if str(p).strip()]


@dataclass
class HarvestOptions:
    out: Path | str  # a folder, or an object store's URL (s3://bucket/prefix)
    selection: Selection
    mode: str | None = None
    bands: list[str] = field(default_factory=list)
    file_groups: list[str] = field(default_factory=list)
    keep_tar: bool = False
    max_scenes: int | None = None
    regions: list[Any] | None = None  # shapely geometries, one search each
    per_region: int | None = None
    workers: int = 4
    poll_interval: float = 30.0
    poll_timeout: float = 3600.0
    dry_run: bool = False
    browse: bool = True
    command: str = "harvest"
    transfer: TransferPolicy = field(default_factory=TransferPolicy)
    keep_superseded: bool = False  # replaced products go to OUT/.stacmirror/superseded/, not deleted
    subscription: int | None = None  # the subscription re-run (sync); None: the harvest records its own
    fsync: bool = False  # flush each file to disk before its rename (see TransferPolicy.fsync)

    def __post_init__(self) -> None:
        self.out = self.out.rstrip("/") if is_store_url(self.out) else Path(self.out)
        self.bands = _names(self.bands)
        self.file_groups = _names(self.file_groups)
        if self.fsync and not self.transfer.fsync:
            self.transfer = replace(self.transfer, fsync=True)
        self.check()

    def check(self) -> None:
        """Option consistency: every problem the options show by themselves, as InvalidInput."""
        if not isinstance(self.selection, Selection):
            kind = type(self.selection).__name__
            raise InvalidInput("selection", f"must be a stacmirror.Selection, got {kind}")
        self.mode = self.mode or ("bands" if self.bands else "bundle")
        if self.mode not in MODES:
            raise InvalidInput("mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "bands" and not self.bands:
            raise InvalidInput("bands", "mode 'bands' needs bands (e.g. red,nir08,qa_pixel,MTL)")
        if self.mode != "bands" and self.bands:
            raise InvalidInput("bands", f"only apply to mode 'bands', not {self.mode!r}")
        if self.mode != "band-group" and self.file_groups:
            raise InvalidInput("file_groups", "only apply to mode 'band-group'")
        if self.per_region is not None and not self.regions:
            raise InvalidInput("per_region", "needs regions")
        for name in ("per_region", "max_scenes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInput(name, f"must be a whole number >= 1, got {value!r}")
        if not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS:
            raise InvalidInput(
                "workers", f"must be a whole number from 1 to {MAX_WORKERS}, got {self.workers!r}"
            )
        if self.poll_interval <= 0 or self.poll_timeout < 0:
            raise InvalidInput("poll_interval", "poll_interval must be > 0 and poll_timeout >= 0")
        if isinstance(self.out, str):
            if self.keep_tar:
                raise InvalidInput(
                    "keep_tar", "an object-store mirror keeps no tar (bundles unpack as they stream)"
                )
        elif self.out.exists() and not self.out.is_dir():
            raise InvalidInput("out", f"{self.out} exists and is not a folder")
        if self.regions is None and self.selection.area is None:
            raise InvalidInput("area", "none given: give one, or regions")


@dataclass
class HarvestResult:
    """What a harvest found, fetched and failed; ``to_dict()`` is what ``harvest --json`` prints."""

    out: Path
    scenes_found: int = 0
    scenes_complete_before: int = 0
    files_downloaded: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    bytes_downloaded: int = 0
    failures: list[str] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    api_calls: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    catalog: Any = None  # the CatalogResult of the catalog step, when it ran
    added: list[str] = field(default_factory=list)  # products new to the mirror
    replaced: list[dict[str, str]] = field(default_factory=list)  # {"old": id, "new": id}
    bytes_planned: int = 0  # a dry run: the bytes it would fetch
    subscription: int | None = None

    @property
    def ok(self) -> bool:
        return not self.files_failed and (self.catalog is None or not self.catalog.errors)

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "out": str(self.out),
            "scenesFound": self.scenes_found,
            "scenesAlreadyComplete": self.scenes_complete_before,
            "filesDownloaded": self.files_downloaded,
            "filesSkipped": self.files_skipped,
            "filesFailed": self.files_failed,
            "bytesDownloaded": self.bytes_downloaded,
            "apiCalls": dict(sorted(self.api_calls.items())),
            "apiCallsTotal": sum(self.api_calls.values()),
            "elapsedSeconds": round(self.elapsed, 3),
            "failures": self.failures,
            "productsAdded": self.added,
            "productsReplaced": self.replaced,
        }
        if self.subscription is not None:
            report["subscription"] = self.subscription
        if self.dry_run:
            report["bytesPlanned"] = self.bytes_planned
        if self.planned:
            report["planned"] = self.planned
        if self.catalog is not None:
            report["catalog"] = self.catalog.to_dict()
        return report
