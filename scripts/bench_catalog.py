#!/usr/bin/env python3
"""Catalog benchmark (not a test): stacmirror's item builder against stactools-landsat.

Builds a mirror of N emulator scenes (all Level-2 files, via a real harvest of bundles), then prints:

1. items/s of a full ``stacmirror catalog --force`` (it opens every raster, reads the valid-data
   footprint, checks each COG and writes the STAC files and items.parquet), with 1 worker and
   with a warmed pool of 2 worker processes, next to items/s of stactools-landsat's
   ``create_item`` on the same MTL.xml files (it reads only the MTL and writes nothing; installed
   into its own virtual environment by this script); each the median of 5 rounds after a warm-up
   round that is not counted (a few items take tens of milliseconds: one round is noise);
2. the cost of a no-op rebuild against the full build (goal: at most 5 %);
3. with ``--store``: the same mirror harvested into an S3 store (moto's server on 127.0.0.1, a test
   extra), its full build, no-op rebuild and first query timed against the same on the local
   disk (the median of 3 alternating rounds each; no goal is set).

``--full-size`` uses full-size scenes (about 7 000 x 7 000 px, 275 MB a bundle; generated once
and cached under --data, minutes); the default uses the emulator's small scenes.

Usage: .venv/bin/python scripts/bench_catalog.py [--scenes 30] [--full-size] [--data DIR] [--store]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchtools import tool_python

from stacmirror.catalog.build import build_catalog, ledger_checksums
from stacmirror.catalog.stac import build_item
from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection
from stacmirror.layout import Mirror
from stacmirror.ledger import Ledger
from stacmirror.m2m import Credentials, M2MClient, Secret

STACTOOLS_RUN = """
import json, statistics, sys, time
from stactools.landsat.stac import create_item
paths, counted = json.loads(sys.argv[1]), int(sys.argv[2])
rounds = []
for _ in range(1 + counted):  # the first round loads its lazily imported parts: not counted
    started = time.perf_counter()
    for path in paths:
        create_item(path, use_usgs_geometry=False)
    rounds.append(time.perf_counter() - started)
print(json.dumps({"seconds": statistics.median(rounds[1:]), "items": len(paths)}))
"""
ROUNDS = 5  # timed rounds of each whole-mirror figure, after a warm-up round: the median is given


def _median_build(results: list) -> Any:
    """The build of median time among ``results``."""
    return sorted(results, key=lambda r: r.elapsed)[len(results) // 2]


def _report(workers: int, full, rate: float) -> None:
    print(
        f"stacmirror catalog --force, {workers} worker process(es), median of {ROUNDS}: "
        f"{full.written} items in "
        f"{full.elapsed:.2f} s = {rate:.1f} items/s ({full.rasters_opened} rasters opened, "
        "footprints from the data mask, items.parquet written)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--full-size", action="store_true", help="full-size scenes (slow the first time)")
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "stacmirror" / "bench-emulator")
    parser.add_argument("--store", action="store_true", help="also time the catalog in an S3 store (moto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mirror"
        with (
            Emulator(
                args.data / ("full" if args.full_size else "small"),
                scenes=max(36, args.scenes + 4),
                seed=11,
                full_size=args.full_size,
            ) as emu,
            M2MClient(Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN)), emu.service_url) as api,
        ):
            # the emulator makes a scene's files when first asked; made here, not inside the
            # harvest's download-options call (full-size ones take minutes each)
            for i, scene in enumerate([s for s in emu.service.scenes if s.l2_generated][: args.scenes], 1):
                started = time.monotonic()
                emu.service.store.files(scene, 2)
                print(f"  scene {i}/{args.scenes} ready ({time.monotonic() - started:.0f} s)", flush=True)
            selection = Selection(
                "landsat_ot_c2_l2", dt.date(2000, 1, 1), dt.date(2030, 1, 1), bbox="-180,-85,180,85"
            )
            options = HarvestOptions(out=out, selection=selection, max_scenes=args.scenes, poll_interval=0.2)
            summary = Harvest(api, options).run()
            if args.store:
                bench_store(api, selection, args.scenes, out, Path(tmp))
        print(f"mirror: {summary.scenes_found} scenes, {summary.files_downloaded} bundles unpacked")

        # a first build pays for imports and reads the files into the page cache: not counted
        warm = build_catalog(out, force=True, workers=1)
        print(f"warm-up build (not counted): {warm.written} items in {warm.elapsed:.2f} s")
        rates = {}
        full = _median_build([build_catalog(out, force=True, workers=1) for _ in range(ROUNDS)])
        rates[1] = full.written / full.elapsed
        _report(1, full, rates[1])
        # an explicit pool, so a build of few items is not run in-process (SMALL_BUILD), warmed
        # by one build first so the workers' start-up is not counted either
        with ProcessPoolExecutor(max_workers=2) as pool:
            build_catalog(out, force=True, executor=pool)
            full = _median_build([build_catalog(out, force=True, executor=pool) for _ in range(ROUNDS)])
        rates[2] = full.written / full.elapsed
        _report(2, full, rates[2])
        noop = build_catalog(out)
        assert noop.written == 0, "an unchanged mirror must not be rebuilt"
        print(
            f"no-op rebuild: {noop.elapsed * 1000:.1f} ms, {noop.rasters_opened} rasters opened; "
            f"{100 * noop.elapsed / full.elapsed:.1f} % of the full build (goal <= 5 %)"
        )
        ours = rates[1]
        # the workers' share alone: build_item, the task each worker runs, over the same scene
        # folders in this process (rasters described, footprints traced, nothing written); the
        # rest of a build is the one writer's (item JSON, parents, state, items.parquet)
        mirror = Mirror(out)
        ledger = Ledger.open_existing(mirror)
        mtls = sorted(str(p) for p in out.rglob("*_MTL.xml"))
        folders = sorted({Path(p).parent for p in mtls})
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            for folder in folders:
                build_item(str(folder), "landsat_ot_c2_l2", ledger_checksums(ledger, mirror, folder))
            rounds.append(time.perf_counter() - started)
        worker_rate = len(folders) / sorted(rounds)[1]
        print(f"build_item, the worker task, in one process (median of 3 rounds): {worker_rate:.1f} items/s")

        try:
            python = tool_python("stactools-landsat")
            result = subprocess.run(
                [str(python), "-c", STACTOOLS_RUN, json.dumps(mtls), str(ROUNDS)],
                capture_output=True,
                text=True,
                check=True,
            )
            report = json.loads(result.stdout.strip().splitlines()[-1])
            theirs = report["items"] / report["seconds"]
            print(
                "stactools-landsat create_item (MTL only, nothing written), "
                f"median of {ROUNDS} after a warm-up: "
                f"{report['items']} items in {report['seconds']:.3f} s = {theirs:.1f} items/s"
            )
            print(f"ratio stacmirror (1 worker) / stactools items/s: {ours / theirs:.2f} (goal >= 0.3)")
            print(f"ratio stacmirror (2 workers) / stactools items/s: {rates[2] / theirs:.2f}")
            print(f"ratio per worker at 2 workers: {rates[2] / 2 / theirs:.2f}")
            print(f"ratio of the worker task alone / stactools items/s: {worker_rate / theirs:.2f}")
        except subprocess.CalledProcessError as exc:
            print(f"stactools-landsat could not be run: {(exc.stderr or exc.stdout or '').strip()[-400:]}")


def bench_store(api: M2MClient, selection: Selection, scenes: int, disk: Path, tmp: Path) -> None:
    """The catalog of the same mirror in an S3 store (moto on loopback) against the disk's: full
    build, no-op rebuild and a first query, the median of 3 alternating rounds each."""
    import os
    import statistics
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stacmirror.offline_search import search
    from tests.s3 import KEY, REGION, SECRET, MotoServer

    server = MotoServer(tmp / "moto.log")
    saved = dict(os.environ)  # put back after: the disk figures that follow must not see a store
    try:
        server.client().create_bucket(Bucket="bench")
        os.environ.update(
            AWS_ACCESS_KEY_ID=KEY,
            AWS_SECRET_ACCESS_KEY=SECRET,
            AWS_REGION=REGION,
            AWS_ENDPOINT_URL=server.url,
            STACMIRROR_CACHE=str(tmp / "cache"),  # the store's local cache: a fresh one
        )
        url = "s3://bench/mirror"
        options = HarvestOptions(out=url, selection=selection, max_scenes=scenes, poll_interval=0.2)
        Harvest(api, options).run()
        build_catalog(url, workers=1)  # warm-ups, not counted
        build_catalog(disk, force=True, workers=1)
        times: dict[str, dict[str, list[float]]] = {"disk": {}, "store": {}}
        for round_ in range(3):
            for where in ("disk", "store") if round_ % 2 == 0 else ("store", "disk"):
                out = str(disk) if where == "disk" else url
                steps = times[where]
                full = build_catalog(out, force=True, workers=1)
                steps.setdefault("full build", []).append(full.elapsed)
                noop = build_catalog(out, workers=1)
                assert noop.written == 0
                steps.setdefault("no-op rebuild", []).append(noop.elapsed)
                started = time.perf_counter()
                found = search(out, bbox="-180,-85,180,85")
                steps.setdefault("query", []).append(time.perf_counter() - started)
                assert len(found.items) == scenes
        print(f"object store (moto on 127.0.0.1), {scenes} scenes, 1 worker, medians of 3 rounds:")
        for step in ("full build", "no-op rebuild", "query"):
            on_disk, in_store = (statistics.median(times[w][step]) for w in ("disk", "store"))
            print(
                f"  {step}: store {in_store * 1000:.0f} ms, disk {on_disk * 1000:.0f} ms, "
                f"ratio store/disk {in_store / on_disk:.2f}"
            )
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
