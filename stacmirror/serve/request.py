"""A STAC API search request, read and checked: GET query parameters or a POST body, one form.

Everything a client can get wrong is an :class:`ApiError` (400) naming the parameter, before any
search runs: RFC 3339 datetimes and intervals, 2D or 3D ``bbox``, GeoJSON ``intersects``,
``limit`` (clamped to the maximum, as the spec asks), ``sortby``, ``fields``, ``query`` and
``filter`` (CQL2 text or JSON, read by :func:`stacmirror.property_filter.parse_filter`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..area import bbox_numbers
from ..errors import InvalidInput
from ..property_filter import FILTER_LANGS, combine, from_query, parse_filter
from ..sort_keys import token_key

DEFAULT_LIMIT = 10
MAX_LIMIT = 1_000
# a page token: "k" and the last item's sort key, or "p" and a position among the candidates
TOKEN = re.compile(r"^(?:p([0-9]{1,12})|k([A-Za-z0-9_-]{1,4000}))$")
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
# what an item keeps when ``fields`` is given empty (the extension's recommended default)
DEFAULT_FIELDS = (
    "type",
    "stac_version",
    "id",
    "geometry",
    "bbox",
    "links",
    "assets",
    "collection",
    "properties.datetime",
)


ALWAYS_FIELDS = ("type", "stac_version", "id", "collection")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bad(parameter: str, message: str) -> ApiError:
    return ApiError(400, f"{parameter}: {message}")


def rfc3339(text: str, parameter: str = "datetime") -> dt.datetime:
    """An RFC 3339 date-time (``T``/``Z`` in either case, an offset with a colon, any fraction)."""
    match = RFC3339.match(text)
    if not match:
        raise bad(parameter, f"{text!r} is not an RFC 3339 date-time such as 2021-04-08T04:39:23Z")
    year, month, day, hour, minute, second = (int(v) for v in match.groups()[:6])
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    try:
        leap = second == 60  # a leap second: the last instant of its minute
        moment = dt.datetime(year, month, day, hour, minute, 59 if leap else second)
        if fraction:
            moment += dt.timedelta(microseconds=int((fraction + "000000")[:6]))
        offset = dt.timedelta(0)
        if not zulu:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = (1 if sign == "+" else -1) * dt.timedelta(hours=int(off_h), minutes=int(off_m))
    except ValueError as exc:
        raise bad(parameter, f"{text!r} is not a valid date-time ({exc})") from None
    return moment.replace(tzinfo=dt.timezone(offset))


def interval(text: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``datetime``: one instant, or ``start/end`` with one end open (``..`` or empty)."""
    if not isinstance(text, str):
        raise bad("datetime", "must be a string")
    parts = text.split("/")
    if len(parts) == 1:
        moment = rfc3339(text)
        return moment, moment
    if len(parts) != 2:
        raise bad("datetime", f"{text!r}: an interval has one '/'")
    ends = [None if p in ("", "..") else rfc3339(p) for p in parts]
    if ends[0] is None and ends[1] is None:
        raise bad("datetime", f"{text!r}: an interval needs at least one end")
    if ends[0] is not None and ends[1] is not None and ends[0] > ends[1]:
        raise bad("datetime", f"{text!r}: the start is after the end")
    return ends[0], ends[1]


def _bbox(value: Any, post: bool) -> list[float] | None:
    """The 2D box of a 4- or 6-number ``bbox``; its ranges are checked where every bbox is, by
    :func:`stacmirror.area.parse_bbox`, when the search reads it."""
    if value is None or (not post and value == ""):
        return None
    if post and not isinstance(value, list):
        raise bad("bbox", "must be an array of 4 or 6 numbers")
    try:
        return bbox_numbers(value, "bbox", heights=True)
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None


def _geometry(value: Any) -> BaseGeometry | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            value = json.loads(value)
        geometry = shape(value)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise bad("intersects", f"is not a GeoJSON geometry: {exc}") from None
    if geometry.is_empty or not geometry.is_valid:
        raise bad("intersects", "must be a valid, non-empty geometry")
    return geometry


def _strings(value: Any, parameter: str) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise bad(parameter, "must be a list of strings")


def _object(value: Any, parameter: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except ValueError:
            raise bad(parameter, "is not JSON") from None
    return value


def _sortby(value: Any) -> list[tuple[str, bool]] | None:
    if value is None or value == "" or value == []:
        return None
    keys = []
    if isinstance(value, str):
        for term in (t.strip() for t in value.split(",")):
            if not term.lstrip("+-"):
                raise bad("sortby", f"{value!r}: an empty sort key")
            keys.append((term.lstrip("+-"), term.startswith("-")))
        return keys
    if not isinstance(value, list):
        raise bad("sortby", 'must be a list of {"field": ..., "direction": "asc" | "desc"}')
    for term in value:
        if not isinstance(term, dict) or not isinstance(term.get("field"), str) or not term["field"]:
            raise bad("sortby", 'each key is {"field": ..., "direction": "asc" | "desc"}')
        direction = term.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise bad("sortby", f"direction must be asc or desc, got {direction!r}")
        keys.append((term["field"], direction == "desc"))
    return keys


@dataclass(frozen=True)
class Fields:
    """The fields extension: what each returned item keeps.

    * ``include`` given: those fields, and always ``type``, ``stac_version``, ``id`` and
      ``collection`` (what makes it an item one can find again);
    * only ``exclude`` given (POST: no ``include`` key at all): the whole item but those;
    * empty, or ``include`` null or ``[]``: the default set (:data:`DEFAULT_FIELDS`), less
      ``exclude``.

    A field both included and excluded is included; so is one excluded whose part is included
    (``-properties,+properties.eo:cloud_cover`` keeps that one property)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_given: bool = False

    @classmethod
    def of(cls, value: Any, post: bool) -> Fields | None:
        if not post:
            if value is None:
                return None
            if not isinstance(value, str):
                raise bad("fields", "must be a comma-separated list")
            terms = [t.strip() for t in value.split(",") if t.strip()]
            include = tuple(t.lstrip("+") for t in terms if not t.startswith("-"))
            return cls(include, tuple(t[1:] for t in terms if t.startswith("-")), bool(include))
        if not isinstance(value, dict):
            raise bad("fields", 'must be an object {"include": [...], "exclude": [...]}')
        parts = []
        for name in ("include", "exclude"):
            listed = value.get(name) or []
            if not isinstance(listed, list) or not all(isinstance(v, str) and v for v in listed):
                raise bad("fields", f"{name} must be a list of field names")
            parts.append(tuple(listed))
        return cls(*parts, include_given="include" in value)

    def apply(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.include:
            kept: dict[str, Any] = {}
            for path in (*ALWAYS_FIELDS, *self.include):
                _copy(item, kept, path.split("."))
        elif self.exclude and not self.include_given:
            kept = json.loads(json.dumps(item))
        else:
            kept = {}
            for path in DEFAULT_FIELDS:
                _copy(item, kept, path.split("."))
        for path in self.exclude:
            if not any(i == path or i.startswith(path + ".") for i in self.include):
                _drop(kept, path.split("."))
        return kept


def _copy(source: dict[str, Any], target: dict[str, Any], keys: list[str]) -> None:
    head, rest = keys[0], keys[1:]
    if head not in source:
        return
    if not rest:
        target[head] = source[head]
    elif isinstance(source[head], dict):
        _copy(source[head], target.setdefault(head, {}), rest)


def _drop(target: dict[str, Any], keys: list[str]) -> None:
    if len(keys) == 1:
        target.pop(keys[0], None)
    elif isinstance(target.get(keys[0]), dict):
        _drop(target[keys[0]], keys[1:])


@dataclass
class SearchRequest:
    limit: int = DEFAULT_LIMIT
    after: int = 0  # from a "p" token: where the page starts among the candidates
    after_key: list[Any] | None = None  # from a "k" token: the sort key the page starts after
    bbox: list[float] | None = None
    intersects: BaseGeometry | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    ids: list[str] | None = None
    collections: list[str] | None = None
    filter: dict[str, Any] | None = None
    sortby: list[tuple[str, bool]] | None = None
    fields: Fields | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # as given, for the next page's link

    @classmethod
    def read(cls, raw: dict[str, Any], post: bool) -> SearchRequest:
        if not isinstance(raw, dict):
            raise ApiError(400, "the body must be a JSON object")
        request = cls(raw=raw)
        limit = raw.get("limit")
        if limit is not None:
            if isinstance(limit, bool) or not re.fullmatch(r"[0-9]{1,9}", str(limit)) or int(limit) < 1:
                raise bad("limit", f"must be a whole number >= 1, got {limit!r}")
            request.limit = min(int(limit), MAX_LIMIT)
        token = raw.get("token")
        if token is not None and token != "":
            match = TOKEN.match(str(token))
            if not match:
                raise bad("token", "is not one this API gave")
            if match[1] is not None:
                request.after = int(match[1])
            else:
                try:
                    request.after_key = token_key(match[2])
                except InvalidInput:
                    raise bad("token", "is not one this API gave") from None
        request.bbox = _bbox(raw.get("bbox"), post)
        request.intersects = _geometry(_object(raw.get("intersects"), "intersects"))
        if request.bbox and request.intersects is not None:
            raise ApiError(400, "give bbox or intersects, not both")
        if raw.get("datetime") not in (None, ""):
            request.start, request.end = interval(raw["datetime"])
        request.ids = _strings(raw.get("ids"), "ids")
        request.collections = _strings(raw.get("collections"), "collections")
        request.sortby = _sortby(_object(raw.get("sortby"), "sortby") if post else raw.get("sortby"))
        if "fields" in raw:
            request.fields = Fields.of(raw["fields"], post)
        lang = raw.get("filter-lang", raw.get("filter_lang"))
        if lang is not None and lang not in FILTER_LANGS:
            raise bad("filter-lang", f"must be one of {', '.join(FILTER_LANGS)}, got {lang!r}")
        try:
            tree = parse_filter(
                _object(raw.get("filter"), "filter") if lang == "cql2-json" else raw.get("filter"), lang
            )
            request.filter = combine(from_query(_object(raw.get("query"), "query")), tree)
        except InvalidInput as exc:
            raise ApiError(400, str(exc)) from None
        return request
