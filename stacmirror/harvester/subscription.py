"""Subscriptions: what a harvest asked for, kept in the mirror's ledger so that ``sync`` re-runs it.

A subscription is the selection (dataset, area or regions, dates or an open end, cloud and
metadata filters, limits) plus what to fetch (mode, bands or file groups and the file names they
resolved to, bundles kept, browse images). A harvest records one, or finds the one it repeats by
its key; the acquisitions it chose become the subscription's members, which sync keeps current.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import mapping, shape

from ..errors import InvalidInput
from .options import HarvestOptions
from .selection import Selection

# what the user asked for; the resolved file names follow from it and are not part of the key
DERIVED = ("files", "groups")


def subscription_spec(options: HarvestOptions, suffixes: set[str] | None, groups: set[str] | None) -> dict:
    """The subscription a harvest with these options records (JSON-ready)."""
    sel = options.selection
    return {
        "dataset": sel.dataset,
        "start": sel.start.isoformat(),
        "end": None if sel.open_end else sel.end.isoformat(),
        "area": mapping(sel.area) if sel.area is not None else None,
        "cloudMin": sel.cloud_min,
        "cloudMax": sel.cloud_max,
        "satellite": sel.satellite,
        "path": sel.path,
        "row": sel.row,
        "tier": sel.tier,
        "filters": [list(pair) for pair in sel.filters],
        "maxScenes": options.max_scenes,
        "regions": [mapping(r) for r in options.regions] if options.regions else None,
        "perRegion": options.per_region,
        "mode": options.mode,
        "bands": list(options.bands),
        "fileGroups": list(options.file_groups),
        "keepTar": options.keep_tar,
        "browse": options.browse,
        "files": sorted(suffixes) if suffixes else None,
        "groups": sorted(groups) if groups else None,
    }


def spec_key(spec: dict[str, Any]) -> str:
    wanted = {k: v for k, v in spec.items() if k not in DERIVED}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def selection_of(spec: dict[str, Any]) -> Selection:
    """The subscription's selection; an open end ends today."""
    selection = Selection(
        spec["dataset"],
        spec["start"],
        spec["end"],
        cloud_min=spec.get("cloudMin"),
        cloud_max=spec.get("cloudMax"),
        satellite=spec.get("satellite"),
        path=spec.get("path"),
        row=spec.get("row"),
        tier=spec.get("tier"),
        filters=[f"{label}={value}" for label, value in spec.get("filters") or []],
    )
    if spec.get("area"):
        selection = selection.with_area(shape(spec["area"]))
    return selection


def options_of(out: Path, subscription: int, spec: dict[str, Any], **overrides: Any) -> HarvestOptions:
    """The harvest options that re-run a subscription into ``out``."""
    return HarvestOptions(
        out=out,
        selection=selection_of(spec),
        mode=spec["mode"],
        bands=spec.get("bands") or [],
        file_groups=spec.get("fileGroups") or [],
        keep_tar=bool(spec.get("keepTar")),
        max_scenes=spec.get("maxScenes"),
        regions=[shape(r) for r in spec["regions"]] if spec.get("regions") else None,
        per_region=spec.get("perRegion"),
        browse=spec.get("browse", True),
        subscription=subscription,
        **overrides,
    )


def files_of(spec: dict[str, Any]) -> tuple[set[str] | None, set[str] | None] | None:
    """The (file suffixes, file groups) the harvest resolved, or None when it did not record them."""
    if spec["mode"] == "bundle":
        return None, None
    if spec["mode"] == "bands" and spec.get("files"):
        return set(spec["files"]), None
    if spec["mode"] == "band-group" and spec.get("files") and spec.get("groups"):
        return set(spec["files"]), set(spec["groups"])
    return None


@dataclass(frozen=True)
class Subscription:
    """One recorded harvest request; ``to_dict()`` is what ``subscriptions --json`` lists."""

    id: int
    spec: dict[str, Any]
    created: str
    last_run: str | None
    scenes: int  # acquisitions it holds

    @property
    def dataset(self) -> str:
        return str(self.spec["dataset"])

    def describe(self) -> str:
        """One line: dataset, dates, area, filters, what is fetched."""
        spec = self.spec
        parts = [spec["dataset"], f"{spec['start']}..{spec['end'] or 'today (open)'}"]
        if spec.get("area"):
            west, south, east, north = shape(spec["area"]).bounds
            parts.append(f"area {west:.4g},{south:.4g},{east:.4g},{north:.4g}")
        if spec.get("regions"):
            parts.append(f"{len(spec['regions'])} region(s)")
            if spec.get("perRegion"):
                parts.append(f"{spec['perRegion']} per region")
        for name, label in (("cloudMin", "cloud>="), ("cloudMax", "cloud<="), ("satellite", "satellite "),
                            ("path", "path "), ("row", "row "), ("tier", "tier ")):  # fmt: skip
            if spec.get(name) is not None:
                parts.append(f"{label}{spec[name]}")
        parts += [f"{label}={value}" for label, value in spec.get("filters") or []]
        if spec.get("maxScenes"):
            parts.append(f"at most {spec['maxScenes']} scenes")
        what = {
            "bands": ",".join(spec.get("bands") or []),
            "band-group": ",".join(spec.get("fileGroups") or []),
        }
        parts.append(f"{spec['mode']} {what.get(spec['mode'], '')}".strip())
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "lastRun": self.last_run,
            "scenes": self.scenes,
            "openEnd": self.spec.get("end") is None,
            **{k: v for k, v in self.spec.items() if k not in DERIVED},
        }


def check_number(subscriptions: list[Subscription], number: Any) -> Subscription:
    """The subscription numbered ``number``, or InvalidInput listing the numbers there are."""
    for found in subscriptions:
        if found.id == number:
            return found
    known = ", ".join(str(s.id) for s in subscriptions) or "none"
    raise InvalidInput("remove", f"no subscription {number!r} (the mirror has: {known})")
