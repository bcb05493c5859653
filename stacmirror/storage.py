"""Mirrors on object storage: ``OUT = s3://bucket/prefix`` (or ``gs://``, ``az://``), through obstore.

The layout is the same as on disk (:class:`.layout.Mirror` names every path; a path relative to the
mirror root is the object's key under the prefix). What cannot live in a bucket lives in a local
cache keyed by the mirror's URL: the ledger (SQLite) is pulled from ``OUT/.stacmirror/`` before a
run and pushed back after it, so a second machine continues where the first stopped. The lock is
an object created with a conditional (create-only) put.

Credentials and the endpoint come from the standard environment, never from a flag:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` (an ``http://`` endpoint is allowed), ``AWS_PROFILE`` (read through boto3 when
it is installed); ``GOOGLE_*`` and ``AZURE_*`` likewise for the other schemes. Nothing here prints
or keeps a secret: errors name the URL and the S3 error code only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInput, MirrorBusy
from .fileio import write_bytes_atomic, write_json_atomic
from .layout import STATE_DIR, Mirror

SCHEMES = ("s3", "gs", "az")
URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<bucket>[^/]*)(?:/(?P<prefix>.*))?$")
LOCK_KEY = f"{STATE_DIR}/lock"
LEDGER_KEY = f"{STATE_DIR}/ledger.sqlite"
MIRROR_MARKERS = (STATE_DIR, "catalog.json")  # a prefix holding either is a mirror
# the store's own retries (503s, dropped connections): object_store backs off and retries each request
RETRY = {
    "max_retries": 8,
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
    "retry_timeout": timedelta(minutes=5),
}


def is_store_url(out: Any) -> bool:
    """Whether ``out`` names an object store (any ``scheme://``) rather than a folder."""
    return isinstance(out, str) and URL.match(out) is not None


def _cache_root() -> Path:
    base = os.environ.get("STACMIRROR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stacmirror"
    )
    return Path(base) / "stores"


def _describe(exc: BaseException) -> str:
    """An obstore error as one line: its S3 code (or kind), never a header or a signature."""
    text = str(exc)
    code = re.search(r"<Code>([A-Za-z]+)</Code>", text)
    if code:
        return code[1]
    status = re.search(r"status code: (\d{3})", text)
    if status:
        return f"HTTP {status[1]}"
    if "onnect" in text:
        return "connection failed"
    return type(exc).__name__


def store_error(url: str, exc: BaseException, doing: str) -> InvalidInput:
    """The InvalidInput for a store that refused ``doing`` (list, write, read)."""
    code = _describe(exc)
    if code in ("NoSuchBucket", "ContainerNotFound"):  # S3's and Azure's words for it
        return InvalidInput("out", f"{url}: the {'container' if code[0] == 'C' else 'bucket'} does not exist")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
        return InvalidInput(
            "out", f"{url}: the store refused the credentials ({code}); check AWS_ACCESS_KEY_ID and friends"
        )
    if code == "AuthenticationFailed":  # Azure's
        return InvalidInput(
            "out",
            f"{url}: the store refused the credentials ({code}); check AZURE_STORAGE_ACCESS_KEY and friends",
        )
    if code in ("AccessDenied", "HTTP 403", "AllAccessDisabled", "AuthorizationFailure"):
        return InvalidInput("out", f"{url}: no permission to {doing} ({code})")
    if code == "connection failed":
        return InvalidInput("out", f"{url}: cannot reach the store (check AWS_ENDPOINT_URL)")
    return InvalidInput("out", f"{url}: the store failed to {doing} ({code})")


def open_store(url: str) -> Any:
    """An obstore store for ``url`` (its prefix applied to every key), configured from the environment."""
    from obstore.store import from_url

    match = URL.match(url)
    if match is None:
        raise InvalidInput("out", f"{url!r} is not a store URL")
    scheme = match["scheme"].lower()
    if scheme not in SCHEMES:
        raise InvalidInput(
            "out",
            f"unknown scheme {scheme}://; use a folder or " + ", ".join(f"{s}://" for s in SCHEMES),
        )
    if not match["bucket"]:
        raise InvalidInput("out", f"{url}: no bucket named")
    options: dict[str, Any] = {"retry_config": RETRY}
    if scheme == "az" and (
        os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").lower() in ("1", "true")
        or os.environ.get("AZURE_ENDPOINT", os.environ.get("AZURE_STORAGE_ENDPOINT", "")).startswith(
            "http://"
        )
    ):  # Azurite, or another http:// endpoint
        options["client_options"] = {"allow_http": True}
    if scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and endpoint.startswith("http://"):
            options["client_options"] = {"allow_http": True}
        if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
            options["credential_provider"] = _profile_credentials(os.environ["AWS_PROFILE"])
    try:
        return from_url(url, **options)
    except Exception as exc:  # a malformed URL or configuration, before any request
        raise InvalidInput("out", f"{url}: cannot open the store ({_describe(exc)})") from None


VSI_PREFIXES = {"s3": "/vsis3/", "gs": "/vsigs/", "az": "/vsiaz/"}


def gdal_path(url: str, key: str) -> str:
    """The name GDAL (and rasterio) open an object by: ``/vsis3/bucket/prefix/key`` and the like."""
    match = URL.match(url)
    assert match is not None
    prefix = (match["prefix"] or "").strip("/")
    parts = [match["bucket"], *([prefix] if prefix else []), key]
    return VSI_PREFIXES[match["scheme"].lower()] + "/".join(parts)


def gdal_name(path: Path, store_url: str | None, root: Path) -> str:
    """The name GDAL opens a mirror's file by: its path, or, in a store mirror laid over the local
    folder ``root`` (its cache), its object's ``/vsis3/…`` name."""
    if store_url is None:
        return str(path)
    return gdal_path(store_url, Path(path).relative_to(root).as_posix())


def gdal_env() -> dict[str, str]:
    """GDAL configuration for reading objects through ``/vsis3/`` or ``/vsiaz/`` (or ``s3://`` and
    ``az://`` hrefs, which rasterio turns into them). Use it as ``rasterio.Env(**gdal_env())``, or
    ``odc.stac.configure_rio(**gdal_env())``. It holds no secret: GDAL reads the keys from the
    environment itself.

    * S3: a custom server in ``AWS_ENDPOINT_URL`` (MinIO, Ceph, moto) needs its host, path-style
      addressing and, for ``http://``, no TLS; nothing for AWS's own endpoint. GDAL reads
      ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE`` and ``AWS_REGION``.
    * Azure: obstore reads the account from ``AZURE_STORAGE_ACCOUNT_NAME`` and GDAL from
      ``AZURE_STORAGE_ACCOUNT``, so the name is handed on; both read ``AZURE_STORAGE_ACCESS_KEY``.
      With ``AZURE_STORAGE_USE_EMULATOR=true`` (Azurite) GDAL is given the emulator's endpoint
      and its account, whose key is the one Azurite publishes for everyone."""
    found: dict[str, str] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        found.update(
            AWS_S3_ENDPOINT=parts.netloc + parts.path.rstrip("/"),
            AWS_HTTPS="NO" if parts.scheme == "http" else "YES",
            AWS_VIRTUAL_HOSTING="FALSE",
        )
    if os.environ.get("AZURE_STORAGE_USE_EMULATOR", "").lower() in ("1", "true"):
        blob = os.environ.get("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000").rstrip("/")
        found["AZURE_STORAGE_CONNECTION_STRING"] = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={blob}/{AZURITE_ACCOUNT};"
        )
    elif os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") and not os.environ.get("AZURE_STORAGE_ACCOUNT"):
        found["AZURE_STORAGE_ACCOUNT"] = os.environ["AZURE_STORAGE_ACCOUNT_NAME"]
    return found


# Azurite's one account and its key, the same in every installation (Microsoft publishes them)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def delete_objects(store: Any, keys: list[str]) -> None:
    """Delete ``keys`` from an obstore store, 1 000 a request (S3's limit for one batch)."""
    import obstore

    for start in range(0, len(keys), 1000):
        obstore.delete(store, keys[start : start + 1000])


def _profile_credentials(profile: str) -> Any:
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise InvalidInput(
            "out", f"AWS_PROFILE={profile} needs boto3 (pip install boto3), or set AWS_ACCESS_KEY_ID"
        ) from None
    return Boto3CredentialProvider(boto3.Session(profile_name=profile))


@dataclass
class StoreMirror:
    """A mirror in an object store, and the local cache that holds its state while a run works."""

    url: str
    store: Any

    @classmethod
    def open(cls, url: str) -> StoreMirror:
        """Open and check: the bucket exists, the credentials work, and the prefix is empty or a
        mirror. Raises InvalidInput (one line, nothing written) otherwise."""
        url = url.rstrip("/")
        mirror = cls(url, open_store(url))
        mirror.check()
        return mirror

    # -- where things are ---------------------------------------------------------------------------

    @property
    def cache(self) -> Path:
        """The local folder that stands in for the mirror root: the state, never the data."""
        return _cache_root() / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def local(self) -> Mirror:
        """The layout over the cache: ``local.rel(path)`` is the object key of ``path``."""
        return Mirror(self.cache)

    def __repr__(self) -> str:
        return f"StoreMirror({self.url!r})"

    # -- checks ---------------------------------------------------------------------------------------

    def check(self) -> None:
        import obstore

        try:
            top = obstore.list_with_delimiter(self.store, None)
        except Exception as exc:
            raise store_error(self.url, exc, "list it") from None
        names = [p.rstrip("/") for p in top["common_prefixes"]] + [o["path"] for o in top["objects"]]
        if names and not any(n in MIRROR_MARKERS for n in names):
            shown = ", ".join(sorted(names)[:3])
            raise InvalidInput(
                "out", f"{self.url} holds other objects ({shown}, ...) and no mirror; choose an empty prefix"
            )

    # -- objects --------------------------------------------------------------------------------------

    def sizes(self, prefix: str) -> dict[str, int]:
        """Key → size of every object under ``prefix`` (one listing, 1 000 keys per request)."""
        import obstore

        found: dict[str, int] = {}
        for batch in obstore.list(self.store, prefix=prefix.rstrip("/") + "/"):
            for meta in batch:
                found[meta["path"]] = meta["size"]
        return found

    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.store, key, data)

    def get_bytes(self, key: str) -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            return None

    # -- the lock -------------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Create the lock object, create-only: a second run is refused while it exists. A lock left by
        a killed run on this host (its process gone) is taken over. Re-entrant within a thread (a
        sync builds the catalog and crops under the lock it holds)."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        if _HELD.get(self._holding):
            _HELD[self._holding] += 1
            return

        body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}).encode()
        for _ in range(2):
            try:
                obstore.put(self.store, LOCK_KEY, body, mode="create")
                _HELD[self._holding] = 1
                return
            except AlreadyExistsError:
                holder = self._holder()
                if holder is None or not _stale(holder):
                    raise MirrorBusy(_busy(self.url, holder)) from None
                obstore.delete(self.store, LOCK_KEY)  # its process died (kill -9): take over
            except Exception as exc:
                raise store_error(self.url, exc, "write to it") from None
        raise MirrorBusy(_busy(self.url, self._holder()))

    def check_free(self) -> None:
        if _HELD.get(self._holding):
            return
        holder = self._holder()
        if holder is not None and not _stale(holder):
            raise MirrorBusy(_busy(self.url, holder))

    def release(self) -> None:
        import obstore

        count = _HELD.pop(self._holding, 0)
        if count > 1:
            _HELD[self._holding] = count - 1
            return
        holder = self._holder()
        if holder and holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid():
            obstore.delete(self.store, LOCK_KEY)

    @property
    def _holding(self) -> tuple[str, int]:
        """Who holds the lock inside this process: re-entrant in one thread only, so two threads
        harvesting into one store still exclude each other."""
        return self.url, threading.get_ident()

    def _holder(self) -> dict[str, Any] | None:
        data = self.get_bytes(LOCK_KEY)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return {}

    # -- the state ------------------------------------------------------------------------------------

    def pull_state(self) -> None:
        """Bring the store's ledger into the cache, unless the cache already holds it or a newer copy
        (a run on this machine that was killed before it pushed): the e-tag the cache was last synced
        at tells which, in one conditional GET."""
        import obstore
        from obstore.exceptions import NotModifiedError

        ledger = self.local.ledger_path
        etag = self._synced().get("etag")
        options = {"if_none_match": etag} if etag and ledger.exists() else {}
        try:
            result = obstore.get(self.store, LEDGER_KEY, options=options)
            data = bytes(result.bytes())
        except (FileNotFoundError, NotModifiedError):
            return
        for suffix in ("-wal", "-shm"):
            Path(f"{ledger}{suffix}").unlink(missing_ok=True)
        write_bytes_atomic(ledger, data)
        self._set_synced(result.meta.get("e_tag"))

    def push_state(self) -> None:
        """Upload the cache's ledger (closed, so its WAL is folded in) to ``OUT/.stacmirror/``."""
        import obstore

        ledger = self.local.ledger_path
        if not ledger.exists():
            return
        result = obstore.put(self.store, LEDGER_KEY, ledger.read_bytes())
        self._set_synced(result.get("e_tag"))

    @property
    def _synced_path(self) -> Path:
        """The e-tag of the store's ledger the cache last pulled or pushed."""
        return self.local.state_dir / "synced.json"

    def _synced(self) -> dict[str, Any]:
        try:
            return json.loads(self._synced_path.read_text())
        except (OSError, ValueError):
            return {}

    def _set_synced(self, etag: str | None) -> None:
        write_json_atomic(self._synced_path, {"url": self.url, "etag": etag})


_HELD: dict[tuple[str, int], int] = {}  # (store URL, thread) -> how many times it holds the lock


def _stale(holder: dict[str, Any]) -> bool:
    """A lock whose holder ran on this host and is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _busy(url: str, holder: dict[str, Any] | None) -> str:
    where = f" (host {holder.get('host')}, pid {holder.get('pid')})" if holder else ""
    return (
        f"another harvest or sync is running into {url}{where}; wait for it, or if it died on another "
        f"machine, delete {url}/{LOCK_KEY}"
    )
