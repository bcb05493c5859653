"""What each Item was built from, in SQLite (``OUT/.stacmirror/catalog.sqlite``).

One row per scene folder, updated as items are written or removed and never
rewritten whole, so a no-op rebuild of 100 000 scenes reads a row per folder
and writes nothing. Parents (collections and their path/row catalogs) are
written from streaming queries over these rows, so memory stays flat in the
number of items.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..layout import Mirror

VERSION = "2"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS scenes (
    key TEXT PRIMARY KEY,           -- the scene folder, relative to the mirror root
    dataset TEXT NOT NULL,
    wrs_path INTEGER NOT NULL,
    wrs_row INTEGER NOT NULL,
    year INTEGER NOT NULL,
    id TEXT NOT NULL,
    item TEXT NOT NULL,             -- the item file, relative to the mirror root
    signature TEXT NOT NULL,        -- JSON: the product files' names, sizes and mtimes
    bbox TEXT NOT NULL,
    datetime TEXT NOT NULL,
    summary TEXT NOT NULL,          -- JSON: the properties collections summarise
    assets TEXT NOT NULL,           -- JSON: asset definitions for item_assets
    thumbnail TEXT,                 -- JSON: the thumbnail asset, if any
    footprint TEXT,                 -- WKT in the scene's CRS (for crop stacks)
    footprint_method TEXT
);
CREATE INDEX IF NOT EXISTS scenes_by_node ON scenes (dataset, wrs_path, wrs_row, year, item);
-- items written since their collection's items.parquet was last written (see catalog/parquet.py)
CREATE TABLE IF NOT EXISTS parquet_pending (item TEXT PRIMARY KEY, dataset TEXT NOT NULL);
"""
COLUMNS = (
    "key", "dataset", "wrs_path", "wrs_row", "year", "id", "item", "signature", "bbox", "datetime",
    "summary", "assets", "thumbnail", "footprint", "footprint_method",
)  # fmt: skip
JSON_COLUMNS = ("signature", "bbox", "summary", "assets", "thumbnail")


@dataclass(frozen=True)
class Node:
    """A place in the browsable tree: a dataset's path, or a path's row (``row`` None for a path)."""

    dataset: str
    wrs_path: int
    wrs_row: int | None = None


class CatalogState:
    def __init__(self, mirror: Mirror, *, fresh: bool = False):
        mirror.state_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(mirror.catalog_db_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if fresh or row is None or row[0] != VERSION:
            self._db.execute("DELETE FROM scenes")
            self._db.execute("DELETE FROM parquet_pending")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))
        self._in_batch = False

    def close(self) -> None:
        self.commit()
        self._db.close()

    def begin(self) -> None:
        """Group writes in one transaction until :meth:`commit` (much faster than one per item)."""
        if not self._in_batch:
            self._db.execute("BEGIN")
            self._in_batch = True

    def commit(self) -> None:
        if self._in_batch:
            self._db.execute("COMMIT")
            self._in_batch = False

    # -- one scene --------------------------------------------------------------------------------

    def signature(self, key: str) -> tuple[list[Any], str] | None:
        """(signature, item path) of a catalogued scene, or None."""
        row = self._db.execute("SELECT signature, item FROM scenes WHERE key=?", (key,)).fetchone()
        return (orjson.loads(row[0]), row[1]) if row else None

    def signatures_under(self, prefix: str) -> dict[str, tuple[str, str]]:
        """key → (signature JSON, item path) of the catalogued scenes whose key starts with
        ``prefix`` (a row folder and "/"): one indexed range read instead of a lookup per scene."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._db.execute(
            "SELECT key, signature, item FROM scenes WHERE key >= ? AND key < ?", (prefix, end)
        )
        return {key: (signature, item) for key, signature, item in rows}

    def node_of(self, key: str) -> tuple[str, int, int] | None:
        row = self._db.execute("SELECT dataset, wrs_path, wrs_row FROM scenes WHERE key=?", (key,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def put(self, entry: dict[str, Any]) -> None:
        values = [orjson.dumps(entry[c]).decode() if c in JSON_COLUMNS else entry[c] for c in COLUMNS]
        placeholders = ",".join("?" * len(COLUMNS))
        self._db.execute(
            f"INSERT OR REPLACE INTO scenes ({','.join(COLUMNS)}) VALUES ({placeholders})", values
        )
        self._db.execute(
            "INSERT OR REPLACE INTO parquet_pending VALUES (?, ?)", (entry["item"], entry["dataset"])
        )

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM scenes WHERE key=?", (key,))

    # -- items.parquet ----------------------------------------------------------------------------

    def parquet_pending(self, dataset: str) -> set[str]:
        """Item files (relative to the mirror) written since the dataset's items.parquet was."""
        query = "SELECT item FROM parquet_pending WHERE dataset=?"
        return {r[0] for r in self._db.execute(query, (dataset,))}

    def path_counts(self, dataset: str) -> dict[int, int]:
        """WRS path → how many items the dataset has there (the partitions of items.parquet)."""
        query = "SELECT wrs_path, COUNT(*) FROM scenes WHERE dataset=? GROUP BY wrs_path ORDER BY wrs_path"
        return {r[0]: r[1] for r in self._db.execute(query, (dataset,))}

    def parquet_written(self, dataset: str) -> None:
        self._db.execute("DELETE FROM parquet_pending WHERE dataset=?", (dataset,))

    # -- many scenes ------------------------------------------------------------------------------

    def scenes(self) -> Iterator[tuple[str, str]]:
        """(key, item path) of every catalogued scene."""
        yield from self._db.execute("SELECT key, item FROM scenes ORDER BY key")

    def datasets(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT dataset FROM scenes ORDER BY dataset")]

    def paths(self, dataset: str) -> list[int]:
        query = "SELECT DISTINCT wrs_path FROM scenes WHERE dataset=? ORDER BY wrs_path"
        return [r[0] for r in self._db.execute(query, (dataset,))]

    def rows(self, dataset: str, wrs_path: int) -> list[int]:
        query = "SELECT DISTINCT wrs_row FROM scenes WHERE dataset=? AND wrs_path=? ORDER BY wrs_row"
        return [r[0] for r in self._db.execute(query, (dataset, wrs_path))]

    def count(self, dataset: str, wrs_path: int, wrs_row: int) -> int:
        query = "SELECT COUNT(*) FROM scenes WHERE dataset=? AND wrs_path=? AND wrs_row=?"
        return int(self._db.execute(query, (dataset, wrs_path, wrs_row)).fetchone()[0])

    def entries(
        self,
        dataset: str,
        wrs_path: int | None = None,
        wrs_row: int | None = None,
        columns: tuple[str, ...] = COLUMNS,
    ) -> Iterator[dict[str, Any]]:
        """Rows of a dataset (or of one path, or one path/row), streamed in item order."""
        where, args = "dataset=?", [dataset]
        if wrs_path is not None:
            where, args = where + " AND wrs_path=?", [*args, wrs_path]
        if wrs_row is not None:
            where, args = where + " AND wrs_row=?", [*args, wrs_row]
        query = f"SELECT {','.join(columns)} FROM scenes WHERE {where} ORDER BY item"
        for row in self._db.execute(query, args):
            yield {
                c: orjson.loads(v) if c in JSON_COLUMNS and v is not None else v
                for c, v in zip(columns, row, strict=True)
            }
