"""The emulated login, logout, permissions, notifications and download quota summary.

A mixin of :class:`.service.Service`, which holds the state it uses."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

from .state import DISABLED_MESSAGE, ApiError, ApiKey, User


class AuthEndpoints:
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
        if self.faults.downloads_disabled:
            return [
                {
                    "id": 4711,
                    "subject": "Downloads temporarily disabled",
                    "messageContent": DISABLED_MESSAGE,
                    "severityCode": "W",
                    "severityText": "Warning",
                    "severityCssClass": "warning",
                    "dateUpdated": "2026-12-01 08:00:00",
                }
            ]
        return []

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

    def _remaining(self, user: User) -> list[dict[str, Any]]:
        recent = self.faults.recent_download_limit - len(user.recent_downloads)
        pending = self.faults.pending_download_limit - sum(
            1 for q in self.queue.values() if q.user == user.name and q.status == "Preparing"
        )
        unattempted = self.faults.unattempted_download_limit - sum(
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
