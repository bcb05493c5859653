"""The emulated M2M JSON API: request in, envelope out, with per-user state.

This module knows nothing about HTTP; :mod:`.server` feeds it. Behaviour
follows ``shared/m2m/API.md`` §11: the envelope and its field order, error
codes with the HTTP statuses seen live, one request in flight per user,
two-hour sliding key expiry, the ``[]``-for-empty-object quirk, the
last-page ``nextRecord`` quirk, duplicate products kept under their first
label, and download quotas.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point, Polygon, box, shape

from .catalogue import (
    BAND_FILE_PRODUCT,
    DATASETS,
    GROUP_LABELS,
    PRIMARY_OF,
    PRODUCTS,
    RETIRED,
    FilterSpec,
    file_groups,
    filters_for,
    product_suffixes,
    secondary_entity_id,
)
from .products import ProductStore
from .scenes import SceneRecord

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


class Service:
    """The API. ``handle`` returns (HTTP status, envelope) for one request."""

    def __init__(
        self,
        scenes: list[SceneRecord],
        store: ProductStore,
        *,
        users: dict[str, tuple[str, bool]] | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.scenes = scenes
        self.by_entity = {s.entity_id: s for s in scenes}
        self.by_display = {
            s.display_id(lv): (s, lv)
            for s in scenes
            for lv in (1, 2)
            if lv == 1 or s.l2_generated is not None
        }
        self.store = store
        self.faults = faults or Faults()
        self.clock = clock
        self.base_url = "http://127.0.0.1"
        self.users = {
            name: User(name, token, machine, contact_id=1000 + i)
            for i, (name, (token, machine)) in enumerate((users or {"demo": ("demo-token", True)}).items())
        }
        self.keys: dict[str, ApiKey] = {}
        self.queue: dict[int, QueueItem] = {}
        self._request_ids = itertools.count(225_951_215)
        self._download_ids = itertools.count(659_719_300)
        self._session_ids = itertools.count(48_213_211)
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self.stats: dict[str, int] = {
            "rate_limited": 0,
            "requests": 0,
            "auth_header_to_files": 0,
            "range_requests": 0,
            "file_requests": 0,
            "expired_urls": 0,
        }

    # -- envelope ------------------------------------------------------------------------

    def envelope(
        self,
        data: Any = None,
        error: ApiError | None = None,
        session: int | None = None,
        version: str | None = "stable",
    ) -> dict[str, Any]:
        with self._lock:
            request_id = next(self._request_ids)
        if error is not None and error.code == "AUTH_EXPIRED":
            return {
                "requestId": 0,
                "version": None,
                "sessionId": None,
                "data": None,
                "errorCode": error.code,
                "errorMessage": error.message,
            }
        return {
            "requestId": request_id,
            "version": version,
            "sessionId": session,
            "data": data,
            "errorCode": error.code if error else None,
            "errorMessage": error.message if error else None,
        }

    def handle(
        self, version: str, endpoint: str, body: bytes, api_key: str | None, sso_cookie: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        self.stats["requests"] += 1
        if version not in VERSIONS:
            return 500, self.envelope(error=ApiError("VERSION_UNKNOWN", "Unknown version used"), version=None)
        handler = getattr(self, "ep_" + endpoint.replace("-", "_"), None)
        if handler is None and endpoint not in ("login-token", "login-sso"):
            return 404, self.envelope(error=ApiError("NOT_FOUND", "Invalid Endpoint."), version=version)
        try:
            text = body.decode("utf-8").strip() if body else ""
            payload = json.loads(text) if text else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, self.envelope(error=ApiError("INPUT_FORMAT", "JSON payload could not be parsed"))
        payload = payload if isinstance(payload, dict) else {}
        try:
            if endpoint == "login-token":
                return 200, self.envelope(self.login_token(payload, api_key), version=version)
            if endpoint == "login-sso":
                return 200, self.envelope(self.login_sso(sso_cookie), version=version)
            key = self._authenticate(api_key)
            if endpoint.startswith(DOWNLOAD_ENDPOINTS_PREFIX) and not key.user.machine:
                raise ApiError("AUTH_UNAUTHROIZED", "Your account does not have access to this endpoint")
            if not key.user.busy.acquire(blocking=False):
                self.stats["rate_limited"] += 1
                raise ApiError("RATE_LIMIT", "User attempted to run multiple requests at a time")
            try:
                if self.faults.api_latency:
                    time.sleep(self.faults.api_latency)
                data = handler(key, payload)
            finally:
                key.user.busy.release()
            return 200, self.envelope(data, session=key.session_id, version=version)
        except ApiError as exc:
            return exc.status, self.envelope(error=exc, version=version)

    # -- auth ----------------------------------------------------------------------------

    def login_token(self, payload: dict[str, Any], stale_key: str | None) -> str:
        if stale_key and self.faults.stale_key_breaks_login:
            raise ApiError("AUTH_INVALID", "An API key may not be sent with a login request")
        for name in ("username", "token"):
            if not payload.get(name):
                raise ApiError(
                    "INPUT_PARAMETER_REQUIRED", f"The parameter {name} is required and was not supplied", 500
                )
        user = self.users.get(str(payload["username"]))
        if user is None or not hmac.compare_digest(user.token, str(payload["token"])):
            raise ApiError("AUTH_INVALID", "User credential verification failed")
        raw = json.dumps({"cid": user.contact_id, "s": str(int(self.clock())), "n": secrets.token_hex(8)})
        key = base64.b64encode(raw.encode()).decode().rstrip("=")
        with self._lock:
            self.keys[key] = ApiKey(user, self.clock(), session_id=next(self._session_ids))
        return key

    def login_sso(self, cookie: str | None) -> dict[str, str]:
        """``login-sso``: an ERS session cookie (here ``<username>:<token>``) -> ``{apiKey, username}``."""
        name, _, token = (cookie or "").partition(":")
        key = self.login_token({"username": name, "token": token}, None)
        return {"apiKey": key, "username": name}

    def _authenticate(self, api_key: str | None) -> ApiKey:
        with self._lock:
            key = self.keys.get(api_key or "")
            if key is None or not key.valid:
                raise ApiError("AUTH_KEY_INVALID", "Invalid API Key")
            now = self.clock()
            key.calls += 1
            idle = now - key.last_used > self.faults.key_idle_seconds
            exhausted = self.faults.expire_key_after and key.calls > self.faults.expire_key_after
            if idle or exhausted:
                key.valid = False
                raise ApiError("AUTH_EXPIRED", "API key has expired due to inactivity")
            key.last_used = now
            return key

    def ep_logout(self, key: ApiKey, payload: dict[str, Any]) -> None:
        key.valid = False
        return None

    def ep_permissions(self, key: ApiKey, payload: dict[str, Any]) -> list[str]:
        return ["user", "download", "order"] if key.user.machine else ["user"]

    def ep_notifications(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if not payload.get("systemId"):
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", "The parameter systemId is required and was not supplied", 500
            )
        return []

    # -- datasets ------------------------------------------------------------------------

    def _dataset(self, payload: dict[str, Any], name: str = "datasetName"):
        alias = str(payload.get(name) or "").lower()
        if not alias:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", f"The parameter {name} is required and was not supplied", 500
            )
        if alias in RETIRED:
            raise ApiError("DATASET_AUTH", "Dataset status is unavailable to this user")
        info = DATASETS.get(alias)
        if info is None:
            raise ApiError("DATASET_INVALID", f"Invalid dataset: {payload.get(name)}")
        return info

    def _dataset_json(self, info) -> dict[str, Any]:
        count = len(self._scenes_of(info)) if info.level else 0
        newest = max((s.acquired for s in self.scenes), default=dt.date.today())
        return {
            "abstractText": f"{info.collection_name} (emulated)",
            "acquisitionStart": info.start,
            "acquisitionEnd": None,
            "catalogs": ["EE"],
            "collectionName": info.collection_name,
            "collectionLongName": info.collection_name,
            "datasetId": info.dataset_id,
            "datasetAlias": info.alias,
            "datasetCategoryName": info.category,
            "dataOwner": "LSAA",
            "dateUpdated": "2024-08-20 00:00:00-05",
            "doiNumber": info.doi,
            "ingestFrequency": "P1D",
            "keywords": "Landsat",
            "legacyId": None,
            "sceneCount": count,
            "spatialBounds": {"north": 82.7, "east": 194.4, "south": -82.7, "west": -180.0},
            "temporalCoverage": json.dumps([f"{info.start} 00:00:00-05", f"{newest} 00:00:00-05"]),
            "supportCloudCover": info.level > 0,
            "supportDeletionSearch": True,
            "allowInKmz": False,
        }

    def ep_dataset_search(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        query = str(payload.get("datasetName") or "").lower()
        found = [
            d
            for d in DATASETS.values()
            if not query or query in d.alias or query in d.collection_name.lower()
        ]
        return [self._dataset_json(d) for d in found]

    def ep_dataset(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("datasetId"):
            for info in DATASETS.values():
                if info.dataset_id == payload["datasetId"]:
                    return self._dataset_json(info)
            raise ApiError("DATASET_INVALID", f"Invalid dataset id: {payload['datasetId']}")
        return self._dataset_json(self._dataset(payload))

    def ep_dataset_filters(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        info = self._dataset(payload)
        out = []
        for spec in filters_for(info.alias):
            config: dict[str, Any] = {
                "type": spec.kind,
                "filters": [],
                "validators": [],
                "numElements": 0,
                "displayListId": None,
            }
            if spec.kind == "Text":
                config["filters"] = [{"type": "StringToUpper"}, {"type": "Application\\Filter\\Like"}]
            out.append(
                {
                    "id": spec.filter_id,
                    "legacyFieldId": None,
                    "dictionaryLink": f"https://www.usgs.gov/centers/eros/science/landsat-data-dictionary#{spec.label}",
                    "fieldConfig": config,
                    "fieldLabel": spec.label,
                    "searchSql": spec.search_sql,
                    "valueList": ({"": "All", **spec.values} if spec.values else []),
                }
            )
        return out

    def ep_dataset_file_groups(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        if not info.level or not info.secondary:
            return {"primary": [], "secondary": []}
        secondary = DATASETS[info.secondary]
        product_id, product_name = BAND_FILE_PRODUCT[info.level]
        groups: dict[str, dict[str, Any]] = {}
        for order, suffix in enumerate(product_suffixes(info.level)):
            for group in file_groups(info.level, suffix):
                entry = groups.setdefault(
                    group,
                    {
                        "id": group,
                        "label": GROUP_LABELS[group],
                        "description": GROUP_LABELS[group],
                        "displayOrder": len(groups),
                        "color": None,
                        "icon": None,
                        "files": [],
                    },
                )
                entry["files"].append(
                    {
                        "name": suffix,
                        "productName": product_name,
                        "displayOrder": order,
                        "productIds": {self._pid(product_id): "ls_s3"},
                    }
                )
        return {"primary": [], "secondary": {secondary.dataset_id: groups}}

    # -- search --------------------------------------------------------------------------

    def _scenes_of(self, info) -> list[SceneRecord]:
        if not info.synthetic:
            return []
        level = info.level or 2
        return [s for s in self.scenes if level == 1 or s.l2_generated is not None]

    def ep_scene_search(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        level = info.level or 2
        max_results = int(payload.get("maxResults") or 100)
        max_results = max(1, min(max_results, MAX_RESULTS_CAP))
        start = max(1, int(payload.get("startingNumber") or 1))
        scene_filter = payload.get("sceneFilter") or {}
        matches = [s for s in self._scenes_of(info) if self._matches(s, level, info.alias, scene_filter)]
        descending = str(payload.get("sortDirection") or "DESC").upper() != "ASC"
        matches.sort(key=lambda s: (s.acquired, s.entity_id), reverse=descending)
        page = matches[start - 1 : start - 1 + max_results]
        total = len(matches)
        next_record = start + len(page)
        if next_record > total and not self.faults.next_record_past_end:
            next_record = total  # the live service points back at totalHits on the last page
        metadata_type = payload.get("metadataType")
        return {
            "results": [self._scene_json(s, level, metadata_type) for s in page],
            "recordsReturned": len(page),
            "totalHits": total,
            "totalHitsAccuracy": "exact" if scene_filter else "approximate",
            "isCustomized": False,
            "numExcluded": 0,
            "startingNumber": start,
            "nextRecord": next_record,
        }

    def ep_scene_metadata(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        wanted = str(payload.get("entityId") or "")
        id_type = payload.get("idType") or "entityId"
        for scene in self._scenes_of(info):
            ids = {
                "entityId": scene.entity_id,
                "orderingId": scene.entity_id,
                "displayId": scene.display_id(info.level or 2),
            }
            if ids.get(id_type) == wanted:
                data = self._scene_json(scene, info.level or 2, payload.get("metadataType") or "full")
                data["orderingId"] = scene.entity_id
                return data
        raise ApiError("NOT_FOUND", f"Scene not found: {wanted}")

    def _scene_json(self, scene: SceneRecord, level: int, metadata_type: str | None) -> dict[str, Any]:
        ring = [[round(x, 6), round(y, 6)] for x, y in scene.footprint_lonlat]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        pid = scene.display_id(level)
        published = (scene.l2_generated if level == 2 else scene.l1_generated) or scene.l1_generated
        metadata: list[dict[str, Any]] = []
        if metadata_type in ("summary", "full"):
            fields = [
                ("Landsat Product Identifier L2" if level == 2 else "Landsat Product Identifier L1", pid),
                ("Landsat Scene Identifier", scene.entity_id),
                ("Date Acquired", f"{scene.acquired:%Y/%m/%d}"),
                ("Collection Category", scene.tier),
                ("Collection Number", "2"),
                ("WRS Path", f" {scene.path:03d}"),
                ("WRS Row", f" {scene.row:03d}"),
                ("Land Cloud Cover", f"{scene.cloud_cover_land:.2f}"),
                ("Scene Cloud Cover L1", f"{scene.cloud_cover:.2f}"),
                ("Satellite", str(scene.satellite)),
                ("Sensor Identifier", "OLI_TIRS"),
            ]
            if metadata_type == "full":
                fields += [
                    ("Sun Elevation L0RA", f"{scene.sun_elevation:.8f}"),
                    ("Sun Azimuth L0RA", f"{scene.sun_azimuth:.8f}"),
                    ("Nadir/Off Nadir", "NADIR"),
                    ("Image Quality", "9"),
                    ("Start Time", f"{scene.scene_time:%Y:%j:%H:%M:%S.%f}"),
                ]
            metadata = [
                {
                    "id": f"5e83d14f{i:08x}",
                    "fieldName": name,
                    "dictionaryLink": "https://www.usgs.gov/centers/eros/science/landsat-data-dictionary",
                    "value": value,
                }
                for i, (name, value) in enumerate(fields)
            ]
        browse_base = f"{self.base_url}/gen-browse?type=refl&product_id={pid}"
        return {
            "browse": [
                {
                    "id": f"5e83a{scene.seed:011x}",
                    "browseRotationEnabled": None,
                    "browseName": "LandsatLook Natural Color Preview Image",
                    "browsePath": f"{browse_base}&size=rrb",
                    "overlayPath": None,
                    "overlayType": "dmid_wms",
                    "thumbnailPath": f"{browse_base}&size=thumb",
                }
            ],
            "cloudCover": f"{scene.cloud_cover:.2f}",
            "entityId": scene.entity_id,
            "displayId": pid,
            "orderingId": None,
            "metadata": metadata,
            "hasCustomizedMetadata": False,
            "options": {"bulk": True, "download": True, "order": True, "secondary": False},
            "selected": None,
            "spatialBounds": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [min(lons), min(lats)],
                        [min(lons), max(lats)],
                        [max(lons), max(lats)],
                        [max(lons), min(lats)],
                        [min(lons), min(lats)],
                    ]
                ],
            },
            "spatialCoverage": {"type": "Polygon", "coordinates": [ring]},
            "temporalCoverage": {
                "startDate": f"{scene.acquired} 00:00:00",
                "endDate": f"{scene.acquired} 00:00:00",
            },
            "publishDate": f"{published:%Y-%m-%d %H:%M:%S}-05",
        }

    def _matches(self, scene: SceneRecord, level: int, alias: str, f: dict[str, Any]) -> bool:
        acquisition = f.get("acquisitionFilter") or {}
        day = scene.acquired.isoformat()
        if acquisition.get("start") and day < str(acquisition["start"])[:10]:
            return False
        if acquisition.get("end") and day > str(acquisition["end"])[:10]:
            return False
        ingest = f.get("ingestFilter") or {}
        published = ((scene.l2_generated if level == 2 else None) or scene.l1_generated).date().isoformat()
        if ingest.get("start") and published < str(ingest["start"])[:10]:
            return False
        if ingest.get("end") and published > str(ingest["end"])[:10]:
            return False
        cloud = f.get("cloudCoverFilter")
        if cloud:
            low, high = float(cloud.get("min", 0)), float(cloud.get("max", 100))
            if not low <= scene.cloud_cover <= high:
                return False
        months = f.get("seasonalFilter")
        if months and scene.acquired.month not in [int(m) for m in months]:
            return False
        spatial = f.get("spatialFilter")
        if spatial and not parse_spatial(spatial).intersects(Polygon(scene.footprint_lonlat)):
            return False
        metadata = f.get("metadataFilter")
        if metadata:
            specs = {spec.filter_id: spec for spec in filters_for(alias)}
            return self._metadata_matches(scene, level, metadata, specs)
        return True

    def _metadata_matches(
        self, scene: SceneRecord, level: int, f: dict[str, Any], specs: dict[str, FilterSpec]
    ) -> bool:
        kind = str(f.get("filterType") or "").lower()
        if kind in ("and", "or"):
            results = [self._metadata_matches(scene, level, c, specs) for c in f.get("childFilters") or []]
            return all(results) if kind == "and" else any(results)
        spec = specs.get(str(f.get("filterId")))
        if spec is None:
            raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid filterId: {f.get('filterId')}", 500)
        actual = spec.field(scene, level)
        if kind == "between":
            low, high = f.get("firstValue"), f.get("secondValue")
            if isinstance(actual, str):
                return (low is None or actual >= str(low)) and (high is None or actual <= str(high))
            return (low is None or float(actual) >= float(low)) and (
                high is None or float(actual) <= float(high)
            )
        if kind == "value":
            value = str(f.get("value") or "").upper()
            text = str(actual).upper()
            if str(f.get("operand") or "=").lower() == "like":
                pattern = value.replace("%", "*").replace("_", "?")
                if "*" not in pattern:
                    pattern = f"*{pattern}*"
                return fnmatch.fnmatchcase(text, pattern)
            return text == value
        raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid filterType: {f.get('filterType')}", 500)

    # -- scene lists ---------------------------------------------------------------------

    def _list(self, user: User, list_id: str) -> dict[str, list[str]]:
        """A scene list, forgotten once its timeToLive has passed."""
        expiry = user.list_expiry.get(list_id)
        if expiry is not None and self.clock() > expiry:
            user.lists.pop(list_id, None)
            user.list_expiry.pop(list_id, None)
        return user.lists.get(list_id, {})

    def ep_scene_list_add(self, key: ApiKey, payload: dict[str, Any]) -> int:
        list_id = str(payload.get("listId") or "")
        if not list_id:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", "The parameter listId is required and was not supplied", 500
            )
        info = self._dataset(payload)
        ids = payload.get("entityIds")
        if ids is None and payload.get("entityId"):
            ids = [payload["entityId"]]
        if not isinstance(ids, list):
            raise ApiError("INPUT_PARAMETER_INVALID", "entityIds must be an array", 500)
        if payload.get("idField") == "displayId":
            ids = [self.by_display[i][0].entity_id for i in map(str, ids) if i in self.by_display]
        known = {s.entity_id for s in self._scenes_of(DATASETS[PRIMARY_OF.get(info.alias, info.alias)])}
        self._list(key.user, list_id)
        if payload.get("timeToLive"):
            key.user.list_expiry[list_id] = self.clock() + iso_duration(str(payload["timeToLive"]))
        entries = key.user.lists.setdefault(list_id, {}).setdefault(info.alias, [])
        total = sum(len(v) for v in key.user.lists[list_id].values())
        added = 0
        for entity_id in map(str, ids):
            if entity_id in known and entity_id not in entries:
                if total + added >= SCENE_LIST_CAP:
                    raise ApiError("INPUT_INVALID", "The scene list cannot exceed 50,000 items")
                entries.append(entity_id)
                added += 1
        return added

    def ep_scene_list_get(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, str]]:
        lists = self._list(key.user, str(payload.get("listId") or ""))
        return [{"entityId": e, "datasetName": d} for d, ids in lists.items() for e in ids]

    def ep_scene_list_remove(self, key: ApiKey, payload: dict[str, Any]) -> None:
        list_id = str(payload.get("listId") or "")
        if payload.get("datasetName"):
            key.user.lists.get(list_id, {}).pop(str(payload["datasetName"]).lower(), None)
        else:
            key.user.lists.pop(list_id, None)
        return None

    def _pid(self, product_id: str) -> str:
        """Product ids as currently served (rotating them is its own inverse)."""
        return product_id[::-1] if self.faults.rotate_product_ids else product_id

    def ep_scene_list_summary(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        list_id = str(payload.get("listId") or "")
        lists = self._list(key.user, list_id)
        wanted = str(payload.get("datasetName") or "").lower()
        datasets = []
        for alias, ids in lists.items():
            if wanted and alias != wanted:
                continue
            scenes = [self.by_entity[i] for i in ids if i in self.by_entity]
            dates = sorted(s.acquired.isoformat() for s in scenes)
            datasets.append(
                {
                    "datasetName": alias,
                    "sceneCount": len(scenes),
                    "temporalExtent": {
                        "min": dates[0] if dates else None,
                        "max": dates[-1] if dates else None,
                    },
                }
            )
        total = sum(d["sceneCount"] for d in datasets)
        return {
            "summary": {
                "sceneCount": str(total),  # a string, as live
                "temporalExtent": {
                    "min": min(
                        (d["temporalExtent"]["min"] for d in datasets if d["temporalExtent"]["min"]),
                        default=None,
                    ),
                    "max": max(
                        (d["temporalExtent"]["max"] for d in datasets if d["temporalExtent"]["max"]),
                        default=None,
                    ),
                },
            },
            "datasets": datasets,
        }

    def ep_scene_list_types(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for list_id in list(key.user.lists):
            lists = self._list(key.user, list_id)
            if lists:
                out.append(
                    {
                        "list": list_id,
                        "sceneCount": sum(len(v) for v in lists.values()),
                        "listTimeout": key.user.list_expiry.get(list_id),
                    }
                )
        return out

    # -- download options ----------------------------------------------------------------

    def _requested_scenes(
        self, key: ApiKey, payload: dict[str, Any], level: int, alias: str
    ) -> list[SceneRecord]:
        if not DATASETS[alias].synthetic:
            return []
        if payload.get("listId"):
            ids = self._list(key.user, str(payload["listId"])).get(alias, [])
        else:
            raw = payload.get("entityIds") or []
            ids = raw.split(",") if isinstance(raw, str) else [str(i) for i in raw]
        scenes = [self.by_entity.get(i.strip()) for i in ids]
        return [s for s in scenes if s is not None and (level == 1 or s.l2_generated is not None)]

    def ep_download_options(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        info = self._dataset(payload)
        level = info.level
        if not level:
            raise ApiError("DATASET_ERROR", "This dataset does not support download-options by scene")
        with_groups = bool(payload.get("includeSecondaryFileGroups"))
        out = []
        for scene in self._requested_scenes(key, payload, level, info.alias):
            files = self.store.files(scene, level)
            pid = scene.display_id(level)
            secondaries = [
                self._secondary_json(scene, level, suffix, files[suffix], with_groups)
                for suffix in product_suffixes(level)
            ]
            for product in PRODUCTS[level]:
                tar = files["tar"]
                out.append(
                    {
                        "id": self._pid(product.product_id),
                        "displayId": pid,
                        "entityId": scene.entity_id,
                        "datasetId": info.dataset_id,
                        "available": product.available,
                        "filesize": tar.size if product.bundle else 0,
                        "productName": product.name,
                        "productCode": product.code,
                        "bulkAvailable": product.available,
                        "downloadSystem": product.system,
                        "downloadName": None if product.bundle else "C2L2 Tile Product Files",
                        "secondaryDownloads": secondaries if not product.bundle or product.available else [],
                        "checksum": _checksum(tar) if product.bundle else None,
                    }
                )
        return out

    def _secondary_json(self, scene, level, suffix, pfile, with_groups) -> dict[str, Any]:
        product_id, product_name = BAND_FILE_PRODUCT[level]
        pid = scene.display_id(level)
        entry = {
            "id": self._pid(product_id),
            "displayId": f"{pid}_{suffix}",
            "entityId": secondary_entity_id(level, pid, suffix),
            "datasetId": DATASETS[DATASETS[f"landsat_ot_c2_l{level}"].secondary].dataset_id,
            "available": True,
            "filesize": pfile.size,
            "productName": product_name,
            "productCode": None,
            "bulkAvailable": True,
            "downloadSystem": "ls_s3",
            "secondaryDownloads": [],
            "displayOrder": product_suffixes(level).index(suffix),
            "checksum": _checksum(pfile),
        }
        if with_groups:
            entry["fileGroups"] = file_groups(level, suffix)
        return entry

    # -- download queue ------------------------------------------------------------------

    def _resolve_download(
        self, entity_id: str, product_id: str
    ) -> tuple[SceneRecord, int, str | None] | None:
        """A (scene entityId, bundle productId) or (secondary entityId, band-file productId) pair."""
        product_id = self._pid(product_id)  # back to the canonical id
        scene = self.by_entity.get(entity_id)
        if scene is not None:
            for level, products in PRODUCTS.items():
                for product in products:
                    if product.product_id == product_id and product.bundle:
                        if level == 2 and scene.l2_generated is None:
                            return None
                        return scene, level, None
            return None
        for level, (band_product, _) in BAND_FILE_PRODUCT.items():
            if product_id != band_product:
                continue
            prefix = "L1_" if level == 1 else ("L2SR_", "L2ST_")
            if not entity_id.startswith(prefix):
                return None
            pid = entity_id.split("_", 1)[1][:40]
            found = self.by_display.get(pid)
            if found is None or found[1] != level:
                return None
            for suffix in product_suffixes(level):
                if secondary_entity_id(level, pid, suffix) == entity_id:
                    return found[0], level, suffix
        return None

    def _count_download(self, user: User) -> None:
        now = self.clock()
        user.recent_downloads = [t for t in user.recent_downloads if now - t < 900]
        pending = sum(1 for q in self.queue.values() if q.user == user.name and q.status == "Preparing")
        if (
            len(user.recent_downloads) >= self.faults.recent_download_limit
            or pending >= self.faults.pending_download_limit
        ):
            raise ApiError("RATE_LIMIT_USER_DL", "User has reached download-related rate limits")
        user.recent_downloads.append(now)

    def ep_download_request(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        label = payload.get("label")
        if label is not None and len(str(label)) > 50:
            raise ApiError("INPUT_PARAMETER_INVALID", "label must be 50 characters or fewer", 500)
        wanted: list[tuple[str, str, str | None]] = []
        for item in payload.get("downloads") or []:
            wanted.append((str(item.get("entityId")), str(item.get("productId")), item.get("label")))
        for group in payload.get("dataGroups") or []:
            wanted += self._data_group_items(key, group)
        request_id = next(self._request_ids)
        default_label = label or f"m2m_{request_id}_{dt.datetime.now():%Y%m%d%H%M%S}"
        result: dict[str, Any] = {
            "availableDownloads": [],
            "preparingDownloads": [],
            "failed": [],
            "newRecords": {},
            "duplicateProducts": {},
            "numInvalidScenes": 0,
        }
        with self._lock:
            for entity_id, product_id, item_label in wanted:
                resolved = self._resolve_download(entity_id, product_id)
                if resolved is None:
                    result["numInvalidScenes"] += 1
                    continue
                scene, level, suffix = resolved
                existing = next(
                    (
                        q
                        for q in self.queue.values()
                        if q.user == key.user.name
                        and q.entity_id == entity_id
                        and q.product_id == product_id
                        and q.status not in ("Removed", "Complete")
                    ),
                    None,
                )
                if existing is not None:
                    result["duplicateProducts"][str(existing.download_id)] = existing.label
                    continue
                self._count_download(key.user)
                download_id = next(self._download_ids)
                never = (
                    bool(self.faults.never_ready_every) and download_id % self.faults.never_ready_every == 0
                )
                item = QueueItem(
                    download_id,
                    key.user.name,
                    str(label or item_label or default_label),
                    level,
                    scene,
                    suffix,
                    product_id,
                    entity_id,
                    scene.display_id(level) + (f"_{suffix}" if suffix else ""),
                    polls_left=self.faults.preparing_polls,
                    never_ready=never,
                    status="Preparing"
                    if self.faults.preparing_polls or never
                    else ("Proxied" if suffix else "Available"),
                )
                self.queue[download_id] = item
                result["newRecords"][str(download_id)] = item.label
                ready = item.status != "Preparing"
                entry = {
                    "downloadId": download_id,
                    "eulaCode": None,
                    "entityId": entity_id,
                    "url": self.url_for(item) if ready else self._staging_url(item),
                }
                result["availableDownloads" if ready else "preparingDownloads"].append(entry)
            for name in ("newRecords", "duplicateProducts"):
                if not result[name]:
                    result[name] = []  # the PHP artefact: an empty object is sent as []
        result["remainingLimits"] = self._remaining(key.user)
        return result

    def _data_group_items(self, key: ApiKey, group: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        """``dataGroups``: file groups of the scenes in a list of the band-file dataset [inferred]."""
        secondary = str(group.get("datasetName") or "").lower()
        primary = PRIMARY_OF.get(secondary)
        if primary is None:
            raise ApiError("DATASET_INVALID", f"Invalid dataset: {group.get('datasetName')}")
        level = DATASETS[primary].level
        wanted_groups = set(group.get("fileGroups") or [])
        ids = key.user.lists.get(str(group.get("listId") or ""), {}).get(secondary, [])
        band_product = self._pid(BAND_FILE_PRODUCT[level][0])
        items = []
        for entity_id in ids:
            scene = self.by_entity.get(entity_id)
            if scene is None:
                continue
            pid = scene.display_id(level)
            for suffix in product_suffixes(level):
                if wanted_groups & set(file_groups(level, suffix)):
                    items.append((secondary_entity_id(level, pid, suffix), band_product, group.get("label")))
        return items

    def _remaining(self, user: User) -> list[dict[str, Any]]:
        recent = self.faults.recent_download_limit - len(user.recent_downloads)
        pending = self.faults.pending_download_limit - sum(
            1 for q in self.queue.values() if q.user == user.name and q.status == "Preparing"
        )
        unattempted = self.faults.pending_download_limit - sum(
            1
            for q in self.queue.values()
            if q.user == user.name and not q.attempted and q.status in ("Available", "Proxied")
        )
        counts = {
            "recentDownloadCount": recent,
            "pendingDownloadCount": pending,
            "unattemptedDownloadCount": unattempted,
        }
        return [
            {"limitType": "user", "username": user.name, **counts},
            {"limitType": "ip", "ipAddress": "127.0.0.1", **counts},
        ]

    def ep_download_retrieve(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        label = payload.get("label")
        available, requested, queued = [], [], 0
        with self._lock:
            for item in self.queue.values():
                if item.user != key.user.name or (label and item.label != label):
                    continue
                if item.status == "Preparing":
                    if not item.never_ready:
                        if item.polls_left <= 0:
                            item.status = "Proxied" if item.suffix else "Available"
                        item.polls_left -= 1
                    if item.status == "Preparing":
                        queued += 1
                        requested.append(self._record(item, url=None))
                        continue
                if item.status == "Available":
                    available.append(self._record(item, url=self.url_for(item)))
                elif item.status == "Proxied":
                    requested.append(self._record(item, url=self.url_for(item)))
        return {"available": available, "requested": requested, "queueSize": queued, "eulas": []}

    def _record(self, item: QueueItem, url: str | None) -> dict[str, Any]:
        pfile = self._file_of(item)
        codes = {"Available": "A", "Proxied": "P", "Preparing": "Q", "Complete": "C"}
        return {
            "downloadId": item.download_id,
            "label": item.label,
            "entityId": item.entity_id,
            "displayId": item.display_id,
            "datasetId": DATASETS[f"landsat_ot_c2_l{item.level}"].dataset_id,
            "collectionName": DATASETS[f"landsat_ot_c2_l{item.level}"].collection_name,
            "productCode": None,
            "productName": None,
            "filesize": pfile.size,
            "eulaCode": None,
            "statusCode": codes.get(item.status, "X"),
            "statusText": item.status,
            "url": url,
            "checksum": _checksum(pfile),
        }

    def _file_of(self, item: QueueItem):
        files = self.store.files(item.scene, item.level)
        return files[item.suffix or "tar"]

    def ep_download_search(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        label = payload.get("label")
        active = bool(payload.get("activeOnly"))
        return [
            self._record(q, url=None)
            for q in self.queue.values()
            if q.user == key.user.name
            and (not label or q.label == label)
            and q.status != "Removed"
            and not (active and q.status in ("Complete", "Proxied"))
        ]

    def ep_download_labels(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        labels: dict[str, list[QueueItem]] = {}
        for q in self.queue.values():
            if q.user == key.user.name and q.status != "Removed":
                labels.setdefault(q.label, []).append(q)
        return [
            {
                "label": name,
                "dateEntered": int(self.clock() * 1000),
                "downloadCount": len(items),
                "downloadSize": sum(self._file_of(q).size for q in items),
                "totalComplete": sum(q.status == "Complete" for q in items),
            }
            for name, items in labels.items()
        ]

    def ep_download_remove(self, key: ApiKey, payload: dict[str, Any]) -> bool:
        item = self.queue.get(int(payload.get("downloadId") or 0))
        if item is not None and item.user == key.user.name:
            item.status = "Removed"
        return True  # the same answer for unknown ids, as live

    def ep_download_order_remove(self, key: ApiKey, payload: dict[str, Any]) -> int:
        label = payload.get("label")
        if not label:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", "The parameter label is required and was not supplied", 500
            )
        removed = 0
        for item in self.queue.values():
            if item.user == key.user.name and item.label == label and item.status != "Removed":
                item.status = "Removed"
                removed += 1
        return removed

    def ep_download_complete_proxied(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        updated = 0
        for entry in payload.get("proxiedDownloads") or []:
            item = self.queue.get(int(entry.get("downloadId") or 0))
            if item is not None and item.user == key.user.name:
                item.status = "Complete"
                updated += 1
        return {"failed": [], "updatedDownloadsCount": updated}

    def ep_rate_limit_summary(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        limits = {
            "recentDownloadCount": self.faults.recent_download_limit,
            "pendingDownloadCount": self.faults.pending_download_limit,
            "unattemptedDownloadCount": self.faults.pending_download_limit,
        }
        return {
            "initialLimits": [limits],
            "remainingLimits": self._remaining(key.user),
            "recentDownloadCounts": [],
        }

    # -- signed URLs ---------------------------------------------------------------------

    def _sign(self, download_id: int, product: str, generated: str) -> str:
        mac = hmac.new(self._signing_key, f"{download_id}|{product}|{generated}".encode(), hashlib.sha256)
        return "$5$$" + mac.hexdigest()

    def url_for(self, item: QueueItem) -> str:
        generated = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).isoformat(timespec="seconds")
        user = self.users[item.user]
        signature = {
            "downloadApp": "M2M",
            "contactId": user.contact_id,
            "downloadId": item.download_id,
            "dateGenerated": generated,
            "id": item.display_id,
            "signature": self._sign(item.download_id, item.display_id, generated),
        }
        token = base64.urlsafe_b64encode(json.dumps(signature).encode()).decode()
        pid = item.scene.display_id(item.level)
        if item.suffix is None:
            return f"{self.base_url}/gen-bundle?landsat_product_id={pid}&requestSignature={token}"
        s = item.scene
        return (
            f"{self.base_url}/data/collection02/level-{item.level}/standard/oli-tirs/{s.acquired.year}/"
            f"{s.path:03d}/{s.row:03d}/{pid}/{pid}_{item.suffix}?requestSignature={token}"
        )

    def _staging_url(self, item: QueueItem) -> str:
        token = base64.urlsafe_b64encode(json.dumps({"id": item.download_id}).encode()).decode()
        return f"{self.base_url}/download-staging/{token}"

    def check_signature(self, token: str, display_id: str) -> QueueItem:
        """The queue item a signed URL grants; raises PermissionError (403) when invalid or expired."""
        try:
            signature = json.loads(base64.urlsafe_b64decode(token.encode()))
            download_id = int(signature["downloadId"])
            generated = str(signature["dateGenerated"])
        except (ValueError, KeyError, TypeError):
            raise PermissionError("malformed signature") from None
        expected = self._sign(download_id, str(signature.get("id")), generated)
        if (
            not hmac.compare_digest(expected, str(signature.get("signature")))
            or signature.get("id") != display_id
        ):
            raise PermissionError("bad signature")
        age = self.clock() - dt.datetime.fromisoformat(generated).timestamp()
        with self._lock:
            self.stats["file_requests"] += 1
            forced = self.stats["file_requests"] <= self.faults.expired_urls_first
            if forced:
                self.stats["expired_urls"] += 1
        if forced or age > self.faults.url_ttl:
            raise PermissionError("signature expired")
        item = self.queue.get(download_id)
        if item is None or item.status in ("Removed", "Preparing"):
            raise PermissionError("no such download")
        item.attempted = True
        return item


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
