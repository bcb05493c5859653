"""Where a scene's bytes are read from: a folder on disk, or keys in an object store.

The item builder (:mod:`.stac`) sees a scene as ``{suffix: SceneFile}`` and asks each file for its
name, size, bytes, a byte range, its sha256, or the name GDAL opens it by. A :class:`LocalFile` is
a path; a :class:`StoreFile` is an object key read with obstore's range requests (and, where GDAL
must read pixels, through GDAL's ``/vsis3/``-style paths). A worker given store files needs no
local path at all: a Dask worker on another machine reads the store itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .geotiff import HEAD, Header, parse_header, read_header


class SceneFile(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def gdal(self) -> str: ...

    def read_bytes(self) -> bytes: ...

    def header(self) -> Header | None: ...

    def sha256(self) -> str: ...


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def gdal(self) -> str:
        return str(self.path)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def header(self) -> Header | None:
        return read_header(self.path)

    def sha256(self) -> str:
        return sha256_file(self.path)


@dataclass(frozen=True)
class GdalRaster:
    """A raster known only by the name GDAL opens it by: a path, or a window of a store object."""

    gdal: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def store_of(url: str) -> Any:
    """One obstore store per mirror URL and process (a worker opens it from its own environment)."""
    from ..storage import open_store

    return open_store(url)


@dataclass(frozen=True)
class StoreFile:
    url: str  # the mirror's URL: s3://bucket/prefix
    key: str  # relative to the mirror's prefix
    size: int

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def gdal(self) -> str:
        from ..storage import gdal_path

        return gdal_path(self.url, self.key)

    def read_bytes(self) -> bytes:
        import obstore

        return bytes(obstore.get(store_of(self.url), self.key).bytes())

    def _range(self, offset: int, size: int) -> bytes:
        import obstore

        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        return bytes(obstore.get_range(store_of(self.url), self.key, start=offset, end=end))

    def header(self) -> Header | None:
        try:
            return parse_header(self._range(0, HEAD), self._range)
        except OSError:
            return None

    def sha256(self) -> str:
        import obstore

        digest = hashlib.sha256()
        for chunk in obstore.get(store_of(self.url), self.key).stream(min_chunk_size=1 << 20):
            digest.update(chunk)
        return digest.hexdigest()


def local_files(folder: Path, pid: str) -> dict[str, LocalFile]:
    """Product files of a scene folder by suffix (after ``<pid>_``), hidden files left out."""
    files: dict[str, LocalFile] = {}
    with os.scandir(folder) as found:
        for entry in found:
            if entry.name.startswith(".") or not entry.name.startswith(pid + "_") or not entry.is_file():
                continue
            files[entry.name[len(pid) + 1 :]] = LocalFile(Path(entry.path), entry.stat().st_size)
    return files


def store_files(url: str, folder_key: str, listing: list[tuple[str, int]]) -> dict[str, StoreFile]:
    """The same for a scene folder in a store, from its listing: (name, size) pairs."""
    pid = folder_key.rsplit("/", 1)[-1]
    return {
        name[len(pid) + 1 :]: StoreFile(url, f"{folder_key}/{name}", size)
        for name, size in listing
        if name.startswith(pid + "_")
    }
