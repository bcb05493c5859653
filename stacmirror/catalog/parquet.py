"""``OUT/<collection>/items.parquet``: the collection's items as stac-geoparquet, one row per item.

Rows are sorted by space (a Z-order curve over the footprint's centre), then time, then item path,
so that row groups cover compact areas and readers can skip most of the file for a spatial query.
Asset hrefs are made relative to the collection folder, where the file lives; relative links are
left out.

Kept in step by the catalog step, two ways, both streaming so memory does not grow with the
number of items:

* **merged**, when few items changed: the rows of the current file are copied a batch at a time
  as Arrow data, without the rows of removed or rewritten items, and the rewritten and new items
  (the state database lists them) are parsed and slotted in at their place in the order. Only if
  their Arrow schema equals the file's (a new property or asset would change it), and the file is
  in the expected order;
* **rewritten** otherwise: every item file is read a batch at a time and stac-geoparquet spills
  its batches to disk to unify their schema.

Either way the result has the same rows in the same order; a test compares the two.
"""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..fileio import relative_href
from ..layout import Mirror
from .state import CatalogState

BATCH = 2_000
MERGE_SHARE = 0.2  # merge while at most this share of the items changed; rewrite beyond it


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


def _items(
    mirror: Mirror, order: list[tuple[int, str, str]], collection_dir: Path
) -> Iterator[dict[str, Any]]:
    for _, _, rel in order:
        path = mirror.root / rel
        item = orjson.loads(path.read_bytes())
        for asset in item.get("assets", {}).values():
            href = str(asset.get("href", ""))
            if "://" not in href:  # normpath, not resolve(): no file-system call per asset
                asset["href"] = relative_href(Path(os.path.normpath(path.parent / href)), collection_dir)
        item["links"] = [link for link in item.get("links", []) if "://" in str(link.get("href", ""))]
        yield item


def item_order(state: CatalogState, dataset: str) -> list[tuple[int, str, str]]:
    """(Z-order key, datetime, item path) of the dataset's items, in the order of the file's rows."""
    return sorted(
        (z_order(*_centre(e["bbox"])), e["datetime"], e["item"])
        for e in state.entries(dataset, columns=("bbox", "datetime", "item"))
    )


def write_items_parquet(mirror: Mirror, state: CatalogState, dataset: str) -> int:
    """Bring the dataset's items.parquet in step with its items; returns its row count (0: the file
    is removed)."""
    target = mirror.items_parquet(dataset)
    order = item_order(state, dataset)
    if not order:
        target.unlink(missing_ok=True)
        state.parquet_written(dataset)
        return 0
    collection_dir = mirror.collection_path(dataset).parent
    tmp = target.with_name(f".{target.name}.tmp")
    mirror.state_dir.mkdir(parents=True, exist_ok=True)
    pending = state.parquet_pending(dataset)
    merged = (
        target.exists()
        and len(pending) <= max(BATCH, MERGE_SHARE * len(order))
        and _merge(mirror, target, tmp, order, pending, collection_dir)
    )
    if not merged:
        _rewrite(mirror, tmp, order, collection_dir)
    os.replace(tmp, target)
    state.parquet_written(dataset)
    return len(order)


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


def _rewrite(mirror: Mirror, tmp: Path, order: list[tuple[int, str, str]], collection_dir: Path) -> None:
    """Every item, a batch at a time: each batch is parsed and spilled to a numbered Parquet file,
    their schemas are unified, and the files are read back in order in the unified schema (missing
    fields become nulls) and streamed into ``tmp``.

    This is what stac-geoparquet's "ChunksToDisk" does, except for the order: it reads its chunk
    files back as a dataset, in the order of their names (0, 1, 10, 11, ..., 2, ...), which
    scrambles the sort from the eleventh batch on."""
    import itertools

    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    items = _items(mirror, order, collection_dir)
    with tempfile.TemporaryDirectory(dir=mirror.state_dir, prefix="parquet-") as spill:
        files: list[Path] = []
        schema = None
        while chunk := list(itertools.islice(items, BATCH)):
            table = parse_stac_items_to_arrow(chunk).read_all()
            files.append(Path(spill) / f"{len(files):08d}.parquet")
            pq.write_table(table, files[-1])
            if schema is None:
                schema = table.schema
            elif not schema.equals(table.schema):
                schema = pa.unify_schemas([schema, table.schema], promote_options="permissive")
            del table, chunk

        def batches() -> Iterator[Any]:
            for path in files:
                chunk = ds.dataset(path, schema=schema, format="parquet").to_table(use_threads=False)
                yield from chunk.to_batches()  # one file's rows, in their order

        to_parquet(pa.RecordBatchReader.from_batches(schema, batches()), tmp)


def _merge(
    mirror: Mirror,
    target: Path,
    tmp: Path,
    order: list[tuple[int, str, str]],
    pending: set[str],
    collection_dir: Path,
) -> bool:
    """Write ``tmp`` from ``target`` and the pending items; False (and nothing kept) when the
    pending items' schema differs from the file's or the file is not in the expected order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import parse_stac_items_to_arrow

    try:
        current = pq.ParquetFile(target)
    except (pa.ArrowException, OSError):  # not a Parquet file any more (damaged by hand?): rewrite
        return False
    schema = current.schema_arrow
    key_of = {Path(key[2]).stem: key for key in order}  # an item file is named <id>.json
    fresh = [key for key in order if key[2] in pending]
    replaced = {Path(rel).stem for rel in pending}
    added = None
    if fresh:
        added = parse_stac_items_to_arrow(_items(mirror, fresh, collection_dir), chunk_size=BATCH).read_all()
        if not added.schema.equals(schema, check_metadata=False):
            added = _conform(added, schema, tmp)
            if added is None:
                return False
        added = added.replace_schema_metadata(schema.metadata)

    def in_order(table: pa.Table) -> pa.Table:
        keys = [key_of[i] for i in table.column("id").to_pylist()]
        return table.take(sorted(range(len(keys)), key=keys.__getitem__))

    taken, last, written = 0, None, 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in current.iter_batches(batch_size=BATCH):
                ids = batch.column("id").to_pylist()
                keep = [i in key_of and i not in replaced for i in ids]
                kept_keys = [key_of[i] for i, k in zip(ids, keep, strict=True) if k]
                if not kept_keys:
                    continue
                if kept_keys != sorted(kept_keys) or (last is not None and kept_keys[0] < last):
                    raise _OutOfOrder
                last = kept_keys[-1]
                kept = pa.Table.from_batches([batch], schema=schema).filter(pa.array(keep))
                upto = bisect.bisect_right(fresh, last, lo=taken)
                if added is not None and upto > taken:
                    kept = in_order(pa.concat_tables([kept, added.slice(taken, upto - taken)]))
                    taken = upto
                writer.write_table(kept)
                written += kept.num_rows
            if added is not None and taken < len(fresh):
                writer.write_table(added.slice(taken))
                written += len(fresh) - taken
        if written != len(order):  # the file missed items the state has: it was not in step
            raise _OutOfOrder
    except _OutOfOrder:
        tmp.unlink(missing_ok=True)
        return False
    return True


def _conform(table: Any, schema: Any, tmp: Path) -> Any:
    """``table`` in the file's ``schema`` when that holds everything the table has (the common case:
    a few items lack properties or assets others have), else None.

    The table goes through a Parquet file read back as a dataset with the file's schema, which
    fills the missing struct fields and columns with nulls, as stac-geoparquet does when it
    unifies its chunks."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        unified = pa.unify_schemas([schema, table.schema], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if not unified.equals(schema, check_metadata=False):
        return None  # the items bring something the file has no column for
    part = tmp.with_name(tmp.name + ".part")
    try:
        pq.write_table(table, part)
        return ds.dataset(part, schema=schema, format="parquet").to_table()
    finally:
        part.unlink(missing_ok=True)


class _OutOfOrder(Exception):
    """The current file is not what this version would have written: not in its order, or not
    holding every unchanged item."""
