"""``stacmirror doctor``: is everything in place for a harvest? One line per check, no secrets.

Checks, in order: the service answers; ``login-token`` accepts the credentials; the account may
download (the MACHINE role, through ``permissions``); the download quota left
(``rate-limit-summary``); the service's notifications; the clock's skew against the service's
``Date`` header; and, when a mirror folder is given, its free disk space.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .errors import AccessDenied, CredentialsMissing
from .m2m import DEFAULT_SERVICE_URL, AuthError, Credentials, M2MClient, M2MError, resolve_credentials
from .m2m.transcript import Transcript

MAX_SKEW_SECONDS = 300.0  # signed URLs and key expiry are timed by the service's clock
MIN_FREE_BYTES = 2 * 10**9  # a few bundles' worth
TOKEN_HINT = (
    "create a new application token at https://ers.cr.usgs.gov (profile -> Application Tokens) and "
    "set M2M_TOKEN, or put it in ~/.config/stacmirror/credentials.ini"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def doctor(
    service_url: str | None = None,
    *,
    out: str | Path | None = None,
    credentials: Credentials | None = None,
    record: str | Path | None = None,
) -> DoctorReport:
    """Run every check; ``record``: a folder for a redacted transcript of the calls made."""
    report = DoctorReport()
    url = service_url or os.environ.get("M2M_SERVICE_URL") or DEFAULT_SERVICE_URL
    url = url if url.endswith("/") else url + "/"
    add = report.checks.append
    if out is not None:
        add(_disk(Path(out)))
    try:
        response = requests.post(url + "notifications", json={"systemId": "M2M"}, timeout=(10, 30))
        envelope = response.json()
        if not isinstance(envelope, dict) or "errorCode" not in envelope:
            raise ValueError("not an M2M answer")
    except (requests.RequestException, ValueError) as exc:
        add(Check("service reachable", False, f"{url} did not answer as M2M ({type(exc).__name__})"))
        return _ordered(report)
    add(Check("service reachable", True, f"{url} answers (HTTP {response.status_code})"))
    try:
        credentials = credentials or resolve_credentials(interactive=False)
    except CredentialsMissing as exc:
        add(Check("login-token accepted", False, str(exc)))
        return _ordered(report)
    client = M2MClient(credentials, url, transcript=Transcript(Path(record)) if record else None)
    try:
        client.login()
    except AuthError as exc:
        add(Check("login-token accepted", False, f"{exc.code}: the token was refused; {TOKEN_HINT}"))
        return _ordered(report)
    except M2MError as exc:
        add(Check("login-token accepted", False, f"login failed: {exc.code}"))
        return _ordered(report)
    try:
        add(Check("login-token accepted", True, f"logged in as {credentials.username}"))
        add(_access(client))
        add(_quota(client))
        add(_notifications(client))
        add(_clock(client.last_date))
    finally:
        client.logout()
    return _ordered(report)


def _ordered(report: DoctorReport) -> DoctorReport:
    disk = [c for c in report.checks if c.name == "free disk space"]
    report.checks = [c for c in report.checks if c.name != "free disk space"] + disk
    return report


def _access(client: M2MClient) -> Check:
    try:
        allowed = client.permissions()
    except M2MError as exc:
        return Check("download access", False, f"permissions failed: {exc.code}")
    if "download" in allowed:
        return Check("download access", True, "the account has the MACHINE role (download)")
    return Check("download access", False, "no download access: " + AccessDenied.HINT)


def _quota(client: M2MClient) -> Check:
    try:
        summary = client.rate_limit_summary()
    except M2MError as exc:
        return Check("download quota", False, f"rate-limit-summary failed: {exc.code}")
    user = next((r for r in summary.get("remainingLimits") or [] if r.get("limitType") == "user"), {})
    names = ("recentDownloadCount", "pendingDownloadCount", "unattemptedDownloadCount")
    left = {n: int(str(user.get(n, 0)).strip() or 0) for n in names}
    text = (
        f"{left[names[0]]} downloads this 15 min, {left[names[1]]} pending, {left[names[2]]} unattempted left"
    )
    if min(left.values()) <= 0:
        return Check("download quota", False, text + ": wait, or clear old downloads from the queue")
    return Check("download quota", True, text)


def _notifications(client: M2MClient) -> Check:
    try:
        notes = client.notifications("M2M")
    except M2MError as exc:
        return Check("service notifications", False, f"notifications failed: {exc.code}")
    if not notes:
        return Check("service notifications", True, "none")
    subjects = "; ".join(str(n.get("subject") or n.get("messageContent") or "?")[:120] for n in notes)
    disabled = any("disabled" in str(n.get("messageContent", "")).lower() for n in notes)
    return Check("service notifications", not disabled, subjects)


def _clock(date_header: str | None) -> Check:
    if not date_header:
        return Check("clock", True, "the service sends no Date header; skew unknown")
    try:
        theirs = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return Check("clock", True, f"unreadable Date header {date_header!r}; skew unknown")
    skew = (dt.datetime.now(dt.timezone.utc) - theirs).total_seconds()
    text = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the service"
    if abs(skew) > MAX_SKEW_SECONDS:
        return Check("clock", False, text + ": set the clock (e.g. enable NTP)")
    return Check("clock", True, text)


def _disk(out: Path) -> Check:
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    text = f"{free / 1e9:.1f} GB free at {probe}"
    if free < MIN_FREE_BYTES:
        return Check("free disk space", False, text + f" (less than {MIN_FREE_BYTES / 1e9:.0f} GB)")
    return Check("free disk space", True, text)
