"""Areas of interest from what people have: a bbox, WKT, a GeoJSON file or mapping, shapely shapes.

Every area is checked (polygons only, lon/lat ranges, not empty) and split at the antimeridian,
and a bad one raises :class:`InvalidInput` naming the parameter it came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from .errors import InvalidInput
from .geometry import split_antimeridian


def bbox_numbers(
    value: str | Sequence[float], field_name: str = "bbox", heights: bool = False
) -> list[float]:
    """W, S, E, N from ``"W,S,E,N"`` or four numbers; with ``heights``, also from six (W, S, lowest,
    E, N, highest: a STAC API's 3D bbox), whose heights are dropped. Ranges are not checked here."""
    try:
        numbers = [float(v) for v in (value.split(",") if isinstance(value, str) else list(value))]
    except (TypeError, ValueError):
        numbers = []
    if heights and len(numbers) == 6:
        numbers = numbers[:2] + numbers[3:5]
    if len(numbers) != 4:
        shape_ = "W,S,E,N (or W,S,lowest,E,N,highest)" if heights else "W,S,E,N"
        raise InvalidInput(field_name, f"must be {shape_} in degrees, got {value!r}")
    return numbers


def parse_bbox(value: str | Sequence[float], field_name: str = "bbox") -> BaseGeometry:
    """A box from ``"W,S,E,N"`` or four numbers; ``W > E`` crosses the antimeridian."""
    west, south, east, north = bbox_numbers(value, field_name)
    if not (-90 <= south < north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InvalidInput(field_name, f"{value!r} is not a valid W,S,E,N box (south < north, |lon| <= 180)")
    if west > east:
        return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
    if west == east:
        raise InvalidInput(field_name, f"{value!r} has no width")
    return box(west, south, east, north)


def _polygons_of(geojson: Mapping[str, Any]) -> list[BaseGeometry]:
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return [g for f in geojson.get("features") or [] for g in _polygons_of(f)]
    if kind == "Feature":
        return _polygons_of(geojson.get("geometry") or {})
    if kind == "GeometryCollection":
        return [g for part in geojson.get("geometries") or [] for g in _polygons_of(part)]
    if kind in ("Polygon", "MultiPolygon"):
        return [shape(geojson)]
    raise ValueError(f"must be made of Polygons or MultiPolygons, found {kind!r}")


def _geojson_polygons(aoi: Any, field_name: str) -> list[BaseGeometry]:
    """Polygons from a GeoJSON file path, a GeoJSON mapping or a shapely geometry."""
    if isinstance(aoi, BaseGeometry):
        polygons = [aoi] if aoi.geom_type == "Polygon" else list(getattr(aoi, "geoms", []))
        if not polygons or any(p.geom_type != "Polygon" for p in polygons):
            raise InvalidInput(field_name, f"must be a Polygon or MultiPolygon, got {aoi.geom_type}")
        return polygons
    where = ""
    if isinstance(aoi, Mapping):
        data: Any = aoi
    else:
        where = f"{aoi}: "
        try:
            data = json.loads(Path(aoi).read_text())
        except FileNotFoundError:
            raise InvalidInput(field_name, f"{aoi}: no such file") from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(field_name, f"{aoi}: not readable GeoJSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise InvalidInput(field_name, f"{where}not a GeoJSON object")
    try:
        polygons = _polygons_of(data)
    except (KeyError, TypeError, ValueError, ShapelyError, AttributeError) as exc:
        raise InvalidInput(field_name, f"{where}invalid geometry ({exc})") from None
    if not polygons:
        raise InvalidInput(field_name, f"{where}contains no polygon")
    return polygons


def load_area(aoi: Any = None, bbox: Any = None, wkt: str | None = None) -> BaseGeometry:
    """The area of interest from exactly one of a GeoJSON (file, mapping or geometry), a bbox or WKT."""
    given = [name for name, value in (("aoi", aoi), ("bbox", bbox), ("wkt", wkt)) if value is not None]
    if len(given) != 1:
        raise InvalidInput("area", "give exactly one of aoi (GeoJSON), bbox (W,S,E,N) or wkt")
    if bbox is not None:
        return parse_bbox(bbox)
    if wkt is not None:
        try:
            geom = shapely_wkt.loads(wkt)
        except (ShapelyError, ValueError, TypeError) as exc:
            raise InvalidInput("wkt", f"not valid WKT: {exc}") from None
        polygons = _geojson_polygons(geom, "wkt")
        name = "wkt"
    else:
        polygons = _geojson_polygons(aoi, "aoi")
        name = "aoi"
    geom = unary_union([split_antimeridian(p) for p in polygons])
    if geom.is_empty or not geom.is_valid or geom.area == 0:
        raise InvalidInput(name, "the area is empty or not a valid polygon")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidInput(
            name, "the area has coordinates outside lon -180..180, lat -90..90 (is it in EPSG:4326?)"
        )
    return geom


def load_regions(source: Any) -> list[BaseGeometry]:
    """Regions searched one by one: a CSV of boxes (LL Lat, LL Lon, UR Lat, UR Lon), GeoJSON polygons
    (a file or a mapping), or a sequence of shapely geometries."""
    import csv

    if isinstance(source, Sequence) and not isinstance(source, str):
        regions = [split_antimeridian(unary_union(_geojson_polygons(g, "regions"))) for g in source]
        if not regions:
            raise InvalidInput("regions", "no region given")
        return regions
    if isinstance(source, Mapping):
        features = source.get("features") if source.get("type") == "FeatureCollection" else [source]
        return [split_antimeridian(unary_union(_geojson_polygons(f, "regions"))) for f in features or []]
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput("regions", f"{path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".json", ".geojson") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput("regions", f"{path}: not valid GeoJSON ({exc})") from None
        features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
        regions = [split_antimeridian(unary_union(_geojson_polygons(f, "regions"))) for f in features or []]
    else:
        rows = list(csv.DictReader(text.splitlines()))
        columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else [])}
        needed = ["ll lat", "ll lon", "ur lat", "ur lon"]
        if not rows or any(c not in columns for c in needed):
            raise InvalidInput("regions", f"{path}: a CSV needs the columns LL Lat, LL Lon, UR Lat, UR Lon")
        regions = []
        for number, row in enumerate(rows, 2):
            try:
                south, west, north, east = (float(row[columns[c]]) for c in needed)
            except (TypeError, ValueError):
                raise InvalidInput("regions", f"{path}:{number}: not four numbers") from None
            regions.append(parse_bbox(f"{west},{south},{east},{north}", "regions"))
    if not regions:
        raise InvalidInput("regions", f"{path}: no region found")
    return regions
