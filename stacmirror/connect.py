"""Which M2M service a command talks to, and as whom.

With ``--service-url`` / ``M2M_SERVICE_URL`` the given service is used with the
user's credentials. With neither and no credentials configured anywhere, the
built-in emulator is started on loopback so a first run works offline; the
user is told so, since its scenes are synthetic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .m2m import DEFAULT_SERVICE_URL, Credentials, M2MClient, Secret, resolve_credentials
from .m2m.credentials import has_configured_credentials


def emulator_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stacmirror" / "emulator"


@contextmanager
def open_client(service_url: str | None, *, quiet: bool = False, on_wait=None) -> Iterator[M2MClient]:
    """A logged-in client; logs out (and stops an embedded emulator) on exit."""
    url = service_url or os.environ.get("M2M_SERVICE_URL")
    emulator = None
    if url is None and not has_configured_credentials():
        from .emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator  # rasterio and numpy: only when needed

        emulator = Emulator(emulator_cache()).start()
        url = emulator.service_url
        credentials = Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN), "built-in emulator")
        if not quiet:
            print(
                "stacmirror: no USGS credentials configured: using the built-in M2M emulator "
                f"(synthetic scenes) at {url}",
                file=sys.stderr,
            )
    else:
        credentials = resolve_credentials()
    client = M2MClient(credentials, url or DEFAULT_SERVICE_URL, on_wait=on_wait)
    try:
        client.login()
        yield client
    finally:
        client.logout()
        if emulator is not None:
            emulator.stop()
