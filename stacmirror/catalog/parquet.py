"""``OUT/<dataset>/items.parquet/<PPP>.parquet``: the collection's items as stac-geoparquet, one
file per WRS path, one row per item.

A folder of partitions rather than one file so that keeping it in step costs the paths that
changed, not the collection: at a million scenes a path holds a few thousand items, and merging a
few changed items rewrites a few small files instead of the whole table. Parquet readers read the
folder as one table (pyarrow, geopandas, DuckDB with ``items.parquet/*.parquet``): every partition
has the same schema, the union of all of them with columns and struct fields sorted by name.

Within a partition rows are sorted by space (a Z-order curve over the footprint's centre), then
time, then item path, so that row groups cover compact areas. Asset hrefs are made relative to the
collection folder; relative links are left out.

A partition is written again when it has pending items (the state database lists the items
written since), or when its row count disagrees with the state's (an item removed, a file lost
or damaged), two ways, with the same rows in the same order (a test compares them):

* **merged**: the rows of its current file, without those of removed or rewritten items, plus
  the rewritten and new items parsed from their files, sorted;
* **rebuilt** from its items' files, a batch at a time, when there is no usable file.

Each partition is replaced atomically. A killed run leaves its items pending, so the next run
writes their partitions again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..fileio import relative_href
from ..landsat import ProductId
from ..layout import Mirror
from .state import CatalogState

BATCH = 2_000


def z_order(lon: float, lat: float, bits: int = 16) -> int:
    """Interleaved bits of the quantised lon/lat: nearby places get nearby keys."""
    x = int((min(max(lon, -180.0), 180.0) + 180.0) / 360.0 * ((1 << bits) - 1))
    y = int((min(max(lat, -90.0), 90.0) + 90.0) / 180.0 * ((1 << bits) - 1))
    key = 0
    for bit in range(bits):
        key |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return key


def _centre(bbox: list[float]) -> tuple[float, float]:
    west, south, east, north = bbox[:4]
    if west > east:  # across the antimeridian
        lon = (west + east + 360.0) / 2.0
        lon = lon - 360.0 if lon > 180.0 else lon
    else:
        lon = (west + east) / 2.0
    return lon, (south + north) / 2.0


def _items(mirror: Mirror, order: list[tuple[Any, ...]], collection_dir: Path) -> Iterator[dict[str, Any]]:
    for key in order:
        path = mirror.root / key[2]
        item = orjson.loads(path.read_bytes())
        for asset in item.get("assets", {}).values():
            href = str(asset.get("href", ""))
            if "://" not in href:  # normpath, not resolve(): no file-system call per asset
                asset["href"] = relative_href(Path(os.path.normpath(path.parent / href)), collection_dir)
        item["links"] = [link for link in item.get("links", []) if "://" in str(link.get("href", ""))]
        yield item


def partition_order(state: CatalogState, dataset: str, wrs_path: int) -> list[tuple[int, str, str, str]]:
    """(Z-order key, datetime, item path, id) of one WRS path's items, in the order of its rows."""
    return sorted(
        (z_order(*_centre(e["bbox"])), e["datetime"], e["item"], e["id"])
        for e in state.entries(dataset, wrs_path=wrs_path, columns=("bbox", "datetime", "item", "id"))
    )


def write_items_parquet(mirror: Mirror, state: CatalogState, dataset: str) -> int:
    """Bring the dataset's items.parquet folder in step with its items; returns its row count (0:
    the folder is removed).

    Only the partitions (WRS paths) with pending items, or whose row count disagrees with the
    state (items removed, a file lost or damaged), are written again; then every partition is
    brought to the collection's schema, so the folder reads as one table."""
    import pyarrow as pa

    folder = mirror.items_parquet(dataset)
    counts = state.path_counts(dataset)
    if folder.is_file():  # one file, as versions before the partitioning wrote: written again
        folder.unlink()
    if not counts:
        remove_items_parquet(folder)
        state.parquet_written(dataset)
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    mirror.state_dir.mkdir(parents=True, exist_ok=True)
    wanted = {mirror.items_partition(dataset, p).name for p in counts}
    for entry in folder.iterdir():  # partitions of paths no longer held; leftovers of a killed run
        if entry.name not in wanted:
            entry.unlink()
    pending: dict[int, set[str]] = {}
    for rel in state.parquet_pending(dataset):
        pid = ProductId.maybe(Path(rel).stem)  # an item file is named <id>.json
        if pid is not None:
            pending.setdefault(pid.path, set()).add(rel)
    footers = {p: _footer(mirror.items_partition(dataset, p)) for p in counts}
    touched = [p for p in counts if p in pending or footers[p] is None or footers[p][0] != counts[p]]
    collection_dir = mirror.collection_path(dataset).parent
    schemas = {p: footer[1] for p, footer in footers.items() if footer is not None and p not in touched}
    staged: dict[int, Path] = {}
    try:
        for p in touched:
            target = mirror.items_partition(dataset, p)
            staged[p] = _staging(target)
            order = partition_order(state, dataset, p)
            schema = None
            if footers[p] is not None:
                schema = _merge(mirror, target, staged[p], order, pending.get(p, set()), collection_dir)
            if schema is None:  # no file, or one not in step: this path's items, from their files
                schema = _rewrite(mirror, staged[p], order, collection_dir)
            schemas[p] = schema
        common = _canonical(pa.unify_schemas(list(schemas.values()), promote_options="permissive"))
        for p, schema in sorted(schemas.items()):
            if not schema.equals(common, check_metadata=False):  # lacks fields other paths have
                target = mirror.items_partition(dataset, p)
                source = staged.get(p, target)
                staged[p] = _staging(target)
                _conform_file(source, common, staged[p])
        for p, tmp in sorted(staged.items()):
            os.replace(tmp, mirror.items_partition(dataset, p))
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    state.parquet_written(dataset)
    return sum(counts.values())


def partitions_missing(mirror: Mirror, state: CatalogState, dataset: str) -> bool:
    """Whether a WRS path the dataset holds has no partition file (a listing; nothing is read)."""
    folder = mirror.items_parquet(dataset)
    held = {e.name for e in os.scandir(folder)} if folder.is_dir() else set()
    return any(mirror.items_partition(dataset, p).name not in held for p in state.paths(dataset))


def _staging(partition: Path) -> Path:
    """Where a partition is written before it replaces the file (hidden: no reader lists it)."""
    return partition.with_name(f".{partition.name}.tmp")


def remove_items_parquet(path: Path) -> None:
    """Remove a collection's items.parquet: a folder of partitions, or one file."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _footer(path: Path) -> tuple[int, Any] | None:
    """(row count, Arrow schema) of a partition file, or None when it is missing or not Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path)
        return metadata.metadata.num_rows, metadata.schema_arrow
    except (pa.ArrowException, OSError):
        return None


def _canonical_type(kind: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_struct(kind):
        fields = sorted((kind.field(i) for i in range(kind.num_fields)), key=lambda f: f.name)
        return pa.struct([f.with_type(_canonical_type(f.type)) for f in fields])
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_canonical_type(kind.value_type)))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_canonical_type(kind.value_type)))
    return kind


def _canonical(schema: Any) -> Any:
    """The schema with its columns and struct fields sorted by name: the union of the partitions'
    schemas is then the same whichever partitions were written, and in whatever order."""
    import pyarrow as pa

    fields = sorted(schema, key=lambda f: f.name)
    return pa.schema([f.with_type(_canonical_type(f.type)) for f in fields], metadata=schema.metadata)


def write_parquet_of(mirror: Mirror, item_files: list[Path], target: Path) -> int:
    """``target`` as stac-geoparquet of these item files, in their order, written atomically (a
    crop collection's: a few dozen items, with no state to merge from); 0 items removes it."""
    if not item_files:
        target.unlink(missing_ok=True)
        return 0
    mirror.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    order = [(0, "", mirror.rel(path)) for path in item_files]
    _rewrite(mirror, tmp, order, target.parent)
    os.replace(tmp, target)
    return len(order)


def _rewrite(mirror: Mirror, tmp: Path, order: list[tuple[Any, ...]], collection_dir: Path) -> Any:
    """These items, a batch at a time, into ``tmp``; returns its (canonical) schema. Each batch is
    parsed and spilled to a numbered Parquet file, their schemas are unified, and the files are
    read back in order in the unified schema (missing fields become nulls) and streamed out.

    This is what stac-geoparquet's "ChunksToDisk" does, except for the order: it reads its chunk
    files back as a dataset, in the order of their names (0, 1, 10, 11, ..., 2, ...), which
    scrambles the sort from the eleventh batch on."""
    import itertools

    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import to_parquet

    items = _items(mirror, order, collection_dir)
    tables = (_to_arrow(chunk) for chunk in iter(lambda: list(itertools.islice(items, BATCH)), []))
    first = next(tables)
    second = next(tables, None)
    if second is None:  # one batch, as a WRS path nearly always is: no spill files
        schema = _canonical(first.schema)
        to_parquet(_conform(first, schema), tmp)
        return schema
    with tempfile.TemporaryDirectory(dir=mirror.state_dir, prefix="parquet-") as spill:
        files: list[Path] = []
        schema = None
        for table in itertools.chain([first, second], tables):
            first = second = None  # each batch is held only until it is spilled
            files.append(Path(spill) / f"{len(files):08d}.parquet")
            pq.write_table(table, files[-1])
            if schema is None:
                schema = table.schema
            elif not schema.equals(table.schema):
                schema = pa.unify_schemas([schema, table.schema], promote_options="permissive")
            del table
        schema = _canonical(schema)

        def batches() -> Iterator[Any]:
            for path in files:
                chunk = ds.dataset(path, schema=schema, format="parquet").to_table(use_threads=False)
                yield from chunk.to_batches()  # one file's rows, in their order

        to_parquet(pa.RecordBatchReader.from_batches(schema, batches()), tmp)
    return schema


def _merge(
    mirror: Mirror,
    target: Path,
    tmp: Path,
    order: list[tuple[int, str, str, str]],
    pending: set[str],
    collection_dir: Path,
) -> Any:
    """Write ``tmp`` from the partition file ``target`` (its rows but those of removed and pending
    items) and the pending items, in order; returns its schema, or None (nothing kept) when the
    file does not hold exactly the unchanged items once each: it is then rebuilt instead.

    One WRS path's rows are held in memory: a few thousand even at a million scenes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import to_parquet

    key_of = {key[3]: key for key in order}
    fresh = [key for key in order if key[2] in pending]
    tables = []
    if len(fresh) < len(order):  # some rows are kept from the file (none when all are rewritten)
        try:
            current = pq.read_table(target)
        except (pa.ArrowException, OSError):  # damaged since its footer was read
            return None
        replaced = {key[3] for key in fresh}
        ids = current.column("id").to_pylist()
        tables.append(current.filter(pa.array([i in key_of and i not in replaced for i in ids], pa.bool_())))
    if fresh:
        tables.append(_to_arrow(list(_items(mirror, fresh, collection_dir))))
    try:
        schema = _canonical(pa.unify_schemas([t.schema for t in tables], promote_options="permissive"))
        table = pa.concat_tables([_conform(t, schema) for t in tables])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # a column whose type changed: the rebuild reports it if it is real
    ids = table.column("id").to_pylist()
    if len(ids) != len(order) or len(set(ids)) != len(ids):
        return None
    keys = [key_of[i] for i in ids]
    to_parquet(table.take(sorted(range(len(keys)), key=keys.__getitem__)), tmp)
    return schema


def _to_arrow(items: list[dict[str, Any]]) -> Any:
    """stac-geoparquet's Arrow table of these items. Its batch converter is called directly when it
    is there: the public ``parse_stac_items_to_arrow`` samples the process's memory with psutil for
    a log line, and its item parser deep-copies every item before turning the geometries into WKB,
    which together cost more than the conversion itself (a deep copy of an item of 19 assets is
    about 2 000 Python objects). The geometries are turned into WKB here on copies only as deep as
    the replaced values, so ``items`` are left as they were."""
    import pyarrow as pa

    try:
        from stac_geoparquet.arrow._batch import StacJsonBatch
    except ImportError:  # a stac-geoparquet without it: the public function, same table
        from stac_geoparquet.arrow import parse_stac_items_to_arrow

        return parse_stac_items_to_arrow(items).read_all()
    array = pa.array([_with_wkb(item) for item in items])
    batch = StacJsonBatch(pa.RecordBatch.from_struct_array(array))
    return pa.Table.from_batches([batch.to_arrow_batch(True).inner])


def _with_wkb(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with its geometry and any ``proj:geometry`` (in the properties or an asset) as ISO
    WKB, what stac-geoparquet's converter takes: Arrow cannot hold mixed GeoJSON geometry types."""
    import shapely
    from shapely.geometry import shape

    def wkb(geometry: Any) -> Any:
        return None if geometry is None else shapely.to_wkb(shape(geometry), flavor="iso")

    converted = {**item, "geometry": wkb(item["geometry"])}
    properties = item["properties"]
    if "proj:geometry" in properties:
        converted["properties"] = {**properties, "proj:geometry": wkb(properties["proj:geometry"])}
    assets = item.get("assets", {})
    if any("proj:geometry" in asset for asset in assets.values()):
        converted["assets"] = {
            key: {**asset, "proj:geometry": wkb(asset["proj:geometry"])}
            if "proj:geometry" in asset
            else asset
            for key, asset in assets.items()
        }
    return converted


def _conform(table: Any, schema: Any) -> Any:
    """``table`` in ``schema``, which holds every field the table has: columns in the schema's
    order, struct fields matched by name and reordered, missing ones (and missing columns) null,
    as stac-geoparquet does when it unifies its chunks. Arrow's cast does it in memory."""
    import pyarrow as pa

    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    names = set(table.column_names)
    columns = [
        table.column(f.name).cast(f.type) if f.name in names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _conform_file(source: Path, schema: Any, tmp: Path) -> None:
    """The partition file ``source`` written to ``tmp`` in the collection's ``schema``."""
    import pyarrow.dataset as ds
    from stac_geoparquet.arrow import to_parquet

    table = ds.dataset(source, schema=schema, format="parquet").to_table()
    part = tmp.with_name(tmp.name + ".part")
    to_parquet(table, part)
    os.replace(part, tmp)
