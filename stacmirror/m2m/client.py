"""A session with the USGS M2M JSON API.

Rules the service imposes, and how this client keeps them:

* one API request per user at a time -> every call holds ``self._lock``;
* errors arrive as ``errorCode`` with any HTTP status -> the body is always parsed;
* keys expire after two idle hours -> one fresh ``login-token`` on
  ``AUTH_EXPIRED``/``AUTH_KEY_INVALID``, never sending the stale key on the login call;
* throttling and transient failures -> bounded exponential backoff with jitter
  (tenacity), and a long wait on the download quota (``RATE_LIMIT_USER_DL``).

The API key is held in a :class:`Secret` and only ever placed in the
``X-Auth-Token`` header of API calls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from .credentials import Credentials, Secret
from .errors import (
    AuthExpiredError,
    DownloadLimitError,
    M2MError,
    ServerError,
    ThrottleError,
    error_for_code,
)
from .models import (
    Dataset,
    DatasetFilter,
    DownloadOption,
    DownloadRequestResult,
    ReadyDownload,
    RetrieveResult,
    Scene,
    SearchPage,
)
from .transcript import Transcript

log = logging.getLogger(__name__)

DEFAULT_SERVICE_URL = "https://m2m.cr.usgs.gov/api/api/json/stable/"
MAX_RESULTS_PER_PAGE = 10_000  # the service recommends staying below this per call
USER_AGENT = "stacmirror (+https://pypi.org/project/stacmirror)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    download_limit_wait: float = 905.0  # the quota window is 15 minutes
    download_limit_attempts: int = 3


@dataclass(frozen=True)
class FileGroup:
    group_id: str
    label: str
    dataset_id: str
    files: tuple[str, ...]


class M2MClient:
    """Talks to one M2M service as one user. Use as a context manager to log in and out."""

    def __init__(
        self,
        credentials: Credentials,
        service_url: str = DEFAULT_SERVICE_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (15.0, 300.0),
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str], None] | None = None,
        session: requests.Session | None = None,
        transcript: Transcript | None = None,
    ):
        self.transcript = transcript  # --record: every call, redacted
        self.last_date: str | None = None  # the Date header of the last answer (doctor's clock check)
        self.service_url = service_url if service_url.endswith("/") else service_url + "/"
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.calls: Counter[str] = Counter()
        self._sleep = sleep
        self._on_wait = on_wait or (lambda message: log.warning("%s", message))
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._api_key: Secret | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "logged in" if self._api_key else "logged out"
        return f"M2MClient({self.service_url!r}, user={self.credentials.username!r}, {state})"

    # -- session -----------------------------------------------------------------------------

    def __enter__(self) -> M2MClient:
        self.login()
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()

    @property
    def logged_in(self) -> bool:
        return self._api_key is not None

    def login(self) -> None:
        with self._lock:
            self._login_locked()

    def _login_locked(self) -> None:
        self._api_key = None  # a stale X-Auth-Token on the login call makes it fail
        payload = {
            "username": self.credentials.username,
            "token": self.credentials.token.reveal(),
        }
        key = self._call_retrying("login-token", payload)
        if not isinstance(key, str) or not key:
            raise ServerError("UNKNOWN", "login-token returned no API key", endpoint="login-token")
        self._api_key = Secret(key)

    def logout(self) -> None:
        """End the session; an already expired or invalid key is not an error."""
        with self._lock:
            if self._api_key is None:
                return
            try:
                self._request("logout", None)
            except (AuthExpiredError, M2MError) as exc:
                log.debug("logout: %s (ignored)", exc.code)
            except Exception as exc:  # logout runs in finally blocks: never mask the real error
                log.debug("logout failed: %s (ignored)", type(exc).__name__)
            finally:
                self._api_key = None

    # -- the one place requests are sent -----------------------------------------------------

    def call(self, endpoint: str, payload: Any = None) -> Any:
        """Call an endpoint and return its ``data``; raises an :class:`M2MError` subclass."""
        with self._lock:
            if self._api_key is None:
                self._login_locked()
            try:
                return self._call_retrying(endpoint, payload)
            except AuthExpiredError:
                log.info("M2M API key expired or invalid; logging in again")
                self._login_locked()
                return self._call_retrying(endpoint, payload)

    def _call_retrying(self, endpoint: str, payload: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type((ThrottleError, ServerError)),
            stop=self._stop,
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(self._request, endpoint, payload)

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DownloadLimitError):
            return state.attempt_number >= self.retry.download_limit_attempts
        return stop_after_attempt(self.retry.attempts)(state)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DownloadLimitError):
            return self.retry.download_limit_wait
        backoff = wait_exponential(multiplier=self.retry.initial_wait, max=self.retry.max_wait)
        return (backoff + wait_random(0, self.retry.initial_wait))(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        if isinstance(exc, DownloadLimitError):
            self._on_wait(
                f"M2M download quota reached ({exc.code}); waiting {wait / 60:.0f} min "
                "for the 15-minute window to pass"
            )
        else:
            log.info("M2M %s failed (%s); retry %d in %.1fs", state.args[0], exc, state.attempt_number, wait)

    def _request(self, endpoint: str, payload: Any) -> Any:
        self.calls[endpoint] += 1
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None and endpoint != "login-token":
            headers["X-Auth-Token"] = self._api_key.reveal()
        started = time.monotonic()
        try:
            response = self._session.post(
                self.service_url + endpoint,
                data=json.dumps(payload),
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            # The exception text can carry request details; keep only its kind.
            raise ServerError("CONNECTION", type(exc).__name__, endpoint=endpoint) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        self.last_date = response.headers.get("Date")
        if self.transcript is not None:
            self.transcript.api(endpoint, payload, response.status_code, body, started)
        if not isinstance(body, dict) or "errorCode" not in body:
            kind = response.headers.get("Content-Type", "?").split(";")[0]
            if response.status_code == 429:
                raise ThrottleError("HTTP_429", "too many requests", endpoint=endpoint)
            raise ServerError(
                f"HTTP_{response.status_code}", f"not an M2M JSON response ({kind})", endpoint=endpoint
            )
        log.debug(
            "M2M %s -> HTTP %d, requestId=%s, errorCode=%s, %.0f ms",
            endpoint,
            response.status_code,
            body.get("requestId"),
            body.get("errorCode"),
            (time.monotonic() - started) * 1000,
        )
        if body.get("errorCode"):
            raise error_for_code(str(body["errorCode"]), body.get("errorMessage"), endpoint)
        if response.status_code >= 500:
            raise ServerError(f"HTTP_{response.status_code}", "server error", endpoint=endpoint)
        return body.get("data")

    # -- catalogue ---------------------------------------------------------------------------

    def dataset_search(self, query: str | None = None) -> list[Dataset]:
        payload = {"datasetName": query} if query else {}
        return [Dataset.from_json(d) for d in self.call("dataset-search", payload) or []]

    def dataset(self, name: str) -> Dataset:
        return Dataset.from_json(self.call("dataset", {"datasetName": name}))

    def dataset_filters(self, name: str) -> list[DatasetFilter]:
        return [DatasetFilter.from_json(f) for f in self.call("dataset-filters", {"datasetName": name}) or []]

    def dataset_file_groups(self, name: str) -> list[FileGroup]:
        data = self.call("dataset-file-groups", {"datasetName": name}) or {}
        groups = []
        for dataset_id, by_group in (data.get("secondary") or {}).items():
            for group_id, group in (by_group or {}).items():
                files = tuple(str(f.get("name")) for f in group.get("files") or [])
                groups.append(FileGroup(group_id, str(group.get("label") or group_id), dataset_id, files))
        return groups

    # -- search ------------------------------------------------------------------------------

    def scene_search(
        self,
        dataset: str,
        scene_filter: dict[str, Any] | None = None,
        *,
        starting_number: int = 1,
        max_results: int = MAX_RESULTS_PER_PAGE,
        metadata_type: str = "summary",
    ) -> SearchPage:
        payload: dict[str, Any] = {
            "datasetName": dataset,
            "maxResults": max_results,
            "startingNumber": starting_number,
            "metadataType": metadata_type,
        }
        if scene_filter:
            payload["sceneFilter"] = scene_filter
        return SearchPage.from_json(self.call("scene-search", payload) or {})

    def iter_scenes(
        self,
        dataset: str,
        scene_filter: dict[str, Any] | None = None,
        *,
        page_size: int = MAX_RESULTS_PER_PAGE,
        limit: int | None = None,
        on_page: Callable[[SearchPage], None] | None = None,
        first: SearchPage | None = None,
    ) -> Iterator[Scene]:
        """Every matching scene, page by page, starting from ``first`` when the caller already has it.

        Stops on whichever comes first: all ``totalHits`` seen, an empty page, or the
        end of the range. ``nextRecord`` alone is not trusted: on the last page the
        service may point back at ``totalHits`` instead of past the end.
        """
        start, seen = 1, 0
        page = first
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            if size <= 0:
                return
            if page is None:
                page = self.scene_search(dataset, scene_filter, starting_number=start, max_results=size)
            if on_page:
                on_page(page)
            yield from page.scenes[:size]
            seen += len(page.scenes)
            if not page.scenes or seen >= page.total_hits:
                return
            start = start + len(page.scenes)
            if start > page.total_hits:
                return
            page = None

    # -- scene lists and downloads -----------------------------------------------------------

    def scene_list_add(self, list_id: str, dataset: str, entity_ids: list[str], ttl: str = "P1D") -> int:
        payload = {
            "listId": list_id,
            "datasetName": dataset,
            "entityIds": list(entity_ids),
            "timeToLive": ttl,
        }
        result = self.call("scene-list-add", payload)
        if isinstance(result, dict):  # the development branch answers {sceneCount, failed}
            return int(result.get("sceneCount") or 0)
        return int(result or 0)

    def scene_list_remove(self, list_id: str) -> None:
        self.call("scene-list-remove", {"listId": list_id})

    def download_options(
        self,
        dataset: str,
        *,
        list_id: str | None = None,
        entity_ids: list[str] | None = None,
        include_secondary_file_groups: bool = False,
    ) -> list[DownloadOption]:
        payload: dict[str, Any] = {"datasetName": dataset}
        if list_id:
            payload["listId"] = list_id
        if entity_ids is not None:
            payload["entityIds"] = list(entity_ids)
        if include_secondary_file_groups:
            payload["includeSecondaryFileGroups"] = True
        return [DownloadOption.from_json(o) for o in self.call("download-options", payload) or []]

    def download_request(
        self,
        label: str,
        downloads: list[dict[str, Any]] | None = None,
        data_groups: list[dict[str, Any]] | None = None,
    ) -> DownloadRequestResult:
        payload: dict[str, Any] = {"label": label}
        if downloads:
            payload["downloads"] = downloads
        if data_groups:
            payload["dataGroups"] = data_groups
        return DownloadRequestResult.from_json(self.call("download-request", payload) or {})

    def download_retrieve(self, label: str | None = None) -> RetrieveResult:
        payload = {"label": label} if label else {}
        return RetrieveResult.from_json(self.call("download-retrieve", payload) or {})

    def download_search(self, label: str | None = None) -> list[ReadyDownload]:
        """Queue records (no URLs) under ``label``: how a downloadId is matched to its file."""
        payload = {"label": label} if label else {}
        return [ReadyDownload.from_json(r) for r in self.call("download-search", payload) or []]

    def notifications(self, system_id: str = "M2M") -> list[dict[str, Any]]:
        return [n for n in self.call("notifications", {"systemId": system_id}) or [] if isinstance(n, dict)]

    def download_remove(self, download_id: int) -> None:
        self.call("download-remove", {"downloadId": download_id})

    def download_order_remove(self, label: str) -> int:
        return int(self.call("download-order-remove", {"label": label}) or 0)

    def download_complete_proxied(self, done: dict[int, int]) -> None:
        proxied = [{"downloadId": k, "downloadedSize": v} for k, v in done.items()]
        self.call("download-complete-proxied", {"proxiedDownloads": proxied})

    def permissions(self) -> list[str]:
        return [str(p) for p in self.call("permissions") or []]

    def rate_limit_summary(self) -> dict[str, Any]:
        return dict(self.call("rate-limit-summary", {}) or {})
