"""Which M2M service a command talks to, and as whom.

With ``service_url`` / ``M2M_SERVICE_URL`` the given service is used with the
user's credentials. With neither and no credentials configured anywhere, the
built-in emulator is started on loopback so a first run works offline; the
caller is told so through a Note event, since its scenes are synthetic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import events as ev
from .m2m import DEFAULT_SERVICE_URL, Credentials, M2MClient, Secret, resolve_credentials
from .m2m.credentials import has_configured_credentials
from .m2m.transcript import Transcript


def emulator_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stacmirror" / "emulator"


@contextmanager
def open_client(
    service_url: str | None,
    *,
    credentials: Credentials | None = None,
    on_event: ev.EventHandler | None = None,
    record: Path | None = None,
) -> Iterator[M2MClient]:
    """A logged-in client; logs out (and stops an embedded emulator) on exit."""
    emit = ev.emitter(on_event)
    url = service_url or os.environ.get("M2M_SERVICE_URL")
    emulator = None
    if url is None and credentials is None and not has_configured_credentials():
        from .emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator  # rasterio and numpy: only when needed

        emulator = Emulator(emulator_cache()).start()
        url = emulator.service_url
        credentials = Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN), "built-in emulator")
        emit(
            ev.Note(
                "no USGS credentials configured: using the built-in M2M emulator "
                f"(synthetic scenes) at {url}",
                "warning",
            )
        )
    elif credentials is None:
        credentials = resolve_credentials()
    client = M2MClient(
        credentials,
        url or DEFAULT_SERVICE_URL,
        on_wait=lambda message: emit(ev.Waiting(message)),
        transcript=Transcript(record) if record is not None else None,
    )
    try:
        client.login()
        yield client
    finally:
        client.logout()
        if emulator is not None:
            emulator.stop()
