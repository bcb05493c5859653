"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary name, then rename over ``path``. ``durable=False`` skips the fsync: for
    callers that write many files and then call :func:`sync_all` before recording them as done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a catalog is meant to be read by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_bytes(data: Any) -> bytes:
    """Indented JSON, as the catalog's files are written (orjson: a catalog build writes 100 000s)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    write_bytes_atomic(path, json_bytes(data), durable=durable)


def sync_all() -> None:
    """Flush every written file to disk: one call instead of an fsync per file."""
    os.sync()


def relative_href(target: Path, start: Path) -> str:
    """``target`` relative to the folder ``start``, as STAC wants it (``./x`` or ``../x``)."""
    rel = os.path.relpath(target, start)
    return rel if rel.startswith("..") else f"./{rel}"
