"""Metadata-only mirrors of any size, for scale tests and benchmarks.

Each scene folder holds the ``MTL.txt`` the emulator serves (the real Level-2 MTL structure) at
``OUT/<dataset>/<PPP>/<RRR>/<product id>/``, exactly where a harvest of ``--bands MTL.txt`` puts
it, with path/rows spread over the WRS-2 grid and acquisition dates over the years.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..layout import Mirror
from .metadata import mtl_tree, mtl_txt
from .scenes import SceneRecord, SceneSize, _make_record

DATASET = "landsat_ot_c2_l2"
FIRST_DAY = dt.date(2013, 4, 11)  # Landsat 8's first operational day
L9_FIRST_DAY = dt.date(2021, 10, 31)


def synthetic_records(
    count: int,
    *,
    seed: int = 0,
    tiles: Sequence[tuple[int, int]] | None = None,
    start: dt.date = FIRST_DAY,
    years: int = 12,
) -> Iterator[SceneRecord]:
    """``count`` acquisitions: on ``tiles`` (path, row) when given, else anywhere on the grid
    (rows 20-100, where the synthetic UTM grid is well-behaved), at dates over ``years`` years."""
    rng = random.Random(seed)
    size = SceneSize.small()
    seen: set[tuple[int, int, int, dt.date]] = set()
    span = years * 365
    while len(seen) < count:
        path, row = rng.choice(tiles) if tiles else (rng.randint(1, 233), rng.randint(20, 100))
        acquired = start + dt.timedelta(days=rng.randrange(span))
        satellite = 9 if acquired >= L9_FIRST_DAY and rng.random() < 0.5 else 8
        key = (satellite, path, row, acquired)
        if key in seen:
            continue
        seen.add(key)
        yield _make_record(rng, satellite, path, row, acquired, size)


def write_metadata_mirror(out: Path, records: Sequence[SceneRecord] | Iterator[SceneRecord]) -> int:
    """Write each record's MTL.txt where a harvest would; returns how many scenes were written."""
    mirror = Mirror(Path(out))
    written = 0
    for record in records:
        pid = record.display_id(2)
        folder = mirror.scene_dir(DATASET, pid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{pid}_MTL.txt").write_text(mtl_txt(mtl_tree(record, 2)))
        written += 1
    return written
