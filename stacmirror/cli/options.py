"""Options shared by several commands, how library parameter names map to flags, and the
foreground loop of the commands that serve."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..storage import is_store_url


class LocalMirror(click.Path):
    """A folder where only a folder makes sense (``doctor --out`` checks a disk's free space): a
    store URL gets a clear refusal, not a folder named ``s3:`` created by mistake."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if is_store_url(value):
            command = ctx.info_name if ctx is not None else "this command"
            self.fail(f"{value}: `{command}` takes a folder here, not an object store", param, ctx)
        return super().convert(value, param, ctx)


class AnyMirror(LocalMirror):
    """A mirror folder, or a mirror's store URL (``s3://bucket/prefix``), passed on as a string."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if is_store_url(value):
            return str(value)
        return super().convert(value, param, ctx)


# InvalidInput.field -> the flag a user typed; anything else is "--" + field with "-" for "_".
FLAGS = {
    "area": "area (--aoi, --bbox or --wkt)",
    "filters": "--filter",
    "out": "OUT",
    "selection": "selection",
    "schemas": "--schemas",
}


def flag_for(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


service_option = click.option(
    "--service-url",
    envvar="M2M_SERVICE_URL",
    help="M2M service root (default: the USGS stable endpoint; env M2M_SERVICE_URL).",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout (progress as JSON lines on stderr).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress output.")
record_option = click.option(
    "--record",
    type=click.Path(file_okay=False, path_type=Path),
    help="Append a transcript of every M2M call (and download status and headers) to "
    "DIR/transcript.jsonl, with tokens, keys and URL signatures redacted.",
)


def apply(options: list[Callable[..., Any]], func: Callable[..., Any]) -> Callable[..., Any]:
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options that choose scenes, shared by search and harvest."""
    return apply(
        [
            click.option("--dataset", required=True, help="Dataset alias, e.g. landsat_ot_c2_l2."),
            click.option("--aoi", type=click.Path(path_type=Path), help="Area: GeoJSON file of polygons."),
            click.option("--bbox", help="Area: W,S,E,N in degrees (W > E crosses the antimeridian)."),
            click.option("--wkt", help="Area: a WKT Polygon or MultiPolygon in lon/lat."),
            click.option("--start", required=True, help="First acquisition date, YYYY-MM-DD."),
            click.option(
                "--end",
                help="Last acquisition date, YYYY-MM-DD (inclusive). Omitted or 'today': open-ended, "
                "up to the day the search (or a later sync) runs.",
            ),
            click.option("--cloud-max", type=float, help="Maximum scene cloud cover, percent."),
            click.option("--cloud-min", type=float, help="Minimum scene cloud cover, percent."),
            click.option("--satellite", type=click.Choice(["8", "9"]), help="Landsat 8 or 9 only."),
            click.option("--path", "wrs_path", help="WRS path or range P-P."),
            click.option("--row", "wrs_row", help="WRS row or range R-R."),
            click.option("--tier", type=click.Choice(["T1", "T2", "RT"]), help="Collection category."),
            click.option(
                "--filter",
                "extra_filters",
                multiple=True,
                help='Any dataset filter by label, "Label=VALUE" (see: stacmirror filters DATASET).',
            ),
            click.option(
                "--max-scenes", type=click.IntRange(min=1), help="Keep at most N scenes (newest first)."
            ),
            service_option,
            record_option,
        ],
        func,
    )


def build_selection(kwargs: dict[str, Any]):
    from ..harvester.selection import Selection

    return Selection(
        kwargs["dataset"],
        kwargs["start"],
        kwargs["end"],
        aoi=kwargs.get("aoi"),
        bbox=kwargs.get("bbox"),
        wkt=kwargs.get("wkt"),
        cloud_min=kwargs.get("cloud_min"),
        cloud_max=kwargs.get("cloud_max"),
        satellite=kwargs.get("satellite"),
        path=kwargs.get("wrs_path"),
        row=kwargs.get("wrs_row"),
        tier=kwargs.get("tier"),
        filters=list(kwargs.get("extra_filters") or ()),
    )


def parallel_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Where items are built or scenes cropped: a process pool, or an existing Dask cluster."""
    return apply(
        [
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                help="Worker processes (default: the number of CPUs).",
            ),
            click.option(
                "--dask",
                metavar="ADDRESS",
                help="Run the work on the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead; "
                "needs stacmirror[dask] and the mirror on a filesystem the workers share.",
            ),
        ],
        func,
    )


def stack_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Which stacks: shared by `stacks` and `crop`."""
    return apply(
        [
            click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path)),
            click.option("--collection", help="Only this collection (dataset alias)."),
            click.option(
                "--min-scenes",
                type=click.IntRange(min=1),
                default=2,
                show_default=True,
                help="Smallest stack worth cropping.",
            ),
            click.option(
                "--aoi", type=click.Path(path_type=Path), help="Also keep the rectangle inside this area."
            ),
            click.option(
                "--max-cloud", type=click.FloatRange(0, 100), help="Leave out scenes cloudier than this."
            ),
            click.option(
                "--group-by",
                type=click.Choice(["path-row", "overlap"]),
                default="path-row",
                show_default=True,
                help="Stack by WRS path/row, or by footprint overlap.",
            ),
            click.option(
                "--geojson",
                "geojson_out",
                type=click.Path(path_type=Path),
                help="Write the stacks' rectangles as a GeoJSON FeatureCollection.",
            ),
            json_option,
        ],
        func,
    )


def serve_until_interrupted(serve: Callable[[], None], close: Callable[[], None]) -> None:
    """Serve in the foreground until Ctrl-C, then close. stdout is flushed first, so a parent
    process reading the URL line gets it before the loop starts."""
    sys.stdout.flush()
    try:
        serve()
    except KeyboardInterrupt:
        pass
    finally:
        close()
