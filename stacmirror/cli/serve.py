"""``stacmirror serve`` and ``stacmirror map``: looking at a mirror."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import InvalidInput, NotACatalog
from ..layout import Mirror
from ..storage import is_store_url
from .options import AnyMirror, serve_until_interrupted


@click.command()
@click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path))
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
@click.option(
    "--offline",
    is_flag=True,
    help="No OpenStreetMap basemap: the pages make no request beyond this server.",
)
def serve(out: Path | str, port: int, host: str, open_page: bool, no_build: bool, offline: bool) -> None:
    """Serve STAC Browser, the catalog and its assets, and a STAC API at /api/, from one local origin.

    STAC Browser 4.0.1 is built once, on first use, with Node.js and npm into
    ~/.cache/stacmirror (a few minutes). Its search uses the STAC API. Maps show an
    OpenStreetMap basemap unless --offline. The URL is the first line printed.

    OUT may be a mirror in an object store (s3://bucket/prefix): the catalog and its assets are
    proxied from the store (with Range), and the API searches a local copy of its items.parquet.
    """
    from ..serve.browser import BrowserUnavailable, build, built
    from ..serve.server import ServeServer

    if not is_store_url(out) and not Mirror(Path(out)).catalog_path.exists():
        raise NotACatalog(f"{out} has no catalog.json (run: stacmirror catalog {out})")
    browser = built()
    if browser is None and not no_build:
        click.echo("stacmirror: building STAC Browser once (a few minutes) ...", err=True)
        try:
            browser = build(log=lambda message: click.echo(f"  {message}", err=True))
        except BrowserUnavailable as exc:
            click.echo(f"stacmirror: STAC Browser unavailable, serving the catalog only: {exc}", err=True)
    try:
        server = ServeServer(out, browser, host, port, offline=offline)
    except OSError as exc:
        raise InvalidInput("port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"{server.base_url}/")
    click.echo(f"catalog: {server.base_url}/catalog/catalog.json", err=True)
    click.echo(f"STAC API: {server.base_url}/api/ (Ctrl-C stops)", err=True)
    sys.stdout.flush()  # the URL line first, before a web browser is started
    if open_page:
        import webbrowser

        webbrowser.open(f"{server.base_url}/")
    serve_until_interrupted(server.serve_forever, server.server_close)


@click.command(name="map")
@click.argument("out", type=AnyMirror(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: OUT/map.html, an object in a store).",
)
@click.option("--aoi", type=click.Path(path_type=Path), help="Also draw this area (GeoJSON).")
@click.option("--offline", is_flag=True, help="No OpenStreetMap basemap: the page links nothing online.")
def map_command(out: Path | str, html_out: Path | None, aoi: Path | None, offline: bool) -> None:
    """Write a one-file HTML map of the mirror's items and crop rectangles on OpenStreetMap.

    OUT may be a mirror in an object store (s3://bucket/prefix): the map is drawn from its
    items.parquet and put to OUT/map.html in the store, unless --html names a file."""
    from ..area import load_area
    from ..serve.maps import feature, mirror_features, render, write_map

    features = mirror_features(out)
    if aoi:
        features.append(feature(load_area(aoi=aoi), "aoi", str(aoi)))
    if is_store_url(out):
        title = f"stacmirror: {str(out).rstrip('/').rsplit('/', 1)[-1]}"
        if html_out is None:
            from ..storage import StoreMirror

            page = render(features, title, offline=offline).encode()
            StoreMirror.open(str(out)).put_bytes("map.html", page)
            click.echo(f"{str(out).rstrip('/')}/map.html")
            return
    else:
        title = f"stacmirror: {Path(out).resolve().name}"
    target = html_out or Path(out) / "map.html"
    write_map(target, features, title, offline=offline)
    click.echo(str(target))


COMMANDS = [serve, map_command]
