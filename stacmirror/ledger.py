"""The mirror's ledger: a small SQLite file recording runs, scenes and verified files.

The catalog is built from the files on disk plus this ledger (checksums,
footprints from the search), so it can be rebuilt without the network. A
file counts as present only when its ledger state is ``done`` *and* the file
on disk still has the recorded size.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MirrorBusy
from .layout import Mirror

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started TEXT, finished TEXT, command TEXT, service_url TEXT,
    label TEXT, status TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS scenes (
    display_id TEXT PRIMARY KEY, dataset TEXT, entity_id TEXT, wrs_path INTEGER, wrs_row INTEGER,
    acquired TEXT, cloud_cover REAL, footprint TEXT, browse_url TEXT, folder TEXT, first_run INTEGER,
    last_run INTEGER);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, display_id TEXT, name TEXT, kind TEXT, size INTEGER, sha256 TEXT,
    state TEXT, updated TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS files_by_scene ON files(display_id);
"""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the mirror root
    display_id: str
    name: str
    kind: str  # band | bundle | extracted | browse
    size: int | None
    sha256: str | None
    state: str  # downloading | downloaded | done | failed


class Ledger:
    """Thread-safe access to ``OUT/.stacmirror/ledger.sqlite``."""

    def __init__(self, mirror: Mirror | Path):
        self.mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
        self.out = self.mirror.root
        self.mirror.state_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.mirror.ledger_path, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def open_existing(cls, mirror: Mirror | Path) -> Ledger | None:
        mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
        return cls(mirror) if mirror.ledger_path.exists() else None

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, command: str, service_url: str, label: str) -> int:
        cursor = self._exec(
            "INSERT INTO runs(started, command, service_url, label, status) VALUES (?,?,?,?,?)",
            (now(), command, service_url, label, "running"),
        )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self._exec(
            "UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
            (now(), status, json.dumps(summary), run_id),
        )

    # -- scenes -------------------------------------------------------------------------------

    def record_scene(self, run_id: int, dataset: str, scene: Any, folder: str) -> None:
        browse = scene.natural_colour_browse()
        self._exec(
            """INSERT INTO scenes(display_id, dataset, entity_id, wrs_path, wrs_row, acquired, cloud_cover,
                   footprint, browse_url, folder, first_run, last_run) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(display_id) DO UPDATE SET last_run=excluded.last_run,
                   cloud_cover=excluded.cloud_cover,
                   footprint=excluded.footprint, browse_url=excluded.browse_url""",
            (
                scene.display_id,
                dataset,
                scene.entity_id,
                scene.wrs_path,
                scene.wrs_row,
                scene.acquisition_date.isoformat() if scene.acquisition_date else None,
                scene.cloud_cover,
                json.dumps(scene.footprint) if scene.footprint else None,
                browse.url if browse else None,
                folder,
                run_id,
                run_id,
            ),
        )

    def scene(self, display_id: str) -> dict[str, Any] | None:
        cursor = self._exec("SELECT * FROM scenes WHERE display_id=?", (display_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    # -- files --------------------------------------------------------------------------------

    def set_file(self, record: FileRecord, error: str | None = None) -> None:
        self._exec(
            """INSERT INTO files(path, display_id, name, kind, size, sha256, state, updated, error)
               VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size,
               sha256=excluded.sha256, state=excluded.state, updated=excluded.updated, error=excluded.error,
               kind=excluded.kind""",
            (
                record.path,
                record.display_id,
                record.name,
                record.kind,
                record.size,
                record.sha256,
                record.state,
                now(),
                error,
            ),
        )

    def file(self, path: str) -> FileRecord | None:
        row = self._exec(
            "SELECT path, display_id, name, kind, size, sha256, state FROM files WHERE path=?", (path,)
        ).fetchone()
        return FileRecord(*row) if row else None

    def files_of(self, display_id: str) -> list[FileRecord]:
        rows = self._exec(
            "SELECT path, display_id, name, kind, size, sha256, state FROM files "
            "WHERE display_id=? ORDER BY path",
            (display_id,),
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def all_files(self) -> Iterator[FileRecord]:
        rows = self._exec("SELECT path, display_id, name, kind, size, sha256, state FROM files").fetchall()
        return (FileRecord(*row) for row in rows)

    def is_present(self, path: str) -> bool:
        """Done in the ledger and still on disk with the recorded size."""
        record = self.file(path)
        if record is None or record.state != "done":
            return False
        target = self.out / path
        return target.is_file() and (record.size is None or target.stat().st_size == record.size)


class MirrorLock:
    """An exclusive lock on a mirror; the OS drops it when the holder dies (even by kill -9)."""

    def __init__(self, mirror: Mirror | Path):
        self.mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
        self.path = self.mirror.lock_path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MirrorBusy(
                f"another harvest is running into {self.mirror.root}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def check_free(self) -> None:
        """Fail early, before any API call, when the mirror is busy."""
        if self.path.exists():
            self.acquire()
            self.release()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
