"""``stacmirror query``: search the mirror offline, through the collections' items.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..fileio import write_json_atomic
from .options import AnyMirror


@click.command()
@click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path))
@click.option("--collection", help="Only this collection: a dataset, or crop-<stack id> for a crop stack.")
@click.option("--bbox", help="Items whose geometry intersects W,S,E,N (W > E crosses the antimeridian).")
@click.option("--aoi", type=click.Path(path_type=Path), help="Items whose geometry intersects this GeoJSON.")
@click.option("--start", help="Acquired on or after this date (YYYY-MM-DD) or time.")
@click.option("--end", help="Acquired on or before this date (the whole day) or time.")
@click.option("--cloud-max", type=click.FloatRange(0, 100), help="At most this cloud cover, percent.")
@click.option("--path", "wrs_path", type=click.IntRange(1, 251), help="WRS path.")
@click.option("--row", "wrs_row", type=click.IntRange(1, 248), help="WRS row.")
@click.option("--platform", help="e.g. landsat-8.")
@click.option(
    "--filter",
    "cql",
    metavar="CQL2-JSON",
    help="Any item property, as CQL2 JSON, e.g. "
    '\'{"op": ">", "args": [{"property": "view:sun_elevation"}, 40]}\'.',
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N items (newest first).")
@click.option("--ids", "ids_only", is_flag=True, help="Print only the item ids, one a line.")
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@click.option(
    "--geojson",
    "geojson_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a FeatureCollection.",
)
def query(
    out: Path | str,
    collection: str | None,
    bbox: str | None,
    aoi: Path | None,
    start: str | None,
    end: str | None,
    cloud_max: float | None,
    wrs_path: int | None,
    wrs_row: int | None,
    platform: str | None,
    cql: str | None,
    limit: int | None,
    ids_only: bool,
    as_json: bool,
    geojson_out: Path | None,
) -> None:
    """Search the mirror with no network: area, dates, cloud, path/row, platform, any property.

    OUT may be a mirror in an object store (s3://bucket/prefix): its items.parquet is copied to the
    local cache (again only when it changed) and searched there."""
    from ..errors import InvalidInput
    from ..offline_search import search

    tree = None
    if cql:
        try:
            tree = json.loads(cql)
        except ValueError as exc:
            raise InvalidInput("filter", f"is not JSON: {exc}") from None
    result = search(
        out, collection=collection, bbox=bbox, aoi=aoi, start=start, end=end, cloud_max=cloud_max,
        path=wrs_path, row=wrs_row, platform=platform, limit=limit, filter=tree,
    )  # fmt: skip
    if geojson_out:
        write_json_atomic(geojson_out, result.to_geojson())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for item in result.items:
        if ids_only:
            click.echo(item["id"])
            continue
        props = item["properties"]
        cloud = props.get("eo:cloud_cover")
        cloud_text = "   ?" if cloud is None else f"{cloud:5.1f}%"
        click.echo(f"{item['id']}  {props['datetime'][:10]}  cloud {cloud_text}  {item['collection']}")
    if not ids_only:
        more = f" of {result.matched}" if result.matched > len(result.items) else ""
        click.echo(f"{len(result.items)}{more} item(s)", err=True)


COMMANDS = [query]
