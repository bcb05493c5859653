"""Where the M2M username and application token come from.

Order: the environment (``M2M_USERNAME`` + ``M2M_TOKEN``), then a config file
that only its owner may read, then an interactive prompt when a terminal is
attached. No command-line flag takes the token: flags end up in shell history
and process listings.
"""

from __future__ import annotations

import configparser
import getpass
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CredentialsError

HOW_TO_GET_A_TOKEN = (
    "no M2M credentials: set M2M_USERNAME and M2M_TOKEN, or write them to {path} "
    "(chmod 600). Create an application token at https://ers.cr.usgs.gov "
    "(profile -> Application Tokens); the account needs the M2M 'MACHINE' access role"
)


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    username: str
    token: Secret = field(repr=False)
    source: str = "environment"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, token=***, source={self.source!r})"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stacmirror" / "credentials.ini"


def _from_environment(env: dict[str, str]) -> Credentials | None:
    user, token = env.get("M2M_USERNAME"), env.get("M2M_TOKEN")
    if user and token:
        return Credentials(user, Secret(token), "environment")
    if user or token:
        missing = "M2M_TOKEN" if user else "M2M_USERNAME"
        raise CredentialsError(f"{missing} is not set (both M2M_USERNAME and M2M_TOKEN are needed)")
    return None


def _from_file(path: Path) -> Credentials | None:
    if not path.exists():
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"refusing to read {path}: it is readable by group or others (run: chmod 600 {path})"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise CredentialsError(f"cannot parse {path}: {type(exc).__name__}") from None
    if not parser.has_section("m2m"):
        raise CredentialsError(f"{path} has no [m2m] section with username and token")
    user = parser.get("m2m", "username", fallback="").strip()
    token = parser.get("m2m", "token", fallback="").strip()
    if not user or not token:
        raise CredentialsError(f"{path}: [m2m] needs both 'username' and 'token'")
    return Credentials(user, Secret(token), str(path))


def _from_prompt() -> Credentials | None:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    user = input("ERS username: ").strip()
    token = getpass.getpass("M2M application token (input hidden): ").strip()
    if not user or not token:
        return None
    return Credentials(user, Secret(token), "prompt")


def resolve_credentials(
    env: dict[str, str] | None = None,
    config_path: Path | None = None,
    interactive: bool = True,
) -> Credentials:
    """Return credentials from the first source that has them, or raise CredentialsError."""
    env = dict(os.environ) if env is None else env
    path = config_path or default_config_path()
    found = _from_environment(env) or _from_file(path)
    if found is None and interactive:
        found = _from_prompt()
    if found is None:
        raise CredentialsError(HOW_TO_GET_A_TOKEN.format(path=path))
    return found


def has_configured_credentials(env: dict[str, str] | None = None) -> bool:
    """True when the environment or config file holds credentials (no prompting)."""
    env = dict(os.environ) if env is None else env
    return bool(env.get("M2M_USERNAME") or env.get("M2M_TOKEN")) or default_config_path().exists()
