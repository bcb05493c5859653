"""Searching a mirror offline: the collections' ``items.parquet`` through DuckDB, then an exact test.

DuckDB filters on the columns (the ``bbox`` struct, ``datetime``, ``eo:cloud_cover``,
``landsat:wrs_path``/``row``, ``platform``); candidates then get an exact test of their geometry
against the area with shapely, so a spatial filter means "intersects the item geometry", as in a
STAC API. DuckDB's spatial extension is not needed (it would be downloaded at run time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from .area import load_area
from .errors import InvalidInput, NotACatalog
from .layout import Mirror
from .property_filter import NOT_QUERYABLE, to_sql

JSON_TYPES = {
    "DOUBLE": {"type": "number"},
    "FLOAT": {"type": "number"},
    "BIGINT": {"type": "integer"},
    "INTEGER": {"type": "integer"},
    "VARCHAR": {"type": "string"},
    "BOOLEAN": {"type": "boolean"},
    "TIMESTAMP WITH TIME ZONE": {"type": "string", "format": "date-time"},
}


def _columns(connection: Any, files: list[Path]) -> dict[str, str]:
    """Column name → DuckDB type of the collections' items.parquet."""
    rows = connection.execute(
        "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)", [[str(f) for f in files]]
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def queryables(out: str | Path, collection: str | None = None) -> dict[str, dict[str, Any]]:
    """The item properties one can filter on, as JSON Schema fragments, read from the parquet
    schema: every scalar column (lists and objects, such as ``proj:shape``, are left out)."""
    mirror = Mirror(Path(out))
    files = [p for p in mirror.item_parquets() if collection is None or p.parent.name == collection]
    if not files:
        return {}
    import duckdb

    connection = duckdb.connect()
    try:
        columns = _columns(connection, files)
    finally:
        connection.close()
    return {
        name: {"title": name, **JSON_TYPES[kind]}
        for name, kind in sorted(columns.items())
        if name not in NOT_QUERYABLE and kind in JSON_TYPES
    }


@dataclass
class QueryResult:
    """The matching items, newest first; ``to_dict()`` is what ``query --json`` prints."""

    items: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0  # every match, whatever ``limit`` and ``offset`` kept

    @property
    def ids(self) -> list[str]:
        return [i["id"] for i in self.items]

    def to_dict(self) -> dict[str, Any]:
        return {"count": len(self.items), "matched": self.matched, "items": self.items}

    def to_geojson(self) -> dict[str, Any]:
        features = [
            {"type": "Feature", "id": i["id"], "geometry": i["geometry"], "properties": i["properties"]}
            for i in self.items
        ]
        return {"type": "FeatureCollection", "features": features}


def _date(value: Any, name: str, end: bool = False) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(name, f"must be a date (YYYY-MM-DD) or an ISO time, got {value!r}") from None
        if end and len(str(value)) == 10:
            moment += dt.timedelta(days=1) - dt.timedelta(microseconds=1)  # the whole day
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def search(
    out: str | Path,
    *,
    collection: str | list[str] | None = None,
    bbox: Any = None,
    aoi: Any = None,
    intersects: BaseGeometry | None = None,
    start: Any = None,
    end: Any = None,
    cloud_max: float | None = None,
    cloud_min: float | None = None,
    path: int | None = None,
    row: int | None = None,
    platform: str | None = None,
    ids: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    filter: dict[str, Any] | None = None,  # noqa: A002 - the STAC API's name for it
) -> QueryResult:
    """Items of the mirror matching every filter given (bbox or aoi: intersecting the geometry;
    ``filter``: a CQL2 JSON tree over any item property, see :mod:`stacmirror.property_filter`),
    newest first; ``offset`` and ``limit`` page through them, and ``matched`` counts them all.

    Without an area, DuckDB counts and pages by itself; with one, every candidate is tested but
    only the page's items are built."""
    import duckdb

    mirror = Mirror(Path(out))
    wanted = [collection] if isinstance(collection, str) else collection
    files = [p for p in mirror.item_parquets() if wanted is None or p.parent.name in wanted]
    if not mirror.catalog_path.exists():
        raise NotACatalog(f"{mirror.root} has no catalog yet (build it first: stacmirror catalog)")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidInput("limit", f"must be a whole number >= 1, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("offset", f"must be a whole number >= 0, got {offset!r}")
    if cloud_max is not None and not 0 <= float(cloud_max) <= 100:
        raise InvalidInput("cloud_max", f"must be between 0 and 100, got {cloud_max}")
    area = intersects
    if bbox is not None or aoi is not None:
        area = load_area(aoi=aoi, bbox=bbox)
    begin, finish = _date(start, "start"), _date(end, "end", end=True)
    if begin and finish and begin > finish:
        raise InvalidInput("start", f"{start} is after end {end}")
    if not files:
        return QueryResult()
    where, args = [], []
    if area is not None:  # a loose box test on the columns first; the exact test follows
        west, south, east, north = area.bounds
        where.append("bbox.ymax >= ? AND bbox.ymin <= ?")
        args += [south, north]
        where.append("(bbox.xmin > bbox.xmax OR (bbox.xmax >= ? AND bbox.xmin <= ?))")
        args += [west, east]
    if begin is not None:
        where.append("datetime >= ?")
        args.append(begin)
    if finish is not None:
        where.append("datetime <= ?")
        args.append(finish)
    if cloud_max is not None:
        where.append('"eo:cloud_cover" <= ?')
        args.append(float(cloud_max))
    if cloud_min is not None:
        where.append('"eo:cloud_cover" >= ?')
        args.append(float(cloud_min))
    for column, value in (("landsat:wrs_path", path), ("landsat:wrs_row", row)):
        if value is not None:
            where.append(f'"{column}" = ?')
            args.append(f"{int(value):03d}")
    if platform is not None:
        where.append("platform = ?")
        args.append(platform)
    if ids:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        args += list(ids)
    source = " FROM read_parquet(?, union_by_name = true)"
    page = ""
    if area is None and (limit is not None or offset):
        page = f" LIMIT {int(limit) if limit is not None else 'ALL'} OFFSET {int(offset)}"
    connection = duckdb.connect()
    try:
        if filter:  # the property names are checked against the parquet's columns
            tested, values = to_sql(filter, set(_columns(connection, files)))
            where.append(tested)
            args += values
        condition = " WHERE " + " AND ".join(where) if where else ""
        sql = (
            'SELECT id, collection, geometry, bbox, datetime, platform, "eo:cloud_cover", '
            '"landsat:wrs_path", "landsat:wrs_row"'
            + source
            + condition
            + " ORDER BY datetime DESC, id"
            + page
        )
        parameters = [[str(f) for f in files], *args]
        rows = connection.execute(sql, parameters).fetchall()
        matched = None
        if area is None:
            matched = connection.execute("SELECT count(*)" + source + condition, parameters).fetchone()[0]
    except duckdb.Error as exc:  # e.g. a string compared with a number column
        if not filter:
            raise
        raise InvalidInput("filter", str(exc).splitlines()[0]) from None
    finally:
        connection.close()
    result = QueryResult()
    prepared = prep(area) if area is not None else None
    first, last = (0, None) if area is None else (offset, None if limit is None else offset + limit)
    count = 0
    for item_id, coll, wkb, box, when, plat, cloud, wrs_path, wrs_row in rows:
        geometry = shapely.from_wkb(wkb)
        if prepared is not None and not prepared.intersects(geometry):
            continue
        count += 1
        if count <= first or (last is not None and count > last):
            continue  # a match outside the page: counted, not built
        properties = {
            "datetime": when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "platform": plat,
            "eo:cloud_cover": cloud,
            "landsat:wrs_path": wrs_path,
            "landsat:wrs_row": wrs_row,
        }
        result.items.append(
            {
                "id": item_id,
                "collection": coll,
                "bbox": [box["xmin"], box["ymin"], box["xmax"], box["ymax"]],
                "geometry": mapping(geometry),
                "properties": properties,
                "item": str(mirror.item_path(mirror.scene_dir(coll, item_id))),
            }
        )
    result.matched = matched if matched is not None else count
    return result
