"""Emulator state shared by the endpoint modules: errors, fault flags, users, keys, the queue."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point, box, shape

from .scenes import SceneRecord

DISABLED_MESSAGE = (
    "This download has been temporarily disabled. Please try again at a later time. "
    "We apologize for the inconvenience."
)
VERSIONS = ("stable", "development", "experimental")
MAX_RESULTS_CAP = 50_000
SCENE_LIST_CAP = 50_000
DOWNLOAD_ENDPOINTS_PREFIX = "download-"


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Faults:
    """Misbehaviour on demand, for the reliability tests (0 disables a fault)."""

    api_5xx_every: int = 0  # every Nth API request: HTTP 503 with an HTML page
    api_html_every: int = 0  # every Nth API request: HTTP 200 with an HTML page
    expire_key_after: int = 0  # a key expires after N authenticated calls
    preparing_polls: int = 0  # new items stay preparing for N download-retrieve polls
    never_ready_every: int = 0  # every Nth requested item never becomes ready
    file_cut_every: int = 0  # every Nth file download: connection cut mid-body
    file_5xx_every: int = 0  # every Nth file download: 502 CloudFront page
    file_html_every: int = 0  # every Nth file download: 200 with an HTML error body
    file_429_every: int = 0  # every Nth file download: 429
    url_ttl: float = 24 * 3600.0  # signed URL lifetime; expired -> 403
    no_range: bool = False  # answer Range requests with the full file (200)
    throttle_bps: int = 0  # cap each file transfer at this many bytes/s
    api_latency: float = 0.0  # seconds each API request takes
    key_idle_seconds: float = 2 * 3600.0
    next_record_past_end: bool = False  # False: last page says nextRecord == totalHits (live quirk)
    recent_download_limit: int = 15_000
    pending_download_limit: int = 20_000
    stale_key_breaks_login: bool = True
    expired_urls_first: int = 0  # the first N file requests get 403 as if their URL had expired
    rotate_product_ids: bool = False  # serve other product ids, as when USGS changed them in 2022
    unattempted_download_limit: int = 20_000
    downloads_disabled: bool = False  # the distribution system is down: requests fail, a notification says so
    forgotten_labels: tuple[str, ...] = ()  # download-retrieve by these labels lists nothing
    browse_broken: bool = False  # browse URLs answer with an HTML page
    clock_skew: float = 0.0  # seconds the Date header is off from the real time
    withhold_suffix: str = ""  # download-options leaves out this band file of every scene
    retired_datasets: tuple[str, ...] = ()  # aliases the service no longer offers (DATASET_INVALID)
    withdrawn: tuple[str, ...] = ()  # entity ids scene-search no longer lists (removed from the archive)


@dataclass
class User:
    name: str
    token: str
    machine: bool = True
    contact_id: int = 0
    lists: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    list_expiry: dict[str, float] = field(default_factory=dict)
    recent_downloads: list[float] = field(default_factory=list)
    busy: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ApiKey:
    user: User
    last_used: float
    calls: int = 0
    session_id: int = 0
    valid: bool = True


@dataclass
class QueueItem:
    download_id: int
    user: str
    label: str
    level: int
    scene: SceneRecord
    suffix: str | None  # None: the bundle
    product_id: str
    entity_id: str
    display_id: str
    polls_left: int
    never_ready: bool
    status: str = "Available"  # Preparing -> Available/Proxied -> Complete; Removed
    attempted: bool = False
    handed_over: bool = False  # download-retrieve has listed it with its URL


def iso_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as ``P1D``, ``PT2H`` or ``P1M`` (a month counts 30 days)."""
    match = re.fullmatch(
        r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?",
        text.strip().upper(),
    )
    if not match or text.strip().upper() in ("P", "PT"):
        raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid timeToLive: {text}", 500)
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((((years * 365 + months * 30 + weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60) + seconds


def _checksum(pfile) -> list[dict[str, Any]]:
    return [{"id": "cksum", "value": pfile.cksum}, {"id": "sha256sum", "value": pfile.sha256}]


def parse_spatial(spatial: dict[str, Any]):
    """A shapely geometry from an M2M spatialFilter (mbr, or geojson in either encoding)."""
    kind = str(spatial.get("filterType") or "").lower()
    try:
        if kind == "mbr":
            ll, ur = spatial["lowerLeft"], spatial["upperRight"]
            west, south = float(ll["longitude"]), float(ll["latitude"])
            east, north = float(ur["longitude"]), float(ur["latitude"])
            if (west, south) == (east, north):
                return Point(west, south)
            return box(west, south, east, north)
        if kind == "geojson":
            geo = dict(spatial.get("geoJson") or {})
            geo["coordinates"] = _standard_coordinates(geo.get("type"), geo.get("coordinates"))
            return shape(geo)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid spatialFilter: {exc}", 500) from None
    raise ApiError(
        "INPUT_PARAMETER_INVALID", f"Invalid spatialFilter filterType: {spatial.get('filterType')}", 500
    )


def _standard_coordinates(kind: Any, coords: Any) -> Any:
    """Accept DT's ``{latitude, longitude}`` objects (flat outer ring for polygons) too."""

    def point(p: Any) -> list[float]:
        return [float(p["longitude"]), float(p["latitude"])] if isinstance(p, dict) else [float(v) for v in p]

    if kind == "Point":
        return point(coords)
    if kind == "Polygon":
        if coords and isinstance(coords[0], dict):
            return [[point(p) for p in coords]]
        return [[point(p) for p in ring] for ring in coords]
    if kind == "MultiPolygon":
        out = []
        for polygon in coords:
            if polygon and isinstance(polygon[0], dict):
                out.append([[point(p) for p in polygon]])
            else:
                out.append([[point(p) for p in ring] for ring in polygon])
        return out
    return coords


@dataclass(frozen=True)
class Variation:
    """The details ``shared/m2m/API.md`` leaves open or marks unverified, each served one way.

    Seed 0 is the documented behaviour. Any other seed picks, for field number k, option
    ``(seed + k) % len(options)``, so a few consecutive seeds serve every option of every field.
    """

    browse_format: str = "jpeg"  # jpeg | png | webp: the documentation does not say which
    numbers_as_strings: bool = False  # cloudCover, counts and sizes sent as strings
    extra_fields: bool = False  # fields no documentation mentions, on every record
    optional_fields: str = "present"  # present | null | absent: optional fields
    empty_object: str = "list"  # list ([], as live) | dict ({}): an empty newRecords/duplicateProducts
    gzip: bool = False  # gzip-encoded API bodies
    redirect_files: bool = False  # file hosts answer 302 to where the bytes are
    no_content_length: bool = False  # file bodies delimited by closing the connection
    header_case: str = "title"  # title | lower | upper
    slow_first_byte: float = 0.0  # seconds before a file's first byte
    bare_request_entries: bool = False  # availableDownloads entries are only {downloadId, eulaCode, url}
    drop_after_handover: bool = False  # download-retrieve lists an URL once, then drops the entry
    bundle_size_differs: bool = False  # M2M's filesize for bundles is not the bytes served
    staging_urls_in_requested: bool = False  # preparing items carry a /download-staging/ URL
    unknown_cloud_every: int = 0  # every Nth scene has cloudCover -1 in search results

    OPTIONS = (
        ("browse_format", ("jpeg", "png", "webp")),
        ("numbers_as_strings", (False, True)),
        ("extra_fields", (True, False)),
        ("optional_fields", ("present", "null", "absent")),
        ("empty_object", ("list", "dict")),
        ("gzip", (True, False)),
        ("redirect_files", (False, True)),
        ("no_content_length", (True, False)),
        ("header_case", ("title", "lower", "upper")),
        ("slow_first_byte", (0.0, 0.3)),
        ("bare_request_entries", (True, False)),
        ("drop_after_handover", (False, True)),
        ("bundle_size_differs", (True, False)),
        ("staging_urls_in_requested", (False, True)),
        ("unknown_cloud_every", (0, 3)),
    )

    @classmethod
    def from_seed(cls, seed: int) -> Variation:
        if not seed:
            return cls()
        return cls(
            **{name: options[(seed + k) % len(options)] for k, (name, options) in enumerate(cls.OPTIONS)}
        )

    def describe(self) -> str:
        default = Variation()
        changed = [
            f"{n}={getattr(self, n)}" for n, _ in self.OPTIONS if getattr(self, n) != getattr(default, n)
        ]
        return ", ".join(changed) or "documented behaviour"
