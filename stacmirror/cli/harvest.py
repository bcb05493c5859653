"""``stacmirror harvest``: flags to :func:`stacmirror.harvest`, events to the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .options import build_selection, json_option, quiet_option, selection_options
from .render import human, make_renderer


@click.command()
@click.argument("out", metavar="OUT")
@selection_options
@click.option(
    "--mode",
    type=click.Choice(["bands", "bundle", "band-group"]),
    help="What to fetch: single band files, whole bundles (unpacked), or file groups. "
    "Default: bands when --bands is given, else bundle.",
)
@click.option(
    "--bands",
    help="Comma-separated bands/files: suffixes (SR_B4, QA_PIXEL, MTL, ANG) "
    "or common names (red, nir08, qa_pixel).",
)
@click.option(
    "--file-groups",
    help="Comma-separated M2M file groups for --mode band-group (see the dataset's dataset-file-groups).",
)
@click.option("--keep-tar", is_flag=True, help="Keep bundles after a verified extraction.")
@click.option(
    "--keep-superseded",
    is_flag=True,
    help="Keep products a newer one replaces in OUT/.stacmirror/superseded/ instead of deleting them.",
)
@click.option(
    "--regions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of boxes (LL Lat, LL Lon, UR Lat, UR Lon) or GeoJSON polygons, searched one by one.",
)
@click.option(
    "--per-region", type=click.IntRange(min=1), help="Keep the N least cloudy scenes of each region."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 10),
    default=4,
    show_default=True,
    help="Parallel transfers (the service tolerates a few per user).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    help="Longest wait between download-retrieve polls, seconds (first polls are shorter).",
)
@click.option(
    "--poll-timeout",
    type=click.FloatRange(min=0.0),
    default=3600.0,
    show_default=True,
    help="Give up on downloads still being prepared after this many seconds.",
)
@click.option(
    "--fsync",
    is_flag=True,
    help="Flush each file to disk before it is renamed into place, so it survives a power cut "
    "(files always appear whole, by an atomic rename; this waits for the disk).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be fetched, with sizes; fetch nothing.")
@click.option("--no-browse", is_flag=True, help="Do not save the scenes' browse images.")
@click.option("--no-catalog", is_flag=True, help="Do not build the STAC catalog afterwards.")
@json_option
@quiet_option
def harvest(
    out: str,
    mode: str | None,
    bands: str | None,
    file_groups: str | None,
    keep_tar: bool,
    keep_superseded: bool,
    regions: Path | None,
    per_region: int | None,
    workers: int,
    poll_interval: float,
    poll_timeout: float,
    fsync: bool,
    dry_run: bool,
    no_browse: bool,
    no_catalog: bool,
    as_json: bool,
    quiet: bool,
    **kwargs: Any,
) -> None:
    """Search M2M and mirror the scenes into OUT as OUT/<dataset>/<PPP>/<RRR>/<displayId>/.

    The request is recorded in OUT as a subscription, which `stacmirror sync OUT` re-runs. A product
    that replaces one the mirror holds (same acquisition, newer product id) is verified in full
    before the old one is swapped out.

    OUT is a folder, or an object store: s3://bucket/prefix (gs://, az://), with credentials and
    endpoint from the standard environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    AWS_ENDPOINT_URL, AWS_PROFILE). Files stream straight into the store, each completed only once
    verified; the ledger is kept in ~/.cache/stacmirror and uploaded to OUT/.stacmirror/ after each
    run. The catalog is not yet built in a store (harvest only)."""
    from ..api import harvest as run_harvest

    selection = build_selection(kwargs)
    renderer = make_renderer(quiet, as_json)
    try:
        result = run_harvest(
            out,
            selection,
            service_url=kwargs.get("service_url"),
            mode=mode,
            bands=bands or (),
            file_groups=file_groups or (),
            keep_tar=keep_tar,
            keep_superseded=keep_superseded,
            max_scenes=kwargs.get("max_scenes"),
            regions=regions,
            per_region=per_region,
            workers=workers,
            poll_interval=poll_interval,
            poll_timeout=poll_timeout,
            fsync=fsync,
            dry_run=dry_run,
            browse=not no_browse,
            catalog=not no_catalog,
            on_event=renderer,
            command=" ".join(sys.argv[1:]) if sys.argv else "harvest",
            record=kwargs.get("record"),
        )
    finally:
        renderer.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        sys.exit(0 if result.ok else 1)
    if dry_run:
        for entry in result.planned:
            size = human(entry["size"]) if entry["size"] else "size unknown"
            click.echo(f"{entry['file']}  {size}  ({entry['kind']})")
    if not quiet:
        click.echo(summary_line(result), err=True)
    if not result.ok:
        sys.exit(1)


def summary_line(result) -> str:
    verb = "would fetch" if result.dry_run else "fetched"
    count = len(result.planned) if result.dry_run else result.files_downloaded
    line = (
        f"{result.scenes_found} scene(s); {verb} {count} file(s) "
        f"({human(result.bytes_downloaded)}), {result.files_skipped} already present, "
        f"{result.files_failed} failed; {sum(result.api_calls.values())} API calls"
    )
    if result.replaced:
        line += f"; {len(result.replaced)} product(s) {'to replace' if result.dry_run else 'replaced'}"
    if result.catalog is not None:
        c = result.catalog
        line += (
            f"; catalog: {c.written} item(s) written, {c.unchanged} unchanged, {c.removed} removed, "
            f"{len(c.errors)} error(s)"
        )
    elif not result.dry_run:
        line += "; catalog not built"
    return line


COMMANDS = [harvest]
