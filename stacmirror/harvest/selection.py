"""What to search for: area, dates, cloud and metadata filters, turned into M2M scene filters.

Metadata filters are looked up by their label through ``dataset-filters`` at
run time (filter ids differ per dataset and change over time), and every bad
input is reported as a :class:`UserError` before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from ..errors import UserError
from ..geometry import split_antimeridian
from ..m2m import DatasetFilter, InputError, M2MClient, Scene

SEARCH_HIT_CAP = 50_000  # the service returns at most this many results per search


# -- area -----------------------------------------------------------------------------------


def parse_bbox(text: str) -> BaseGeometry:
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--bbox must be W,S,E,N in degrees, got {text!r}") from None
    if not (-90 <= south < north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise UserError(f"--bbox {text!r} is not a valid W,S,E,N box (south < north, |lon| <= 180)")
    if west > east:  # crosses the antimeridian
        return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
    if west == east:
        raise UserError(f"--bbox {text!r} has no width")
    return box(west, south, east, north)


def _polygons_of(geojson: dict[str, Any]) -> list[BaseGeometry]:
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return [g for f in geojson.get("features") or [] for g in _polygons_of(f)]
    if kind == "Feature":
        return _polygons_of(geojson.get("geometry") or {})
    if kind == "GeometryCollection":
        return [g for part in geojson.get("geometries") or [] for g in _polygons_of(part)]
    if kind in ("Polygon", "MultiPolygon"):
        return [shape(geojson)]
    raise UserError(f"area must be made of Polygons or MultiPolygons, found {kind!r}")


def load_area(aoi: Path | None = None, bbox: str | None = None, wkt: str | None = None) -> BaseGeometry:
    """The area of interest from exactly one of a GeoJSON file, a bbox or WKT."""
    given = [name for name, value in (("--aoi", aoi), ("--bbox", bbox), ("--wkt", wkt)) if value]
    if len(given) != 1:
        raise UserError("give exactly one of --aoi FILE, --bbox W,S,E,N or --wkt WKT")
    if bbox:
        return parse_bbox(bbox)
    if wkt:
        try:
            geom = shapely_wkt.loads(wkt)
        except (ShapelyError, ValueError) as exc:
            raise UserError(f"--wkt is not valid WKT: {exc}") from None
        polygons = [geom] if geom.geom_type == "Polygon" else list(getattr(geom, "geoms", []))
        if not polygons or any(p.geom_type != "Polygon" for p in polygons):
            raise UserError(f"--wkt must be a Polygon or MultiPolygon, got {geom.geom_type}")
    else:
        assert aoi is not None
        try:
            data = json.loads(Path(aoi).read_text())
        except FileNotFoundError:
            raise UserError(f"--aoi {aoi}: no such file") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"--aoi {aoi}: not readable GeoJSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"--aoi {aoi}: not a GeoJSON object")
        try:
            polygons = _polygons_of(data)
        except (KeyError, TypeError, ValueError, ShapelyError) as exc:
            raise UserError(f"--aoi {aoi}: invalid geometry ({exc})") from None
        if not polygons:
            raise UserError(f"--aoi {aoi}: contains no polygon")
    geom = unary_union([split_antimeridian(p) for p in polygons])
    if geom.is_empty or not geom.is_valid or geom.area == 0:
        raise UserError("the area is empty or not a valid polygon")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise UserError("the area has coordinates outside lon -180..180, lat -90..90 (is it in EPSG:4326?)")
    return geom


def spatial_filters(area: BaseGeometry) -> list[dict[str, Any]]:
    """One GeoJSON spatial filter per side of the antimeridian (the service knows no wrapping)."""
    parts = list(area.geoms) if isinstance(area, MultiPolygon) else [area]
    east = [p for p in parts if p.centroid.x > 0]
    west = [p for p in parts if p.centroid.x <= 0]
    crosses = any(p.bounds[2] >= 180 for p in east) and any(p.bounds[0] <= -180 for p in west)
    groups = [east, west] if crosses else [parts]
    return [{"filterType": "geojson", "geoJson": mapping(unary_union(group))} for group in groups]


def load_regions(path: Path) -> list[BaseGeometry]:
    """Regions for ``--regions``: a CSV of boxes (LL Lat, LL Lon, UR Lat, UR Lon) or GeoJSON polygons."""
    import csv

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"--regions {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".json", ".geojson") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError(f"--regions {path}: not valid GeoJSON ({exc})") from None
        features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
        regions = [split_antimeridian(unary_union(_polygons_of(f))) for f in features or []]
    else:
        rows = list(csv.DictReader(text.splitlines()))
        columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else [])}
        needed = ["ll lat", "ll lon", "ur lat", "ur lon"]
        if not rows or any(c not in columns for c in needed):
            raise UserError(f"--regions {path}: a CSV needs the columns LL Lat, LL Lon, UR Lat, UR Lon")
        regions = []
        for number, row in enumerate(rows, 2):
            try:
                south, west, north, east = (float(row[columns[c]]) for c in needed)
            except (TypeError, ValueError):
                raise UserError(f"--regions {path}:{number}: not four numbers") from None
            regions.append(parse_bbox(f"{west},{south},{east},{north}"))
    if not regions:
        raise UserError(f"--regions {path}: no region found")
    return regions


# -- dates ------------------------------------------------------------------------------------


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise UserError(f"{option} must be a date as YYYY-MM-DD, got {text!r}") from None


# -- metadata filters ---------------------------------------------------------------------------


def _range(text: str, option: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        first, second = int(low), int(high or low)
    except ValueError:
        raise UserError(f"{option} must be N or N-M, got {text!r}") from None
    if first > second:
        raise UserError(f"{option} {text!r}: the range is reversed")
    return first, second


@dataclass
class Selection:
    """Everything that decides which scenes a search returns."""

    dataset: str
    area: BaseGeometry | None
    start: dt.date
    end: dt.date
    cloud_min: float | None = None
    cloud_max: float | None = None
    satellite: str | None = None
    path: str | None = None
    row: str | None = None
    tier: str | None = None
    extra_filters: list[str] = field(default_factory=list)  # "Label=VALUE"

    def check(self) -> None:
        if self.start > self.end:
            raise UserError(f"--start {self.start} is after --end {self.end}")
        for name, value in (("--cloud-min", self.cloud_min), ("--cloud-max", self.cloud_max)):
            if value is not None and not 0 <= value <= 100:
                raise UserError(f"{name} must be between 0 and 100, got {value}")
        if self.cloud_min is not None and self.cloud_max is not None and self.cloud_min > self.cloud_max:
            raise UserError("--cloud-min is larger than --cloud-max")

    def wanted_filters(self) -> list[tuple[str, str, str]]:
        """(label, value, option) triples, by label as the service names them."""
        wanted = []
        if self.satellite:
            wanted.append(("Satellite", self.satellite, "--satellite"))
        if self.path:
            wanted.append(("WRS Path", self.path, "--path"))
        if self.row:
            wanted.append(("WRS Row", self.row, "--row"))
        if self.tier:
            wanted.append(("Collection Category", self.tier, "--tier"))
        for item in self.extra_filters:
            label, sep, value = item.partition("=")
            if not sep or not label.strip():
                raise UserError(f'--filter must look like "Label=VALUE", got {item!r}')
            wanted.append((label.strip(), value.strip(), "--filter"))
        return wanted


def metadata_filter(
    wanted: list[tuple[str, str, str]], available: list[DatasetFilter]
) -> dict[str, Any] | None:
    """An M2M ``metadataFilter`` for the wanted (label, value) pairs, resolved by label."""
    by_label = {f.label.lower(): f for f in available}
    children = []
    for label, value, option in wanted:
        spec = by_label.get(label.lower())
        if spec is None:
            names = ", ".join(sorted(f.label for f in available))
            raise UserError(f"{option}: the dataset has no filter {label!r}; valid labels: {names}")
        if spec.kind == "Range":
            first, second = _range(value, option)
            children.append(
                {
                    "filterType": "between",
                    "filterId": spec.filter_id,
                    "firstValue": first,
                    "secondValue": second,
                }
            )
        elif spec.kind == "Select":
            keys = {k.lower(): k for k in spec.values}
            keys.update({v.lower(): k for k, v in spec.values.items()})
            key = keys.get(value.lower())
            if key is None:
                valid = ", ".join(spec.values)
                raise UserError(f"{option}: {value!r} is not a valid {spec.label}; valid values: {valid}")
            children.append({"filterType": "value", "filterId": spec.filter_id, "value": key, "operand": "="})
        else:
            children.append(
                {"filterType": "value", "filterId": spec.filter_id, "value": value, "operand": "like"}
            )
    if not children:
        return None
    return children[0] if len(children) == 1 else {"filterType": "and", "childFilters": children}


def scene_filters(selection: Selection, filters: list[DatasetFilter]) -> list[dict[str, Any]]:
    """The M2M ``sceneFilter`` objects to search with (one per antimeridian side)."""
    selection.check()
    base: dict[str, Any] = {
        "acquisitionFilter": {"start": selection.start.isoformat(), "end": selection.end.isoformat()}
    }
    if selection.cloud_min is not None or selection.cloud_max is not None:
        base["cloudCoverFilter"] = {
            "min": int(selection.cloud_min or 0),
            "max": int(-(-(selection.cloud_max if selection.cloud_max is not None else 100) // 1)),
            "includeUnknown": False,
        }
    meta = metadata_filter(selection.wanted_filters(), filters)
    if meta:
        base["metadataFilter"] = meta
    if selection.area is None:
        return [base]
    return [{**base, "spatialFilter": sf} for sf in spatial_filters(selection.area)]


# -- search ---------------------------------------------------------------------------------


def footprint_intersects(scene: Scene, area: BaseGeometry | None) -> bool:
    if area is None or not scene.footprint:
        return True
    try:
        return shape(scene.footprint).intersects(area)
    except (ShapelyError, ValueError, TypeError):
        return True  # a footprint we cannot read is the service's word, not ours


def search(
    client: M2MClient,
    selection: Selection,
    *,
    limit: int | None = None,
    on_page: Callable[[int], None] | None = None,
) -> list[Scene]:
    """All scenes matching the selection, newest first, deduplicated and really in the area."""
    try:
        filters = client.dataset_filters(selection.dataset)
    except InputError as exc:
        raise UserError(f"--dataset {selection.dataset}: {exc.message}") from None
    found: dict[str, Scene] = {}
    for scene_filter in scene_filters(selection, filters):
        for scene in _search_split(client, selection.dataset, scene_filter, selection, on_page):
            if scene.entity_id not in found and footprint_intersects(scene, selection.area):
                found[scene.entity_id] = scene
    scenes = sorted(
        found.values(), key=lambda s: (s.acquisition_date or dt.date.min, s.entity_id), reverse=True
    )
    return scenes[:limit] if limit else scenes


def _search_split(client, dataset, scene_filter, selection, on_page) -> Iterator[Scene]:
    """Page through results, halving the date range while a window holds more than the cap."""
    acquisition = scene_filter["acquisitionFilter"]
    first = client.scene_search(dataset, scene_filter)  # also tells totalHits: paging continues from it
    start, end = dt.date.fromisoformat(acquisition["start"]), dt.date.fromisoformat(acquisition["end"])
    if first.total_hits > SEARCH_HIT_CAP and start < end:
        middle = start + (end - start) // 2
        for lo, hi in ((start, middle), (middle + dt.timedelta(days=1), end)):
            narrowed = {**scene_filter, "acquisitionFilter": {"start": lo.isoformat(), "end": hi.isoformat()}}
            yield from _search_split(client, dataset, narrowed, selection, on_page)
        return
    if first.total_hits == 0:
        return
    yield from client.iter_scenes(
        dataset,
        scene_filter,
        first=first,
        on_page=(lambda page: on_page(page.records_returned)) if on_page else None,
    )
