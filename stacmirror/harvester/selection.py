"""What to search for: area, dates, cloud and metadata filters, turned into M2M scene filters.

:class:`Selection` validates itself on construction, so a bad date, box or
range fails before any request is made or any file written. Metadata filters
are looked up by their label through ``dataset-filters`` at run time (filter
ids differ per dataset and change over time).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..area import load_area
from ..errors import InvalidInput
from ..m2m import DatasetFilter, InputError, M2MClient, Scene

SEARCH_HIT_CAP = 50_000  # the service returns at most this many results per search
TIERS = ("T1", "T2", "RT")


# -- M2M filters ---------------------------------------------------------------------------------


def spatial_filters(area: BaseGeometry) -> list[dict[str, Any]]:
    """One GeoJSON spatial filter per polygon: the service is only shown to accept Polygon filters,
    and knows no wrapping at the antimeridian (areas are split there). The results are merged."""
    parts = list(area.geoms) if isinstance(area, MultiPolygon) else [area]
    return [{"filterType": "geojson", "geoJson": mapping(part)} for part in parts]


# -- dates and ranges ------------------------------------------------------------------------------


def parse_date(value: Any, field_name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except (TypeError, ValueError):
        raise InvalidInput(field_name, f"must be a date as YYYY-MM-DD, got {value!r}") from None


def parse_range(value: Any, field_name: str) -> tuple[int, int]:
    """``N``, ``"N"``, ``"N-M"`` or ``(N, M)`` as an inclusive integer range."""
    try:
        if isinstance(value, (tuple, list)):
            first, second = (int(v) for v in value)
        else:
            low, _, high = str(value).strip().partition("-")
            first, second = int(low), int(high or low)
    except (TypeError, ValueError):
        raise InvalidInput(field_name, f"must be N or N-M, got {value!r}") from None
    if first > second:
        raise InvalidInput(field_name, f"{value!r}: the range is reversed")
    return first, second


def _filter_pairs(filters: Any) -> list[tuple[str, str]]:
    """``{"Label": value}`` or ``["Label=VALUE", ...]`` as (label, value) pairs."""
    if not filters:
        return []
    if isinstance(filters, Mapping):
        items = [(str(k), str(v)) for k, v in filters.items()]
    elif isinstance(filters, str):
        raise InvalidInput("filters", 'give a mapping {"Label": value} or a list of "Label=VALUE"')
    else:
        items = []
        for entry in filters:
            label, sep, value = str(entry).partition("=")
            if not sep:
                raise InvalidInput("filters", f'must look like "Label=VALUE", got {entry!r}')
            items.append((label, value))
    pairs = [(label.strip(), value.strip()) for label, value in items]
    for label, _ in pairs:
        if not label:
            raise InvalidInput("filters", "a filter has an empty label")
    return pairs


@dataclass
class Selection:
    """Everything that decides which scenes a search returns; validated on construction.

    ``start``/``end`` take ``datetime.date`` or ISO strings; ``end`` None or ``"today"`` makes the
    selection open-ended (``open_end``): it ends on the day it is used. The area is at most one of ``bbox``
    (``"W,S,E,N"`` or four numbers; ``W > E`` crosses the antimeridian), ``aoi`` (a GeoJSON file,
    a GeoJSON mapping or a shapely geometry) and ``wkt``. ``path`` and ``row`` take ``N`` or
    ``"N-M"``; ``filters`` takes any other dataset filter by label: ``{"Label": value}``.
    """

    dataset: str
    start: Any
    end: Any = None
    _: KW_ONLY
    bbox: Any = None
    aoi: Any = None
    wkt: str | None = None
    cloud_max: float | None = None
    cloud_min: float | None = None
    satellite: Any = None
    path: Any = None
    row: Any = None
    tier: str | None = None
    filters: Any = None
    area: BaseGeometry | None = field(init=False, repr=False, compare=False)
    open_end: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise InvalidInput("dataset", "give a dataset alias, e.g. landsat_ot_c2_l2")
        self.start = parse_date(self.start, "start")
        # no end, or "today": open-ended, searched up to the day each run (or sync) happens
        self.open_end = self.end is None or str(self.end).strip().lower() == "today"
        self.end = dt.date.today() if self.open_end else parse_date(self.end, "end")
        if self.start > self.end:
            raise InvalidInput("start", f"{self.start} is after end {self.end}")
        for name in ("cloud_min", "cloud_max"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InvalidInput(name, f"must be a number, got {value!r}") from None
            if not 0 <= value <= 100:
                raise InvalidInput(name, f"must be between 0 and 100, got {value}")
            setattr(self, name, value)
        if self.cloud_min is not None and self.cloud_max is not None and self.cloud_min > self.cloud_max:
            raise InvalidInput("cloud_min", "is larger than cloud_max")
        if self.satellite is not None:
            self.satellite = str(self.satellite).strip()
        for name in ("path", "row"):
            value = getattr(self, name)
            if value is not None:
                first, second = parse_range(value, name)
                setattr(self, name, str(first) if first == second else f"{first}-{second}")
        if self.tier is not None and self.tier not in TIERS:
            raise InvalidInput("tier", f"must be one of {', '.join(TIERS)}, got {self.tier!r}")
        self.filters = _filter_pairs(self.filters)
        has_area = any(v is not None for v in (self.bbox, self.aoi, self.wkt))
        self.area = load_area(self.aoi, self.bbox, self.wkt) if has_area else None

    def with_area(self, area: BaseGeometry) -> Selection:
        """The same selection over another area (one region of a multi-region harvest)."""
        other = copy.copy(self)
        other.area = area
        return other

    def wanted_filters(self) -> list[tuple[str, str, str]]:
        """(label, value, field) triples, by label as the service names them."""
        wanted = []
        if self.satellite:
            wanted.append(("Satellite", self.satellite, "satellite"))
        if self.path:
            wanted.append(("WRS Path", self.path, "path"))
        if self.row:
            wanted.append(("WRS Row", self.row, "row"))
        if self.tier:
            wanted.append(("Collection Category", self.tier, "tier"))
        wanted += [(label, value, "filters") for label, value in self.filters]
        return wanted

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            **({"openEnd": True} if self.open_end else {}),
            "area": mapping(self.area) if self.area is not None else None,
            **{
                name: getattr(self, name)
                for name in ("cloud_min", "cloud_max", "satellite", "path", "row", "tier")
                if getattr(self, name) is not None
            },
            "filters": dict(self.filters),
        }


# -- M2M filters ---------------------------------------------------------------------------


def metadata_filter(
    wanted: list[tuple[str, str, str]], available: list[DatasetFilter]
) -> dict[str, Any] | None:
    """An M2M ``metadataFilter`` for the wanted (label, value) pairs, resolved by label."""
    by_label = {f.label.lower(): f for f in available}
    children = []
    for label, value, field_name in wanted:
        spec = by_label.get(label.lower())
        if spec is None:
            names = ", ".join(sorted(f.label for f in available))
            raise InvalidInput(field_name, f"the dataset has no filter {label!r}; valid labels: {names}")
        if spec.kind == "Range":
            first, second = parse_range(value, field_name)
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
                raise InvalidInput(
                    field_name, f"{value!r} is not a valid {spec.label}; valid values: {valid}"
                )
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
        # filter ids are only needed for metadata filters: a plain search saves the call, and an
        # unknown dataset is then refused by scene-search with the same error
        filters = client.dataset_filters(selection.dataset) if selection.wanted_filters() else []
        found: dict[str, Scene] = {}
        for scene_filter in scene_filters(selection, filters):
            for scene in _search_split(client, selection.dataset, scene_filter, selection, on_page):
                if scene.entity_id not in found and footprint_intersects(scene, selection.area):
                    found[scene.entity_id] = scene
    except InputError as exc:
        if "DATASET" not in exc.code.upper():  # a bad filter, not an unknown dataset
            raise
        raise InvalidInput("dataset", f"{selection.dataset}: {exc.message}") from None
    scenes = sorted(
        found.values(), key=lambda s: (s.acquisition_date or dt.date.min, s.entity_id), reverse=True
    )
    return scenes[:limit] if limit else scenes


def _search_split(client, dataset, scene_filter, selection, on_page) -> Iterator[Scene]:
    """Page through results, halving the date range while a window holds more than the cap."""
    acquisition = scene_filter["acquisitionFilter"]
    first = client.scene_search(dataset, scene_filter)  # also tells totalHits: paging continues from it
    start, end = dt.date.fromisoformat(acquisition["start"]), dt.date.fromisoformat(acquisition["end"])
    if first.total_hits >= SEARCH_HIT_CAP and start < end:  # the count itself may be capped at the cap
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
