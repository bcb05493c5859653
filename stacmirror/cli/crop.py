"""``stacmirror stacks`` and ``stacmirror crop``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .options import parallel_options, stack_options
from .render import make_renderer


def _find(out, collection, min_scenes, aoi, max_cloud, group_by, geojson_out, renderer):
    from ..api import find_stacks
    from ..fileio import write_json_atomic

    stacks = find_stacks(
        out,
        collection=collection,
        min_scenes=min_scenes,
        aoi=aoi,
        max_cloud=max_cloud,
        group_by=group_by,
        on_event=renderer,
    )
    if geojson_out:
        features = [s.as_feature() for s in stacks]
        write_json_atomic(geojson_out, {"type": "FeatureCollection", "features": features})
    return stacks


@click.command()
@stack_options
def stacks(
    out: Path,
    collection: str | None,
    min_scenes: int,
    aoi: Path | None,
    max_cloud: float | None,
    group_by: str,
    geojson_out: Path | None,
    as_json: bool,
) -> None:
    """List stacks of overlapping scenes and their largest common rectangle."""
    renderer = make_renderer(False, as_json)
    found = _find(out, collection, min_scenes, aoi, max_cloud, group_by, geojson_out, renderer)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in found], indent=2))
        return
    for s in found:
        click.echo(
            f"{s.stack_id:40} {len(s.members):3d} scenes  {s.rect.width} x {s.rect.height} px  "
            f"{s.area_km2:9.2f} km2  EPSG:{s.epsg}"
        )
    click.echo(f"{len(found)} stack(s)", err=True)


@click.command()
@stack_options
@click.option("--assets", help="Comma-separated asset keys to crop (default: every raster asset).")
@click.option(
    "--virtual",
    is_flag=True,
    help="Write each cropped asset as a small VRT over its source file's window instead of copying "
    "its pixels: the same items and pixels, a few kB per asset; the source files must stay.",
)
@click.option(
    "--level",
    type=int,
    help="Compression effort of the copied crops, 1 (fastest, larger) to 9 (smallest, slowest), "
    "in the sources' codec (DEFLATE for Landsat)  [default: GDAL's, 6]",
)
@parallel_options
def crop(
    out: Path,
    collection: str | None,
    min_scenes: int,
    aoi: Path | None,
    max_cloud: float | None,
    group_by: str,
    geojson_out: Path | None,
    as_json: bool,
    assets: str | None,
    virtual: bool,
    level: int | None,
    workers: int | None,
    dask: str | None,
) -> None:
    """Crop every scene of each stack to the stack's rectangle, pixel-exactly, and catalogue the crops."""
    from ..api import crop as run_crop
    from ..cropper.crop import check_level

    check_level(level, virtual)  # before the stacks are looked for
    renderer = make_renderer(False, as_json)
    found = _find(out, collection, min_scenes, aoi, max_cloud, group_by, geojson_out, renderer)
    result = run_crop(
        out,
        found,
        assets=assets,
        workers=workers,
        dask=dask,
        on_event=renderer,
        virtual=virtual,
        level=level,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for r in result.stacks:
            state = "unchanged" if r.skipped else f"{r.cropped} scene(s), {r.files} file(s)"
            click.echo(f"{r.stack_id:40} {state}")
            for error in r.errors:
                click.echo(f"  error: {error}", err=True)
    if not result.ok:
        sys.exit(1)


COMMANDS = [stacks, crop]
