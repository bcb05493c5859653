"""Unpacking product bundles (plain tar) into their scene folder, safely.

A member is extracted only if it is a regular file whose name has no absolute
path and no ``..``; links, devices and FIFOs make the whole bundle refused.
Members are written by their base name into the scene folder (real bundles
are flat; test archives sometimes add a folder prefix), each streamed to a
temporary name, hashed and renamed, so nothing lands outside the folder and a
killed extraction leaves no half file under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..layout import partial_path

CHUNK = 1 << 20


class UnsafeArchiveError(Exception):
    """The bundle holds something that must not be extracted (traversal, links, devices)."""


@dataclass(frozen=True)
class Extracted:
    name: str
    size: int
    sha256: str


def check_member(member: tarfile.TarInfo) -> str | None:
    """The base name to extract to, None for a directory; raises for anything unsafe."""
    path = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts or "\\" in member.name:
        raise UnsafeArchiveError(f"member {member.name!r} points outside the scene folder")
    if member.isdir():
        return None
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"member {member.name!r} is a link")
    if not member.isfile():
        raise UnsafeArchiveError(f"member {member.name!r} is a device or special file")
    name = path.name
    if not name or name.startswith("."):
        raise UnsafeArchiveError(f"member {member.name!r} has no usable file name")
    return name


def extract_bundle(
    tar_path: Path,
    folder: Path,
    *,
    on_member: Callable[[Extracted], None] | None = None,
    fsync: bool = False,
) -> list[Extracted]:
    """Check every member first, then extract; returns what was written. ``fsync``: flush each
    member to disk before its rename (as for downloads: power-cut safety, not atomicity)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        archive = tarfile.open(tar_path, mode="r:")  # noqa: SIM115 - USGS bundles are plain tar, never gzip
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"{tar_path.name} is not a readable tar file ({exc})") from None
    with archive:
        members = archive.getmembers()
        plan = [(m, check_member(m)) for m in members]
        names = [name for _, name in plan if name]
        if len(names) != len(set(names)):
            raise UnsafeArchiveError(f"{tar_path.name} holds two members with the same file name")
        written = []
        for member, name in plan:
            if name is None:
                continue
            source = archive.extractfile(member)
            if source is None:
                raise UnsafeArchiveError(f"member {member.name!r} cannot be read")
            target = folder / name
            part = partial_path(target)
            digest = hashlib.sha256()
            size = 0
            with source, part.open("wb") as handle:
                while chunk := source.read(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            if size != member.size:
                part.unlink(missing_ok=True)
                raise UnsafeArchiveError(f"member {member.name!r} is truncated")
            os.replace(part, target)
            result = Extracted(name, size, digest.hexdigest())
            written.append(result)
            if on_member:
                on_member(result)
    return written
