"""The emulated M2M JSON API: request in, envelope out, with per-user state.

This module knows nothing about HTTP; :mod:`.server` feeds it. Behaviour
follows ``shared/m2m/API.md`` §11: the envelope and its field order, error
codes with the HTTP statuses seen live, one request in flight per user,
two-hour sliding key expiry, the ``[]``-for-empty-object quirk, the
last-page ``nextRecord`` quirk, duplicate products kept under their first
label, and download quotas.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .ep_auth import AuthEndpoints
from .ep_datasets import DatasetEndpoints
from .ep_downloads import DownloadEndpoints
from .ep_lists import SceneListEndpoints
from .ep_scenes import SceneEndpoints
from .products import ProductStore
from .scenes import SceneRecord
from .state import DOWNLOAD_ENDPOINTS_PREFIX, VERSIONS, ApiError, ApiKey, Faults, QueueItem, User, Variation


class Service(AuthEndpoints, DatasetEndpoints, SceneEndpoints, SceneListEndpoints, DownloadEndpoints):
    """The API. ``handle`` returns (HTTP status, envelope) for one request; endpoints live in the mixins."""

    def __init__(
        self,
        scenes: list[SceneRecord],
        store: ProductStore,
        *,
        users: dict[str, tuple[str, bool]] | None = None,
        faults: Faults | None = None,
        variation: Variation | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.set_scenes(scenes)
        self.store = store
        self.faults = faults or Faults()
        self.variation = variation or Variation()
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
            "file_bytes": 0,  # file body bytes sent (a resumed harvest is judged by them)
        }

    def count_bytes(self, n: int) -> None:
        with self._lock:
            self.stats["file_bytes"] += n

    def set_scenes(self, scenes: list[SceneRecord]) -> None:
        """The archive the service lists from now on (the emulator's clock moved)."""
        by_entity = {s.entity_id: s for s in scenes}
        by_display = {
            s.display_id(lv): (s, lv)
            for s in scenes
            for lv in (1, 2)
            if lv == 1 or s.l2_generated is not None
        }
        self.scenes, self.by_entity, self.by_display = scenes, by_entity, by_display

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
