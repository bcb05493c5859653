"""``stacmirror catalog`` and ``stacmirror validate``: offline, from the mirror's files (in a folder
or a store)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .options import AnyMirror, json_option, parallel_options, quiet_option
from .render import make_renderer


@click.command()
@click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Rebuild every item, even unchanged ones.")
@parallel_options
@json_option
@quiet_option
def catalog(
    out: Path | str, force: bool, workers: int | None, dask: str | None, as_json: bool, quiet: bool
) -> None:
    """Build or update OUT/catalog.json from the files in the mirror (no network).

    OUT may be a mirror in an object store (s3://bucket/prefix): the store is listed, headers and
    masks are read with range requests, and the catalog is published to the store."""
    from ..api import build_catalog

    renderer = make_renderer(quiet, as_json)
    result = build_catalog(out, force=force, workers=workers, dask=dask, on_event=renderer)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        click.echo(
            f"catalog: {result.written} item(s) written, {result.unchanged} unchanged, "
            f"{result.removed} removed, {len(result.errors)} error(s) in {result.elapsed:.2f}s "
            f"-> {out}/catalog.json",
            err=True,
        )
    if result.errors:
        sys.exit(1)


@click.command()
@click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--schemas",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="STACMIRROR_SCHEMAS",
    help="Use only this local folder of extension schemas, laid out as stac-extensions.github.io/"
    "<ext>/<version>/schema.json (env STACMIRROR_SCHEMAS). Default: the user cache, where a schema "
    "not cached yet is fetched once from its published URL.",
)
@json_option
def validate(out: Path, schemas: Path | None, as_json: bool) -> None:
    """Validate the catalog: STAC core, declared extensions, Landsat field formats."""
    from ..api import validate as run_validate

    report = run_validate(out, schemas=schemas)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for path, problems in report.problems.items():
            for problem in problems:
                click.echo(f"{path}: {problem}")
        click.echo(f"{report.checked} file(s) checked, {len(report.problems)} with problems", err=True)
    if not report.ok:
        sys.exit(1)


COMMANDS = [catalog, validate]
