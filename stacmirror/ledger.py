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
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
CREATE INDEX IF NOT EXISTS scenes_by_entity ON scenes(entity_id);
-- what each harvest asked for (re-run by sync), and the acquisitions it brought
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE, spec TEXT, created TEXT, last_run TEXT);
CREATE TABLE IF NOT EXISTS subscription_scenes (
    subscription INTEGER, entity_id TEXT, PRIMARY KEY (subscription, entity_id));
-- products replaced by a newer product of the same acquisition: 'pending' until the swap is done
CREATE TABLE IF NOT EXISTS replacements (
    old_id TEXT PRIMARY KEY, new_id TEXT, dataset TEXT, keep INTEGER, state TEXT, updated TEXT);
CREATE INDEX IF NOT EXISTS replacements_by_new ON replacements(new_id);
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
        self._db = sqlite3.connect(self.mirror.ledger_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()  # re-entered by statements inside transaction()
        # a mirror in an object store: key -> size of the objects there, listed once per run (there is
        # no file to stat); None: the files are on disk
        self.present_sizes: dict[str, int] | None = None

    @classmethod
    def open_existing(cls, mirror: Mirror | Path) -> Ledger | None:
        mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
        return cls(mirror) if mirror.ledger_path.exists() else None

    @classmethod
    @contextmanager
    def snapshot(cls, mirror: Mirror | Path) -> Iterator[Ledger]:
        """A private copy of the ledger, for runs that must leave the mirror byte-identical (a dry
        run): even a read-only SQLite connection leaves -wal and -shm files beside the database."""
        mirror = mirror if isinstance(mirror, Mirror) else Mirror(Path(mirror))
        with tempfile.TemporaryDirectory(prefix="stacmirror-ledger-") as scratch:
            copy = Mirror(Path(scratch) / "mirror")
            copy.state_dir.mkdir(parents=True)
            for suffix in ("", "-wal"):
                source = Path(f"{mirror.ledger_path}{suffix}")
                if source.exists():
                    shutil.copyfile(source, f"{copy.ledger_path}{suffix}")
            ledger = cls(copy)
            ledger.mirror, ledger.out = mirror, mirror.root  # files are still looked up in the mirror
            try:
                yield ledger
            finally:
                ledger.close()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements that must land together (a swap's file paths and its state)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

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

    def scenes_of_entity(self, entity_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT display_id, dataset, folder FROM scenes WHERE entity_id=? ORDER BY display_id",
            (entity_id,),
        )
        return [{"display_id": d, "dataset": ds, "folder": f} for d, ds, f in rows]

    def forget_scene(self, display_id: str) -> None:
        """A product that left the mirror: its scene and file rows."""
        self._exec("DELETE FROM files WHERE display_id=?", (display_id,))
        self._exec("DELETE FROM scenes WHERE display_id=?", (display_id,))

    def move_files(self, display_id: str, old_prefix: str, new_prefix: str) -> None:
        """Re-key a product's files after its folder moved (``old_prefix``/... -> ``new_prefix``/...)."""
        self._exec(
            "UPDATE files SET path = ? || substr(path, ?) WHERE display_id=? AND substr(path, 1, ?) = ?",
            (new_prefix, len(old_prefix) + 1, display_id, len(old_prefix) + 1, old_prefix + "/"),
        )

    def drop_files(self, display_id: str, prefix: str) -> None:
        """Forget a product's file rows under the folder ``prefix``."""
        self._exec(
            "DELETE FROM files WHERE display_id=? AND substr(path, 1, ?) = ?",
            (display_id, len(prefix) + 1, prefix + "/"),
        )

    # -- subscriptions ------------------------------------------------------------------------

    def add_subscription(self, key: str, spec: dict[str, Any]) -> int:
        """The subscription with this key (created when new); its last run is now."""
        self._exec(
            "INSERT INTO subscriptions(key, spec, created, last_run) VALUES (?,?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET last_run=excluded.last_run",
            (key, json.dumps(spec, sort_keys=True), now(), now()),
        )
        return int(self._rows("SELECT id FROM subscriptions WHERE key=?", (key,))[0][0])

    def subscriptions(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT s.id, s.spec, s.created, s.last_run, "
            "(SELECT count(*) FROM subscription_scenes m WHERE m.subscription = s.id) "
            "FROM subscriptions s ORDER BY s.id"
        )
        return [
            {"id": i, "spec": json.loads(spec), "created": c, "last_run": r, "scenes": n}
            for i, spec, c, r, n in rows
        ]

    def touch_subscription(self, subscription: int) -> None:
        self._exec("UPDATE subscriptions SET last_run=? WHERE id=?", (now(), subscription))

    def remove_subscription(self, subscription: int) -> bool:
        with self.transaction():
            gone = self._db.execute("DELETE FROM subscriptions WHERE id=?", (subscription,)).rowcount
            self._db.execute("DELETE FROM subscription_scenes WHERE subscription=?", (subscription,))
        return bool(gone)

    def add_members(self, subscription: int, entity_ids: list[str]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO subscription_scenes(subscription, entity_id) VALUES (?,?)",
                [(subscription, e) for e in entity_ids],
            )

    def members(self, subscription: int) -> set[str]:
        rows = self._rows("SELECT entity_id FROM subscription_scenes WHERE subscription=?", (subscription,))
        return {r[0] for r in rows}

    def drop_member(self, entity_id: str) -> None:
        self._exec("DELETE FROM subscription_scenes WHERE entity_id=?", (entity_id,))

    # -- replacements -------------------------------------------------------------------------

    def begin_replacement(self, dataset: str, new_id: str, old_ids: list[str], keep: bool) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO replacements(old_id, new_id, dataset, keep, state, updated) "
                "VALUES (?,?,?,?,'pending',?)",
                [(old, new_id, dataset, int(keep), now()) for old in old_ids],
            )

    def pending_replacements(self) -> dict[str, tuple[str, list[str], bool]]:
        """new product -> (dataset, the products it replaces, keep them) for swaps not finished."""
        found: dict[str, tuple[str, list[str], bool]] = {}
        for old, new, dataset, keep in self._rows(
            "SELECT old_id, new_id, dataset, keep FROM replacements WHERE state='pending' ORDER BY old_id"
        ):
            found.setdefault(new, (dataset, [], bool(keep)))[1].append(old)
        return found

    def finish_replacement(self, old_id: str) -> None:
        self._exec("UPDATE replacements SET state='done', updated=? WHERE old_id=?", (now(), old_id))

    def predecessors(self, new_id: str) -> list[tuple[str, str]]:
        """(replaced product, when) for the products ``new_id`` replaced."""
        rows = self._rows(
            "SELECT old_id, updated FROM replacements WHERE new_id=? AND state='done' ORDER BY old_id",
            (new_id,),
        )
        return [(old, when) for old, when in rows]

    def is_present(self, path: str) -> bool:
        """Done in the ledger and still on disk (or in the store) with the recorded size."""
        record = self.file(path)
        if record is None or record.state != "done":
            return False
        if self.present_sizes is not None:
            size = self.present_sizes.get(path)
            return size is not None and (record.size is None or size == record.size)
        target = self.out / path
        return target.is_file() and (record.size is None or target.stat().st_size == record.size)


BUSY = "another harvest or sync is running into {root}; wait for it to finish"


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
            raise MirrorBusy(BUSY.format(root=self.mirror.root)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def check_free(self) -> None:
        """Fail early, before any API call, when the mirror is busy (writes nothing)."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MirrorBusy(BUSY.format(root=self.mirror.root)) from None
        finally:
            os.close(fd)  # closing drops the probe's lock

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
