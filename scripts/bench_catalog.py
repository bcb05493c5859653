#!/usr/bin/env python3
"""Catalog benchmark (not a test): stacmirror's item builder against stactools-landsat.

Builds a mirror of N emulator scenes (all Level-2 files, via a real harvest), then prints:

1. items/s of a full ``stacmirror catalog --force`` (which opens every raster, reads the valid-data
   footprint, checks each COG and writes the STAC files) next to items/s of stactools-landsat's
   ``create_item`` on the same MTL.xml files (it reads only the MTL and writes nothing; installed
   into its own virtual environment by this script);
2. the cost of a no-op rebuild against the full build (goal: at least 50x less work).

Usage: .venv/bin/python scripts/bench_catalog.py [--scenes 30] [--data DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import tempfile
import time
from pathlib import Path

from benchtools import tool_python

from stacmirror.catalog.build import build_catalog
from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection
from stacmirror.m2m import Credentials, M2MClient, Secret

STACTOOLS_RUN = """
import json, sys, time
from stactools.landsat.stac import create_item
paths = json.loads(sys.argv[1])
started = time.perf_counter()
for path in paths:
    create_item(path, use_usgs_geometry=False)
print(json.dumps({"seconds": time.perf_counter() - started, "items": len(paths)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "stacmirror" / "bench-emulator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mirror"
        with (
            Emulator(args.data, scenes=max(36, args.scenes + 4), seed=11) as emu,
            M2MClient(Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN)), emu.service_url) as api,
        ):
            selection = Selection(
                "landsat_ot_c2_l2", dt.date(2000, 1, 1), dt.date(2030, 1, 1), bbox="-180,-85,180,85"
            )
            options = HarvestOptions(out=out, selection=selection, max_scenes=args.scenes, poll_interval=0.2)
            summary = Harvest(api, options).run()
        print(f"mirror: {summary.scenes_found} scenes, {summary.files_downloaded} bundles unpacked")

        full = build_catalog(out, force=True)
        noop = build_catalog(out)
        assert noop.written == 0, "an unchanged mirror must not be rebuilt"
        ours = full.written / full.elapsed
        print(
            f"stacmirror catalog --force: {full.written} items in {full.elapsed:.2f} s = {ours:.1f} items/s "
            f"({full.rasters_opened} rasters opened, footprints from the data mask)"
        )
        print(
            f"no-op rebuild: {noop.elapsed * 1000:.1f} ms, {noop.rasters_opened} rasters opened; "
            f"{full.elapsed / noop.elapsed:.0f}x less work than the full build (goal >= 50x)"
        )

        mtls = sorted(str(p) for p in out.rglob("*_MTL.xml"))
        try:
            python = tool_python("stactools-landsat")
            result = subprocess.run(
                [str(python), "-c", STACTOOLS_RUN, json.dumps(mtls)],
                capture_output=True,
                text=True,
                check=True,
            )
            report = json.loads(result.stdout.strip().splitlines()[-1])
            theirs = report["items"] / report["seconds"]
            print(
                f"stactools-landsat create_item (MTL only, nothing written): {report['items']} items "
                f"in {report['seconds']:.2f} s = {theirs:.1f} items/s"
            )
            print(f"ratio stacmirror / stactools items/s: {ours / theirs:.2f}")
        except subprocess.CalledProcessError as exc:
            print(f"stactools-landsat could not be run: {(exc.stderr or exc.stdout or '').strip()[-400:]}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
