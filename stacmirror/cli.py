"""The ``stacmirror`` command line: thin wrappers over the stage packages.

Bad input, missing credentials and refused access end with one line on stderr
and exit code 2; service failures that outlived the retries exit 1.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import UserError
from .m2m import AccessDeniedError, AuthError, CredentialsError, InputError, M2MError


class _Group(click.Group):
    """Turns known failures into one-line messages with a stable exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, CredentialsError) as exc:
            _fail(str(exc), 2)
        except AccessDeniedError as exc:
            _fail(f"{exc.code}: {AccessDeniedError.HINT}", 2)
        except (InputError, AuthError) as exc:
            _fail(str(exc), 2)
        except M2MError as exc:
            _fail(f"the M2M service failed and retries did not help: {exc}", 1)


def _fail(message: str, code: int) -> None:
    click.echo(f"stacmirror: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="stacmirror")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Mirror Landsat Collection 2 from USGS M2M into a local STAC catalog.

    With no USGS credentials configured (M2M_USERNAME/M2M_TOKEN or
    ~/.config/stacmirror/credentials.ini) and no --service-url, commands run
    against the built-in M2M emulator and its synthetic scenes.
    """
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


service_option = click.option(
    "--service-url",
    envvar="M2M_SERVICE_URL",
    help="M2M service root (default: the USGS stable endpoint; env M2M_SERVICE_URL).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options that choose scenes, shared by search and harvest."""
    options = [
        click.option("--dataset", required=True, help="Dataset alias, e.g. landsat_ot_c2_l2."),
        click.option("--aoi", type=click.Path(path_type=Path), help="Area: GeoJSON file of polygons."),
        click.option("--bbox", help="Area: W,S,E,N in degrees (W > E crosses the antimeridian)."),
        click.option("--wkt", help="Area: a WKT Polygon or MultiPolygon in lon/lat."),
        click.option("--start", required=True, help="First acquisition date, YYYY-MM-DD."),
        click.option("--end", required=True, help="Last acquisition date, YYYY-MM-DD (inclusive)."),
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
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def build_selection(kwargs: dict[str, Any]):
    from .harvest.selection import Selection, load_area, parse_date

    area = None
    if kwargs.get("aoi") or kwargs.get("bbox") or kwargs.get("wkt"):
        area = load_area(kwargs.get("aoi"), kwargs.get("bbox"), kwargs.get("wkt"))
    selection = Selection(
        dataset=kwargs["dataset"],
        area=area,
        start=parse_date(kwargs["start"], "--start"),
        end=parse_date(kwargs["end"], "--end"),
        cloud_min=kwargs.get("cloud_min"),
        cloud_max=kwargs.get("cloud_max"),
        satellite=kwargs.get("satellite"),
        path=kwargs.get("wrs_path"),
        row=kwargs.get("wrs_row"),
        tier=kwargs.get("tier"),
        extra_filters=list(kwargs.get("extra_filters") or ()),
    )
    selection.check()
    return selection


def scene_json(scene) -> dict[str, Any]:
    browse = scene.natural_colour_browse()
    return {
        "entityId": scene.entity_id,
        "displayId": scene.display_id,
        "acquired": scene.acquisition_date.isoformat() if scene.acquisition_date else None,
        "cloudCover": scene.cloud_cover,
        "wrsPath": scene.wrs_path,
        "wrsRow": scene.wrs_row,
        "footprint": scene.footprint,
        "browse": browse.url if browse else None,
    }


# -- commands -----------------------------------------------------------------------------------


@main.command()
@click.argument("query", required=False)
@service_option
@json_option
def datasets(query: str | None, service_url: str | None, as_json: bool) -> None:
    """List datasets matching QUERY (alias, name, dates, scene count)."""
    from .connect import open_client

    with open_client(service_url, quiet=as_json) as client:
        found = client.dataset_search(query)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "alias": d.alias,
                        "datasetId": d.dataset_id,
                        "name": d.collection_name,
                        "start": str(d.acquisition_start) if d.acquisition_start else None,
                        "end": str(d.acquisition_end) if d.acquisition_end else None,
                        "sceneCount": d.scene_count,
                    }
                    for d in found
                ],
                indent=2,
            )
        )
        return
    for d in found:
        span = f"{d.acquisition_start or '?'} .. {d.acquisition_end or 'now'}"
        click.echo(f"{d.alias:32} {d.collection_name:40} {span:26} {d.scene_count or 0:>10} scenes")


@main.command()
@click.argument("dataset")
@service_option
@json_option
def filters(dataset: str, service_url: str | None, as_json: bool) -> None:
    """List DATASET's metadata filters: label, type and allowed values."""
    from .connect import open_client

    with open_client(service_url, quiet=as_json) as client:
        try:
            found = client.dataset_filters(dataset)
        except InputError as exc:
            raise UserError(f"{dataset}: {exc.message}") from None
    if as_json:
        click.echo(
            json.dumps(
                [{"id": f.filter_id, "label": f.label, "type": f.kind, "values": f.values} for f in found],
                indent=2,
            )
        )
        return
    for f in found:
        values = ", ".join(f.values) if f.values else ("N or N-M" if f.kind == "Range" else "text")
        click.echo(f"{f.label:34} {f.kind:7} {values}")


@main.command()
@selection_options
@json_option
@click.option(
    "--geojson",
    "geojson_out",
    type=click.Path(path_type=Path),
    help="Also write the footprints as a GeoJSON FeatureCollection.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML map of the footprints and the area (opens offline).",
)
def search(as_json: bool, geojson_out: Path | None, html_out: Path | None, **kwargs: Any) -> None:
    """Search M2M and print the matching scenes."""
    from .connect import open_client
    from .harvest.selection import search as run_search

    selection = build_selection(kwargs)
    with open_client(kwargs.get("service_url"), quiet=as_json) as client:
        scenes = run_search(client, selection, limit=kwargs.get("max_scenes"))
        calls = dict(client.calls)
    if geojson_out:
        from .fileio import write_json_atomic

        features = [
            {
                "type": "Feature",
                "id": s.display_id,
                "geometry": s.footprint,
                "properties": {k: v for k, v in scene_json(s).items() if k != "footprint"},
            }
            for s in scenes
        ]
        write_json_atomic(geojson_out, {"type": "FeatureCollection", "features": features})
    if html_out:
        from .serve.maps import feature, write_map

        found = [
            feature(s.footprint, "search", s.display_id, date=str(s.acquisition_date), cloud=s.cloud_cover)
            for s in scenes
            if s.footprint
        ]
        if selection.area is not None:
            found.append(feature(selection.area, "aoi", "search area"))
        title = f"{selection.dataset}: {len(scenes)} scene(s), {selection.start} to {selection.end}"
        write_map(html_out, found, title)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dataset": selection.dataset,
                    "count": len(scenes),
                    "scenes": [scene_json(s) for s in scenes],
                    "apiCalls": calls,
                },
                indent=2,
            )
        )
        return
    for s in scenes:
        cloud = "   ?" if s.cloud_cover is None else f"{s.cloud_cover:5.1f}%"
        click.echo(
            f"{s.display_id}  {s.acquisition_date}  cloud {cloud}  path/row {s.wrs_path:03d}/{s.wrs_row:03d}"
        )
    click.echo(f"{len(scenes)} scene(s)", err=True)


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
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
@click.option("--dry-run", is_flag=True, help="Show what would be fetched, with sizes; fetch nothing.")
@click.option("--no-browse", is_flag=True, help="Do not save the scenes' browse images.")
@click.option("--no-catalog", is_flag=True, help="Do not build the STAC catalog afterwards.")
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def harvest(
    out: Path,
    mode: str | None,
    bands: str | None,
    file_groups: str | None,
    keep_tar: bool,
    regions: Path | None,
    per_region: int | None,
    workers: int,
    poll_interval: float,
    poll_timeout: float,
    dry_run: bool,
    no_browse: bool,
    no_catalog: bool,
    as_json: bool,
    quiet: bool,
    **kwargs: Any,
) -> None:
    """Search M2M and mirror the scenes into OUT as OUT/<dataset>/<PPP>/<RRR>/<displayId>/."""
    import time

    from .connect import open_client
    from .harvest.ledger import MirrorLock
    from .harvest.progress import human, make_reporter
    from .harvest.run import Harvest, HarvestOptions
    from .harvest.selection import load_regions

    started = time.monotonic()
    mode = mode or ("bands" if bands else "bundle")
    if mode == "bands" and not bands:
        raise UserError("--mode bands needs --bands (e.g. --bands red,nir08,qa_pixel,MTL)")
    if mode != "bands" and bands:
        raise UserError(f"--bands only applies to --mode bands, not {mode}")
    if mode != "band-group" and file_groups:
        raise UserError("--file-groups only applies to --mode band-group")
    if per_region and not regions:
        raise UserError("--per-region needs --regions")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    region_shapes = load_regions(regions) if regions else None
    if region_shapes is None and not (kwargs.get("aoi") or kwargs.get("bbox") or kwargs.get("wkt")):
        raise UserError("give an area: --aoi FILE, --bbox W,S,E,N, --wkt WKT or --regions FILE")
    selection = build_selection(kwargs)
    MirrorLock(out).check_free()
    reporter = make_reporter(quiet, as_json)
    options = HarvestOptions(
        out=out,
        selection=selection,
        mode=mode,
        bands=(bands or "").split(","),
        file_groups=(file_groups or "").split(","),
        keep_tar=keep_tar,
        max_scenes=kwargs.get("max_scenes"),
        regions=region_shapes,
        per_region=per_region,
        workers=workers,
        poll_interval=poll_interval,
        poll_timeout=poll_timeout,
        dry_run=dry_run,
        browse=not no_browse,
        command=" ".join(sys.argv[1:]) if sys.argv else "harvest",
    )
    with open_client(kwargs.get("service_url"), quiet=quiet or as_json, on_wait=reporter.note) as client:
        summary = Harvest(client, options, reporter).run()
        report = summary.as_json(client, started, out)
    if not dry_run and not no_catalog and summary.files_downloaded + summary.files_skipped:
        from .catalog.build import build_catalog

        result = build_catalog(out, reporter=reporter)
        report["catalog"] = result.as_json()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        sys.exit(1 if summary.files_failed else 0)
    if dry_run:
        for entry in summary.planned:
            size = human(entry["size"]) if entry["size"] else "size unknown"
            click.echo(f"{entry['file']}  {size}  ({entry['kind']})")
    if not quiet:
        verb = "would fetch" if dry_run else "fetched"
        count = len(summary.planned) if dry_run else summary.files_downloaded
        click.echo(
            f"{summary.scenes_found} scene(s); {verb} {count} file(s) "
            f"({human(summary.bytes_downloaded)}), {summary.files_skipped} already present, "
            f"{summary.files_failed} failed; {report['apiCallsTotal']} API calls",
            err=True,
        )
    if summary.files_failed:
        sys.exit(1)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Rebuild every item, even unchanged ones.")
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def catalog(out: Path, force: bool, as_json: bool, quiet: bool) -> None:
    """Build or update OUT/catalog.json from the files in the mirror (no network)."""
    from .catalog.build import build_catalog
    from .harvest.progress import Reporter

    result = build_catalog(out, reporter=Reporter(quiet=quiet or as_json), force=force)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    elif not quiet:
        click.echo(
            f"catalog: {result.written} item(s) written, {result.unchanged} unchanged, "
            f"{result.removed} removed, {len(result.errors)} error(s) in {result.elapsed:.2f}s "
            f"-> {out / 'catalog.json'}",
            err=True,
        )
    if result.errors:
        sys.exit(1)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--schemas",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of extension schemas laid out as stac-extensions.github.io/<ext>/<version>/"
    "schema.json (default: $STACMIRROR_SCHEMAS or ~/.cache/stacmirror/stac-schemas).",
)
@json_option
def validate(out: Path, schemas: Path | None, as_json: bool) -> None:
    """Validate the catalog offline: STAC core, declared extensions, Landsat field formats."""
    from .catalog.validate import validate_catalog

    try:
        report = validate_catalog(out, schemas)
    except FileNotFoundError as exc:
        raise UserError(f"{exc}; pass --schemas DIR with the STAC extension schemas") from None
    if as_json:
        click.echo(json.dumps({"checked": report.checked, "problems": report.problems}, indent=2))
    else:
        for path, problems in report.problems.items():
            for problem in problems:
                click.echo(f"{path}: {problem}")
        click.echo(f"{report.checked} file(s) checked, {len(report.problems)} with problems", err=True)
    if not report.ok:
        sys.exit(1)


def stack_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Which stacks: shared by `stacks` and `crop`."""
    options = [
        click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path)),
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
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def _find_stacks(
    out: Path,
    collection: str | None,
    min_scenes: int,
    aoi: Path | None,
    max_cloud: float | None,
    group_by: str,
    geojson_out: Path | None,
):
    from .crop.stacks import find_stacks
    from .fileio import write_json_atomic
    from .harvest.selection import load_area

    area = load_area(aoi=aoi) if aoi else None
    if not (out / "catalog.json").exists():
        raise UserError(f"{out} has no catalog yet (run: stacmirror catalog {out})")
    stacks, notes = find_stacks(
        out, collection=collection, min_scenes=min_scenes, aoi=area, max_cloud=max_cloud, group_by=group_by
    )
    for note in notes:
        click.echo(f"stacmirror: {note}", err=True)
    if geojson_out:
        write_json_atomic(
            geojson_out, {"type": "FeatureCollection", "features": [s.as_feature() for s in stacks]}
        )
    return stacks


@main.command()
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
    found = _find_stacks(out, collection, min_scenes, aoi, max_cloud, group_by, geojson_out)
    if as_json:
        click.echo(json.dumps([s.as_feature()["properties"] for s in found], indent=2))
        return
    for s in found:
        click.echo(
            f"{s.stack_id:40} {len(s.members):3d} scenes  {s.rect.width} x {s.rect.height} px  "
            f"{s.area_km2:9.2f} km2  EPSG:{s.epsg}"
        )
    click.echo(f"{len(found)} stack(s)", err=True)


@main.command()
@stack_options
@click.option("--assets", help="Comma-separated asset keys to crop (default: every raster asset).")
@click.option(
    "--workers", type=click.IntRange(1, 16), default=2, show_default=True, help="Scenes cropped in parallel."
)
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
    workers: int,
) -> None:
    """Crop every scene of each stack to the stack's rectangle, pixel-exactly, and catalogue the crops."""
    from .catalog.build import build_catalog
    from .crop.crop import crop_stack

    wanted = {a.strip() for a in assets.split(",") if a.strip()} if assets else None
    found = _find_stacks(out, collection, min_scenes, aoi, max_cloud, group_by, geojson_out)
    if wanted:
        known = {
            k for s in found for m in s.members for k, a in m.item["assets"].items() if "proj:transform" in a
        }
        unknown = wanted - known
        if unknown:
            raise UserError(
                f"--assets: no raster asset {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
    results = [crop_stack(out, s, assets=wanted, workers=workers) for s in found]
    build_catalog(out)  # link the crop collections from the root catalog
    if as_json:
        click.echo(json.dumps([r.as_json() for r in results], indent=2))
    else:
        for r in results:
            state = "unchanged" if r.skipped else f"{r.cropped} scene(s), {r.files} file(s)"
            click.echo(f"{r.stack_id:40} {state}")
            for error in r.errors:
                click.echo(f"  error: {error}", err=True)
    if any(r.errors for r in results):
        sys.exit(1)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free)."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; only change it to share the mirror on a network.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default web browser.")
@click.option("--no-build", is_flag=True, help="Do not build STAC Browser now if it is not built yet.")
def serve(out: Path, port: int, host: str, open_page: bool, no_build: bool) -> None:
    """Serve STAC Browser, the catalog and its assets from one local origin.

    STAC Browser 4.0.1 is built once, on first use, with Node.js and npm into
    ~/.cache/stacmirror (a few minutes). The URL is the first line printed.
    """
    from .serve.browser import BrowserUnavailable, build, built
    from .serve.server import ServeServer

    if not (out / "catalog.json").exists():
        raise UserError(f"{out} has no catalog.json (run: stacmirror catalog {out})")
    browser = built()
    if browser is None and not no_build:
        click.echo("stacmirror: building STAC Browser once (a few minutes) ...", err=True)
        try:
            browser = build(log=lambda message: click.echo(f"  {message}", err=True))
        except BrowserUnavailable as exc:
            click.echo(f"stacmirror: STAC Browser unavailable, serving the catalog only: {exc}", err=True)
    try:
        server = ServeServer(out, browser, host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"{server.base_url}/")
    click.echo(f"catalog: {server.base_url}/catalog/catalog.json (Ctrl-C stops)", err=True)
    sys.stdout.flush()
    if open_page:
        import webbrowser

        webbrowser.open(f"{server.base_url}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command(name="map")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: OUT/map.html).",
)
@click.option("--aoi", type=click.Path(path_type=Path), help="Also draw this area (GeoJSON).")
def map_command(out: Path, html_out: Path | None, aoi: Path | None) -> None:
    """Write a self-contained HTML map of the mirror's items and crop rectangles (opens offline)."""
    from .harvest.selection import load_area
    from .serve.maps import feature, mirror_features, write_map

    features = mirror_features(out)
    if aoi:
        features.append(feature(load_area(aoi=aoi), "aoi", str(aoi)))
    target = html_out or out / "map.html"
    write_map(target, features, f"stacmirror: {out.resolve().name}")
    click.echo(str(target))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=0, show_default=True, help="Port (0 picks a free one).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Cache folder for generated files.")
@click.option("--scenes", default=36, show_default=True, help="Number of synthetic acquisitions.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic archive.")
@click.option("--full-size", is_flag=True, help="Full-size scenes (~7000 x 7000 px) for benchmarks.")
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME:TOKEN[:nomachine]",
    help="Accepted credentials (default demo:demo-token); ':nomachine' denies downloads.",
)
@click.option("--cut-every", type=int, default=0, help="Cut every Nth file transfer mid-body.")
@click.option("--api-5xx-every", type=int, default=0, help="Every Nth API call: HTTP 503 HTML page.")
@click.option("--api-html-every", type=int, default=0, help="Every Nth API call: HTTP 200 HTML page.")
@click.option("--file-5xx-every", type=int, default=0, help="Every Nth file transfer: HTTP 502.")
@click.option("--file-html-every", type=int, default=0, help="Every Nth file transfer: HTML error body.")
@click.option("--expire-key-after", type=int, default=0, help="API keys expire after N calls.")
@click.option("--preparing-polls", type=int, default=0, help="Downloads stay preparing for N polls.")
@click.option("--never-ready-every", type=int, default=0, help="Every Nth download never becomes ready.")
@click.option("--url-ttl", type=float, default=86400.0, help="Signed URL lifetime in seconds (then 403).")
@click.option("--throttle-bps", type=int, default=0, help="Cap each file transfer at N bytes/s.")
@click.option("--api-latency", type=float, default=0.0, help="Seconds each API call takes.")
def emulator(
    host: str,
    port: int,
    data_dir: Path | None,
    scenes: int,
    seed: int,
    full_size: bool,
    users: tuple[str, ...],
    **faults: Any,
) -> None:
    """Run the offline M2M emulator (API + file hosts) until interrupted."""
    from .connect import emulator_cache
    from .emulator import DEMO_TOKEN, DEMO_USERNAME, Emulator, Faults

    accounts: dict[str, tuple[str, bool]] = {}
    for entry in users or (f"{DEMO_USERNAME}:{DEMO_TOKEN}",):
        name, sep, rest = entry.partition(":")
        token, _, role = rest.partition(":")
        if not sep or not name or not token or role not in ("", "nomachine"):
            raise UserError(f"--user must be NAME:TOKEN or NAME:TOKEN:nomachine, got {name!r}:...")
        accounts[name] = (token, role != "nomachine")
    fault_config = Faults(
        file_cut_every=faults["cut_every"],
        api_5xx_every=faults["api_5xx_every"],
        api_html_every=faults["api_html_every"],
        file_5xx_every=faults["file_5xx_every"],
        file_html_every=faults["file_html_every"],
        expire_key_after=faults["expire_key_after"],
        preparing_polls=faults["preparing_polls"],
        never_ready_every=faults["never_ready_every"],
        url_ttl=faults["url_ttl"],
        throttle_bps=faults["throttle_bps"],
        api_latency=faults["api_latency"],
    )
    emu = Emulator(
        data_dir or emulator_cache(),
        scenes=scenes,
        seed=seed,
        full_size=full_size,
        faults=fault_config,
        users=accounts,
        host=host,
        port=port,
    )
    click.echo(f"M2M emulator serving {emu.service_url} (users: {', '.join(accounts)})", err=False)
    sys.stdout.flush()
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
