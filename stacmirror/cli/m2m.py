"""Commands that only ask M2M: datasets, filters, search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .options import build_selection, json_option, record_option, selection_options, service_option
from .render import make_renderer


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


@click.command()
@click.argument("query", required=False)
@service_option
@record_option
@json_option
def datasets(query: str | None, service_url: str | None, record: Path | None, as_json: bool) -> None:
    """List datasets matching QUERY (alias, name, dates, scene count)."""
    from ..api import connect

    with connect(service_url, on_event=make_renderer(False, as_json), record=record) as client:
        found = client.dataset_search(query)
    if as_json:
        rows = [
            {
                "alias": d.alias,
                "datasetId": d.dataset_id,
                "name": d.collection_name,
                "start": str(d.acquisition_start) if d.acquisition_start else None,
                "end": str(d.acquisition_end) if d.acquisition_end else None,
                "sceneCount": d.scene_count,
            }
            for d in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for d in found:
        span = f"{d.acquisition_start or '?'} .. {d.acquisition_end or 'now'}"
        click.echo(f"{d.alias:32} {d.collection_name:40} {span:26} {d.scene_count or 0:>10} scenes")


@click.command()
@click.argument("dataset")
@service_option
@record_option
@json_option
def filters(dataset: str, service_url: str | None, record: Path | None, as_json: bool) -> None:
    """List DATASET's metadata filters: label, type and allowed values."""
    from ..api import connect
    from ..m2m import InputError

    with connect(service_url, on_event=make_renderer(False, as_json), record=record) as client:
        try:
            found = client.dataset_filters(dataset)
        except InputError as exc:
            raise InvalidInput("dataset", f"{dataset}: {exc.message}") from None
    if as_json:
        rows = [{"id": f.filter_id, "label": f.label, "type": f.kind, "values": f.values} for f in found]
        click.echo(json.dumps(rows, indent=2))
        return
    for f in found:
        values = ", ".join(f.values) if f.values else ("N or N-M" if f.kind == "Range" else "text")
        click.echo(f"{f.label:34} {f.kind:7} {values}")


@click.command()
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
    help="Also write a one-file HTML map of the footprints and the area on OpenStreetMap.",
)
@click.option("--offline", is_flag=True, help="With --html: no basemap, so the page links nothing online.")
def search(
    as_json: bool, geojson_out: Path | None, html_out: Path | None, offline: bool, **kwargs: Any
) -> None:
    """Search M2M and print the matching scenes."""
    from ..api import connect
    from ..harvester.selection import search as run_search

    selection = build_selection(kwargs)
    renderer = make_renderer(False, as_json)
    with connect(kwargs.get("service_url"), on_event=renderer, record=kwargs.get("record")) as client:
        scenes = run_search(client, selection, limit=kwargs.get("max_scenes"))
        calls = dict(client.calls)
    if geojson_out:
        from ..fileio import write_json_atomic

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
        from ..serve.maps import feature, write_map

        found = [
            feature(s.footprint, "search", s.display_id, date=str(s.acquisition_date), cloud=s.cloud_cover)
            for s in scenes
            if s.footprint
        ]
        if selection.area is not None:
            found.append(feature(selection.area, "aoi", "search area"))
        title = f"{selection.dataset}: {len(scenes)} scene(s), {selection.start} to {selection.end}"
        write_map(html_out, found, title, offline=offline)
    if as_json:
        report = {
            "dataset": selection.dataset,
            "count": len(scenes),
            "scenes": [scene_json(s) for s in scenes],
            "apiCalls": calls,
        }
        click.echo(json.dumps(report, indent=2))
        return
    for s in scenes:
        cloud = "   ?" if s.cloud_cover is None else f"{s.cloud_cover:5.1f}%"
        click.echo(
            f"{s.display_id}  {s.acquisition_date}  cloud {cloud}  path/row {s.wrs_path:03d}/{s.wrs_row:03d}"
        )
    click.echo(f"{len(scenes)} scene(s)", err=True)


COMMANDS = [datasets, filters, search]
