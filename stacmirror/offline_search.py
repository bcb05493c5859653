"""Searching a mirror offline: the collections' ``items.parquet`` through DuckDB, then an exact test.

Every collection with an ``items.parquet`` is searched: the datasets' and the crop stacks'.
DuckDB filters on the columns (the ``bbox`` struct, ``datetime``, any property a CQL2 filter
names), sorts (``sortby``, always ending with collection and id, so pages are stable) and pages.
With an area, the ``bbox`` columns give the candidates; a candidate whose box lies inside a
rectangular area is a match as it stands, and the others get an exact shapely test of their
geometry, as far as the page needs and no further. A CQL2 ``s_intersects`` is exact in SQL,
through a vectorised shapely function registered on the connection. DuckDB's spatial extension is
not needed.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from .area import load_area
from .errors import InvalidInput, NotACatalog
from .layout import Mirror
from .property_filter import INTERSECTS_FUNCTION, NOT_QUERYABLE, quoted, to_sql
from .sort_keys import after_key_sql

JSON_TYPES = {
    "DOUBLE": {"type": "number"},
    "FLOAT": {"type": "number"},
    "BIGINT": {"type": "integer"},
    "INTEGER": {"type": "integer"},
    "VARCHAR": {"type": "string"},
    "BOOLEAN": {"type": "boolean"},
    "TIMESTAMP WITH TIME ZONE": {"type": "string", "format": "date-time"},
}


def _source(groups: list[list[Path]], unify: bool = False) -> tuple[str, list[Any]]:
    """`` FROM ...`` over these collections' Parquet files, and its parameters.

    A dataset's partitions share one schema (the catalog writes them so), so they are read without
    ``union_by_name``, which would open every file's footer first: at a million items (233
    partitions) that doubled a first page. Single files (a crop stack's, or a dataset of one WRS
    path) may differ from each other and are unified by name; the parts are joined by name.
    ``unify`` unifies everything, for a folder caught between two schemas by a killed write: DuckDB
    refuses a partition that lacks a column of the first one, and the search then unifies; a
    column only later partitions have is left out until the next catalog run writes them all in
    one schema again."""
    parts, parameters = [], []
    singles = [str(f) for files in groups if len(files) == 1 or unify for f in files]
    for files in groups:
        if len(files) > 1 and not unify:
            parts.append("SELECT * FROM read_parquet(?)")
            parameters.append([str(f) for f in files])
    if singles:
        parts.append("SELECT * FROM read_parquet(?, union_by_name = true)")
        parameters.append(singles)
    if len(parts) == 1:
        return " FROM" + parts[0].removeprefix("SELECT * FROM"), parameters
    return " FROM (" + " UNION ALL BY NAME ".join(parts) + ")", parameters


def _columns(connection: Any, source: str, parameters: list[Any]) -> dict[str, str]:
    """Column name → DuckDB type of the collections' items.parquet."""
    rows = connection.execute("DESCRIBE SELECT *" + source, parameters).fetchall()
    return {row[0]: row[1] for row in rows}


def queryables(out: str | Path, collection: str | None = None) -> dict[str, dict[str, Any]]:
    """The item properties one can filter on, as JSON Schema fragments, read from the parquet
    schema: every scalar column (lists and objects, such as ``proj:shape``, are left out)."""
    mirror, _ = searched_mirror(out)
    groups = [fs for name, fs in mirror.collection_parquet_files().items() if collection in (None, name)]
    if not groups:
        return {}
    import duckdb

    connection = duckdb.connect()
    try:
        try:
            columns = _columns(connection, *_source(groups))
        except duckdb.InvalidInputException:  # partitions of two schemas (a killed write)
            columns = _columns(connection, *_source(groups, unify=True))
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
    # every match, whatever ``limit`` and ``offset`` kept; None when counting would have meant an
    # exact geometry test of too many candidates (``count=False``)
    matched: int | None = 0
    # where the next page starts, for ``after=`` (a position among the candidates), or None
    next_after: int | None = None
    # the sort key of the page's last item, for ``after_key=`` (None when there is no next page)
    next_key: list[Any] | None = None

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


# the columns a result carries besides id, collection, geometry and bbox
RESULT_PROPERTIES = ("datetime", "platform", "eo:cloud_cover", "landsat:wrs_path", "landsat:wrs_row")
ENTRY_COLUMNS = 5 + len(RESULT_PROPERTIES)  # a row's columns for its entry; the sort key follows
EXACT_COUNT_MAX = 20_000  # with count=False, at most this many candidates are tested to count
BATCH = 512


def _sort_terms(sortby: list[tuple[str, bool]] | None, columns: dict[str, str]) -> list[tuple[str, bool]]:
    """(column, descending) keys of the ORDER BY: property names or ``properties.<name>``, ``id``,
    ``collection``; newest first by default. Collection and id end it, so the order is total."""
    keys = sortby or [("datetime", True)]
    terms: list[tuple[str, bool]] = []
    for name, descending in keys:
        column = name.removeprefix("properties.")
        if column not in columns or column in NOT_QUERYABLE:
            raise InvalidInput("sortby", f"cannot sort by {name!r}: not a queryable property")
        if column not in {c for c, _ in terms}:
            terms.append((column, descending))
    return terms + [(c, False) for c in ("collection", "id") if c not in {t for t, _ in terms}]


def _intersects(geometries: Any, areas: Any) -> Any:
    """DuckDB function (Arrow in, Arrow out): whether each WKB geometry meets the WKB area."""
    import pyarrow as pa

    shapes = shapely.from_wkb(geometries.to_numpy(zero_copy_only=False))
    keys = areas.to_pylist()
    tested = {}
    for key in set(keys):  # one area per call site: the literal of one s_intersects
        tested[key] = shapely.from_wkb(key)
        shapely.prepare(tested[key])
    if len(tested) == 1:
        return pa.array(shapely.intersects(shapes, tested[keys[0]]), type=pa.bool_())
    return pa.array([bool(shapely.intersects(g, tested[k])) for g, k in zip(shapes, keys, strict=True)])


def connect() -> Any:
    """A DuckDB connection that knows ``s_intersects`` (see :mod:`.property_filter`)."""
    import duckdb

    try:
        from duckdb.sqltypes import BLOB, BOOLEAN
    except ImportError:  # DuckDB before 1.4
        from duckdb.typing import BLOB, BOOLEAN  # type: ignore[no-redef]

    connection = duckdb.connect()
    connection.create_function(INTERSECTS_FUNCTION, _intersects, [BLOB, BLOB], BOOLEAN, type="arrow")
    return connection


def searched_mirror(out: str | Path) -> tuple[Mirror, str | None]:
    """The mirror to read, and for a store its URL: a store is searched through a local copy of its
    collections and items.parquet (refreshed by e-tag); result hrefs then point into the store."""
    from .storage import StoreMirror, is_store_url

    if not is_store_url(out):
        return Mirror(Path(out)), None
    from .catalog.published import read_copy

    store = StoreMirror.open(str(out))
    return Mirror(read_copy(store)), store.url


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
    sortby: list[tuple[str, bool]] | None = None,
    after: int = 0,
    after_key: list[Any] | None = None,
    count: bool = True,
) -> QueryResult:
    """Items of the mirror matching every filter given (bbox or aoi: intersecting the geometry;
    ``filter``: a CQL2 JSON tree over any item property, see :mod:`stacmirror.property_filter`),
    in ``sortby`` order ((property, descending) pairs; newest first by default); ``offset`` and
    ``limit`` page through them, and ``matched`` counts them all.

    ``after`` starts at that position among the candidates, as ``next_after`` of the page before
    gave it. ``after_key`` starts after the item with that sort key, as ``next_key`` of the page
    before gave it: the STAC API pages this way, so that a deep page costs what the first does (an
    offset makes DuckDB sort and skip every row before it). With ``count=False`` an area search
    leaves ``matched`` None rather than test more than ``EXACT_COUNT_MAX`` geometries just to
    count them."""
    import duckdb

    mirror, url = searched_mirror(out)
    wanted = [collection] if isinstance(collection, str) else collection
    if not mirror.catalog_path.exists():
        raise NotACatalog(f"{url or mirror.root} has no catalog yet (build it first: stacmirror catalog)")
    groups = [
        fs for name, fs in mirror.collection_parquet_files().items() if wanted is None or name in wanted
    ]
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidInput("limit", f"must be a whole number >= 1, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("offset", f"must be a whole number >= 0, got {offset!r}")
    if not isinstance(after, int) or after < 0:
        raise InvalidInput("after", f"must be a whole number >= 0, got {after!r}")
    if cloud_max is not None and not 0 <= float(cloud_max) <= 100:
        raise InvalidInput("cloud_max", f"must be between 0 and 100, got {cloud_max}")
    area = intersects
    if bbox is not None or aoi is not None:
        area = load_area(aoi=aoi, bbox=bbox)
    begin, finish = _date(start, "start"), _date(end, "end", end=True)
    if begin and finish and begin > finish:
        raise InvalidInput("start", f"{start} is after end {end}")
    if not groups:
        return QueryResult()
    where, args = [], []
    sure = "TRUE"  # a candidate that is a match without an exact test
    rectangle = area is not None and area.equals(box(*area.bounds))
    if rectangle and _covers_the_globe(area.bounds):
        # every lon/lat geometry lies inside: a search without an area, paged and counted by DuckDB
        # with no box read and no geometry tested (a map zoomed out sends this box)
        where.append("bbox IS NOT NULL")
        area = None
    if area is not None:  # a loose box test on the columns first; the exact test follows
        west, south, east, north = area.bounds
        where.append("bbox.ymax >= ? AND bbox.ymin <= ?")
        args += [south, north]
        where.append("(bbox.xmin > bbox.xmax OR (bbox.xmax >= ? AND bbox.xmin <= ?))")
        args += [west, east]
        sure = "FALSE"
        if rectangle:  # a box inside a rectangle holds a geometry inside it
            sure = (
                f"(bbox.xmin <= bbox.xmax AND bbox.xmin >= {float(west)!r} AND bbox.xmax <= {float(east)!r}"
                f" AND bbox.ymin >= {float(south)!r} AND bbox.ymax <= {float(north)!r})"
            )
    for value, test in ((begin, "datetime >= ?"), (finish, "datetime <= ?")):
        if value is not None:
            where.append(test)
            args.append(value)
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
    connection = connect()
    try:
        source, sources = _source(groups)
        try:
            columns = _columns(connection, source, sources)
        except duckdb.InvalidInputException:  # partitions of two schemas (a killed write)
            source, sources = _source(groups, unify=True)
            columns = _columns(connection, source, sources)
        if filter:  # the property names are checked against the parquet's columns
            tested, values = to_sql(filter, columns)
            where.append(tested)
            args += values
        terms = _sort_terms(sortby, columns)
        order = ", ".join(f"{quoted(c)} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in terms)
        condition = " WHERE " + " AND ".join(where) if where else ""
        shown = ", ".join(quoted(c) if c in columns else "NULL" for c in RESULT_PROPERTIES)
        keys = ", ".join(quoted(c) for c, _ in terms)

        def past(key: list[Any]) -> tuple[str, list[Any]]:  # the rows after ``key``, and its values
            sql, values = after_key_sql(terms, key)
            return (" AND " if condition else " WHERE ") + sql, values

        beyond, beyond_args = past(after_key) if after_key is not None else ("", [])
        selected = f"SELECT id, collection, geometry::BLOB, bbox, {sure}, {shown}, {keys}"
        parameters = [*sources, *args]
        # with a limit DuckDB keeps the top rows instead of sorting every candidate: all of a page
        # when every candidate is a match, else chunks (4x the page, growing 4x) until it is full
        chunk = None if limit is None else (4 if area is not None else 1) * (int(offset) + int(limit) + 1)

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            extra, extra_args, skip, size = beyond, beyond_args, int(after), chunk
            while True:
                page = f" OFFSET {skip}" if size is None else f" LIMIT {size} OFFSET {skip}"
                sql = f"{selected}{source}{condition}{extra} ORDER BY {order}{page}"
                cursor = connection.execute(sql, [*parameters, *extra_args])
                got, last = 0, ()
                while batch := cursor.fetchmany(BATCH):
                    got, last = got + len(batch), batch[-1]
                    yield batch
                if size is None or got < size:
                    return
                extra, extra_args = past(list(last[ENTRY_COLUMNS:]))  # the next chunk
                skip, size = 0, size * 4

        result = QueryResult()
        with _collector_paused():
            try:
                seen = _page(batches(), mirror, area, after, offset, limit, result)
            except duckdb.Error as exc:  # a key of the wrong type for its column
                if after_key is None or filter:
                    raise
                raise InvalidInput("after_key", str(exc).splitlines()[0]) from None
            if seen is not None and not after and after_key is None:  # every match was read
                result.matched = seen
            elif area is None:
                result.matched = connection.execute(
                    "SELECT count(*)" + source + condition, parameters
                ).fetchone()[0]
            else:
                result.matched = _count(connection, source, condition, sure, parameters, area, count)
    except duckdb.Error as exc:  # e.g. a string compared with a number column
        if not filter:
            raise
        raise InvalidInput("filter", str(exc).splitlines()[0]) from None
    finally:
        connection.close()
    if url is not None:  # the items themselves are in the store
        for entry in result.items:
            entry["item"] = f"{url}/{mirror.rel(Path(entry['item']))}"
    return result


def _covers_the_globe(bounds: tuple[float, float, float, float]) -> bool:
    """Whether a rectangle of these bounds holds every longitude and latitude."""
    west, south, east, north = bounds
    return west <= -180 and south <= -90 and east >= 180 and north >= 90


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a search reads rows and makes entries:
    they are many small containers and no cycles, and the collections it ran over a large heap
    took two thirds of a 10 000-item query."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _page(
    batches: Iterable[list[tuple[Any, ...]]],
    mirror: Mirror,
    area: BaseGeometry | None,
    after: int,
    offset: int,
    limit: int | None,
    result: QueryResult,
) -> int | None:
    """Read candidates in order a batch at a time, test those not sure, and keep the page: skip
    ``offset`` matches, keep ``limit``, and note where the next match is (the next page). Returns
    how many matches there were when every candidate was read (None when the page ended first)."""
    if area is not None:
        shapely.prepare(area)
    position, skip = after, offset
    kept: list[tuple[Any, ...]] = []
    for batch in batches:
        unsure = [i for i, row in enumerate(batch) if not row[4]]
        passed = [True] * len(batch)
        if unsure and area is not None:
            shapes = shapely.from_wkb([batch[i][2] for i in unsure])
            for i, ok in zip(unsure, shapely.intersects(shapes, area), strict=True):
                passed[i] = bool(ok)
        for row, ok in zip(batch, passed, strict=True):
            position += 1
            if not ok:
                continue
            if skip:
                skip -= 1
            elif limit is None or len(kept) < limit:
                kept.append(row)
            else:
                result.next_after = position - 1
                result.next_key = list(kept[-1][ENTRY_COLUMNS:]) if kept else None
                result.items = _entries(mirror, kept)
                return None
    result.items = _entries(mirror, kept)
    return offset - skip + len(kept)


def _entries(mirror: Mirror, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The result entries of these rows. Geometries go from WKB to GeoJSON through GEOS, all at
    once (shapely's ``mapping`` walks every coordinate in Python, and took about a third longer)."""
    import orjson

    geometries = shapely.to_geojson(shapely.from_wkb([row[2] for row in rows])) if rows else []
    found = []
    for row, geometry in zip(rows, geometries, strict=True):
        item_id, coll, _, box_, _, when, *rest = row[:ENTRY_COLUMNS]
        properties = dict(zip(RESULT_PROPERTIES[1:], rest, strict=True))
        if when is not None:
            properties = {
                "datetime": when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                **properties,
            }
        found.append(
            {
                "id": item_id,
                "collection": coll,
                "bbox": [box_["xmin"], box_["ymin"], box_["xmax"], box_["ymax"]],
                "geometry": orjson.loads(geometry),
                "properties": properties,
                "item": mirror.item_file_text(coll, item_id),
            }
        )
    return found


def _count(
    connection: Any,
    source: str,
    condition: str,
    sure: str,
    parameters: list[Any],
    area: BaseGeometry,
    full: bool,
) -> int | None:
    """Every match of an area search: the sure candidates counted by DuckDB, the others tested
    (all of them only when ``full``; else None past ``EXACT_COUNT_MAX``)."""
    counted, unsure = connection.execute(
        f"SELECT count(*) FILTER (WHERE {sure}), count(*) FILTER (WHERE NOT {sure}){source}{condition}",
        parameters,
    ).fetchone()
    if not unsure:
        return counted
    if not full and unsure > EXACT_COUNT_MAX:
        return None
    untested = f"{condition} AND NOT {sure}" if condition else f" WHERE NOT {sure}"
    cursor = connection.execute(f"SELECT geometry::BLOB{source}{untested}", parameters)
    while batch := cursor.fetchmany(BATCH * 8):
        counted += int(shapely.intersects(shapely.from_wkb([r[0] for r in batch]), area).sum())
    return counted
