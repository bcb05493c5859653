#!/usr/bin/env python3
"""Crop benchmark (not a test): stacmirror crop against seed 004's gdalwarp -crop_to_cutline.

On a stack of full-size emulator scenes (red, nir08, qa_pixel) it prints, each against a baseline
measured in the same run:

1. wall time of ``gdalwarp -crop_to_cutline`` with the rectangle as cutline, one file after the other
   as the seed script does, written as DEFLATE+predictor COGs (equal output compression), divided by
   the wall time of ``stacmirror crop`` on the same stack (goal >= 2x faster, >= 4x aimed at), and
   of ``stacmirror crop --virtual`` (a VRT per asset over its source's window, no pixel copied);
   with the bytes each of the three writes;
2. pixels that differ from the source window, for all three (goal 0);
3. our rectangle's area against the ``largestinteriorrectangle`` package run on the rasterised
   intersection of the valid masks, decimated 8x as it cannot run at full resolution (goal >= 0.995).

gdalwarp comes from Debian's gdal-bin (installed with apt-get when missing, as root);
largestinteriorrectangle is installed into its own virtual environment.

With ``--level N`` (default 3) both tools crop the stack again at DEFLATE effort N, and the
figures are given against gdalwarp at the same level and at its default (6).

Usage: .venv/bin/python scripts/bench_crop.py [--scenes 3] [--data DIR] [--level 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from benchtools import tool_python
from rasterio.windows import Window

from stacmirror.catalog.build import build_catalog
from stacmirror.cropper.crop import crop_stack
from stacmirror.cropper.stacks import _valid_rows, find_stacks
from stacmirror.emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator
from stacmirror.harvester.options import HarvestOptions
from stacmirror.harvester.run import Harvest
from stacmirror.harvester.selection import Selection
from stacmirror.m2m import Credentials, M2MClient, Secret

ASSETS = ("red", "nir08", "qa_pixel")
LIR_RUN = """
import sys, time, numpy as np, largestinteriorrectangle as lir
mask = np.load(sys.argv[1])
lir.lir(np.ones((8, 8), dtype=bool))  # numba compiles on first use: keep that out of the timing
started = time.perf_counter()
x, y, w, h = lir.lir(mask)
print(int(w) * int(h), time.perf_counter() - started)
"""


def ensure_gdalwarp() -> str:
    if shutil.which("gdalwarp") is None:
        print("installing Debian's gdal-bin for the baseline ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "gdal-bin"], check=True, capture_output=True)
    version = subprocess.run(
        ["gdalwarp", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return version


def differing_pixels(crop_path: Path, source_path: Path) -> tuple[int, int]:
    """(pixels differing from the source window, pixels compared); a shifted grid counts as all differing."""
    with rasterio.open(crop_path) as crop, rasterio.open(source_path) as src:
        col = (crop.transform.c - src.transform.c) / src.transform.a
        row = (src.transform.f - crop.transform.f) / -src.transform.e
        data = crop.read(1)
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6 or crop.res != src.res:
            return data.size, data.size
        window = src.read(
            1,
            window=Window(round(col), round(row), crop.width, crop.height),
            boundless=True,
            fill_value=src.nodata or 0,
        )
        return int((data != window).sum()), data.size


def tree_bytes(folder: Path) -> int:
    """Bytes of the cropped rasters (COGs or VRTs) under ``folder``; item JSON is not counted."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix.lower() in (".tif", ".vrt"))


def crop_round(out: Path, stack, jobs, **options) -> tuple[float, int, int, int]:
    """``crop_stack`` of ``stack`` with ``options`` (2 workers): its wall time, the bytes of rasters
    it wrote, and the pixels that differ from the sources' windows out of those compared."""
    started = time.monotonic()
    result = crop_stack(out, stack, assets=set(ASSETS), workers=2, **options)
    elapsed = time.monotonic() - started
    assert not result.errors, result.errors
    crops = out / "crops" / stack.stack_id
    differing = compared = 0
    for member, key in jobs:
        source = member.folder / member.item["assets"][key]["href"]
        crop = crops / member.id / source.name
        d, n = differing_pixels(crop.with_suffix(".vrt") if options.get("virtual") else crop, source)
        differing, compared = differing + d, compared + n
    return elapsed, tree_bytes(crops), differing, compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "stacmirror" / "bench-emulator")
    parser.add_argument(
        "--level", type=int, default=3, help="DEFLATE effort of the second round (both tools)"
    )
    args = parser.parse_args()
    gdal = ensure_gdalwarp()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mirror"
        with Emulator(args.data, full_size=True) as emu:
            scenes = [s for s in emu.service.scenes if s.l2_generated and (s.path, s.row) == (44, 33)][
                : args.scenes
            ]
            print(
                f"preparing {len(scenes)} full-size scenes of WRS 044/033 (cached after the first run)",
                flush=True,
            )
            for scene in scenes:
                emu.service.store.files(scene, 2)
            selection = Selection(
                "landsat_ot_c2_l2",
                min(s.acquired for s in scenes),
                max(s.acquired for s in scenes),
                bbox="-180,-85,180,85",
                path="44",
                row="33",
            )
            options = HarvestOptions(
                out=out,
                selection=selection,
                mode="bands",
                bands=["red", "nir08", "qa_pixel", "MTL"],
                poll_interval=0.2,
                browse=False,
            )
            with M2MClient(Credentials(DEMO_USERNAME, Secret(DEMO_TOKEN)), emu.service_url) as api:
                Harvest(api, options).run()
        build_catalog(out)
        started = time.monotonic()
        stacks, _ = find_stacks(out)
        rectangle_time = time.monotonic() - started
        stack = stacks[0]
        jobs = [(m, key) for m in stack.members for key in ASSETS]
        ours, ours_bytes, ours_diff, total = crop_round(out, stack, jobs)
        print(
            f"stack {stack.stack_id}: {len(stack.members)} scenes, rectangle {stack.rect.width} x "
            f"{stack.rect.height} px found in {rectangle_time:.2f} s (incl. reading every valid mask)"
        )

        xmin, ymin, xmax, ymax = stack.bounds
        cutline = Path(tmp) / "rectangle.geojson"
        cutline.write_text(
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "crs": {"type": "name", "properties": {"name": f"EPSG:{stack.epsg}"}},
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {},
                            "geometry": {
                                "type": "Polygon",
                                "coordinates": [
                                    [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax], [xmin, ymin]]
                                ],
                            },
                        }
                    ],
                }
            )
        )

        def gdalwarp_all(folder: Path, level: int | None = None) -> float:
            folder.mkdir()
            started = time.monotonic()
            for member, key in jobs:
                source = member.folder / member.item["assets"][key]["href"]
                subprocess.run(
                    [
                        "gdalwarp",
                        "-q",
                        "-overwrite",
                        "-cutline",
                        str(cutline),
                        "-crop_to_cutline",
                        "-of",
                        "COG",
                        "-co",
                        "COMPRESS=DEFLATE",
                        "-co",
                        "PREDICTOR=2",
                        "-co",
                        "BLOCKSIZE=512",
                        *(["-co", f"LEVEL={level}"] if level is not None else []),
                        str(source),
                        str(folder / source.name),
                    ],
                    check=True,
                )
            return time.monotonic() - started

        warped = Path(tmp) / "gdalwarp"
        theirs = gdalwarp_all(warped)
        theirs_bytes = tree_bytes(warped)

        theirs_diff = 0
        for member, key in jobs:
            source = member.folder / member.item["assets"][key]["href"]
            theirs_diff += differing_pixels(warped / source.name, source)[0]

        # the same stack at a lower compression effort, both tools (another level re-crops)
        ours_level, ours_level_bytes, level_diff, _ = crop_round(out, stack, jobs, level=args.level)
        theirs_level = gdalwarp_all(Path(tmp) / "gdalwarp-level", args.level)
        theirs_level_bytes = tree_bytes(Path(tmp) / "gdalwarp-level")

        # the same stack again as VRTs: a mode switch re-crops, so this replaces the COGs above
        virtual, virtual_bytes, virtual_diff, _ = crop_round(out, stack, jobs, virtual=True)

        print(f"crop of {len(jobs)} files ({', '.join(ASSETS)}); time, bytes of rasters written:")
        print(
            f"  gdalwarp -crop_to_cutline ({gdal}), one file after another, COG DEFLATE + predictor 2: "
            f"{theirs:6.2f} s, {theirs_bytes / 1e6:8.1f} MB"
        )
        print(
            f"  stacmirror crop, COG DEFLATE + predictor 2 (2 workers): "
            f"{ours:6.2f} s, {ours_bytes / 1e6:8.1f} MB; {theirs / ours:.2f}x faster (goal >= 2x, aim 4x)"
        )
        print(
            f"  at LEVEL={args.level}: gdalwarp {theirs_level:6.2f} s, {theirs_level_bytes / 1e6:.1f} MB; "
            f"stacmirror crop --level {args.level} {ours_level:6.2f} s, {ours_level_bytes / 1e6:.1f} MB: "
            f"{theirs_level / ours_level:.2f}x faster than gdalwarp at the same level, "
            f"{theirs / ours_level:.2f}x than gdalwarp at its default "
            f"({ours_level_bytes / theirs_bytes - 1:+.1%} bytes); pixels differing {level_diff}"
        )
        print(
            f"  stacmirror crop --virtual, VRT (2 workers):             "
            f"{virtual:6.2f} s, {virtual_bytes / 1e6:8.3f} MB; {theirs / virtual:.1f}x faster than gdalwarp, "
            f"{ours / virtual:.1f}x than copying; {ours_bytes / virtual_bytes:.0f}x fewer bytes than copying"
        )
        print(
            f"pixels differing from the source window: stacmirror {ours_diff} of {total}, "
            f"--virtual {virtual_diff}, gdalwarp {theirs_diff} (goal 0)"
        )

        # the same intersection as a mask, decimated 8x, for largestinteriorrectangle
        layers = []
        for member in stack.members:
            path, fill = member.mask_raster()
            transform, left, right = _valid_rows(path, fill)
            layers.append((transform, left, right))
        x0, y0 = stack.origin
        rows = int(max((y0 - t.f) / 30 + len(lf) for t, lf, _ in layers))
        cols = int(max((t.c - x0) / 30 + r.max() + 1 for t, _, r in layers))
        mask = np.ones((rows, cols), dtype=bool)
        columns = np.arange(cols)
        for t, left, right in layers:
            r0, c0 = round((y0 - t.f) / 30), round((t.c - x0) / 30)
            scene = np.zeros((rows, cols), dtype=bool)
            scene[r0 : r0 + len(left)] = (columns[None, :] >= left[:, None] + c0) & (
                columns[None, :] <= right[:, None] + c0
            )
            mask &= scene
        factor = 8
        cells = mask[: rows // factor * factor, : cols // factor * factor]
        cells = cells.reshape(rows // factor, factor, cols // factor, factor).all(axis=(1, 3))
        mask_file = Path(tmp) / "mask.npy"
        np.save(mask_file, cells)
        try:
            output = subprocess.run(
                [str(tool_python("largestinteriorrectangle")), "-c", LIR_RUN, str(mask_file)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            lir_area, lir_time = int(output[0]) * factor * factor, float(output[1])
            print(
                f"rectangle area: stacmirror {stack.rect.area} px (exact on the 30 m lattice), "
                f"largestinteriorrectangle {lir_area} px on the 8x-decimated mask in {lir_time:.2f} s; "
                f"ratio {stack.rect.area / lir_area:.4f} (goal >= 0.995)"
            )
        except subprocess.CalledProcessError as exc:
            print(f"largestinteriorrectangle could not be run: {(exc.stderr or '').strip()[-300:]}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(benchmark took {time.monotonic() - started:.0f} s, {dt.datetime.now():%Y-%m-%d %H:%M})")
