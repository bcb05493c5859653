"""Filters on item properties: the STAC API ``query`` extension and CQL2 JSON, in one form.

Both are read into a CQL2 JSON tree (``query`` is rewritten as comparisons joined by ``and``),
which is then either compiled to a DuckDB ``WHERE`` clause over ``items.parquet`` (its columns
are the item properties, as stac-geoparquet lays them out) or evaluated on an item's properties in
Python, with the same meaning: a comparison with a missing value is false, as in SQL.

Supported: ``and``, ``or``, ``not``; ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``; ``isNull``;
``in``; ``between``; ``like``; and, in SQL only, ``s_intersects`` of the ``geometry`` with a
GeoJSON geometry or ``{"bbox": [...]}``; literals are numbers, strings, booleans and
``{"timestamp": ...}`` / ``{"date": ...}``. Anything else is an
:class:`~stacmirror.errors.InvalidInput` naming the parameter, so the API can answer 400 and the
library raise. The query extension's ``startsWith``, ``endsWith`` and ``contains`` become
``like``; a numeric string compared with a number column is read as the number (query-extension
clients send ``"10"``).

CQL2 *text* is parsed, and CQL2 JSON checked, by the ``cql2`` package (:func:`parse_filter`): its
own SQL is PostgreSQL/PostGIS with inline literals, and its evaluator fails on a missing property,
so the compilation to DuckDB (with bound parameters) and the evaluation stay here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from .errors import InvalidInput

COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
QUERY_OPERATORS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
QUERY_PATTERNS = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
NUMBER_TYPES = {"DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT"}
INTERSECTS_FUNCTION = "stacmirror_intersects"  # registered by offline_search.connect()
FILTER_LANGS = ("cql2-json", "cql2-text")
# stac-geoparquet columns that are not item properties one can filter on
NOT_QUERYABLE = {"type", "stac_version", "stac_extensions", "geometry", "bbox", "links", "assets"}


def from_query(query: dict[str, Any] | None, field: str = "query") -> dict[str, Any] | None:
    """The query extension (``{"eo:cloud_cover": {"lt": 30}}``) as a CQL2 JSON tree."""
    if not query:
        return None
    if not isinstance(query, dict):
        raise InvalidInput(field, 'must be an object such as {"eo:cloud_cover": {"lt": 30}}')
    args = []
    for name, tests in query.items():
        for op, value in tests.items() if isinstance(tests, dict) else [("eq", tests)]:
            if op == "in":
                if not isinstance(value, list):
                    raise InvalidInput(field, f"'in' on {name!r} needs a list of values")
                args.append({"op": "in", "args": [{"property": name}, list(value)]})
            elif op in QUERY_PATTERNS:
                if not isinstance(value, str):
                    raise InvalidInput(field, f"{op!r} on {name!r} needs a string")
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = QUERY_PATTERNS[op].format(escaped)
                args.append({"op": "like", "args": [{"property": name}, pattern]})
            elif op in QUERY_OPERATORS:
                args.append({"op": QUERY_OPERATORS[op], "args": [{"property": name}, value]})
            else:
                known = ", ".join([*QUERY_OPERATORS, "in", *QUERY_PATTERNS])
                raise InvalidInput(field, f"unknown operator {op!r} on {name!r}; known: {known}")
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def combine(*trees: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [t for t in trees if t]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"op": "and", "args": present}


def properties_in(tree: dict[str, Any] | None) -> set[str]:
    """Every property a tree names."""
    if isinstance(tree, dict):
        if "property" in tree:
            return {str(tree["property"])}
        return set().union(*(properties_in(a) for a in tree.get("args", []) if isinstance(a, dict)))
    return set()


def _literal(value: Any, field: str) -> Any:
    if isinstance(value, dict):
        text = value.get("timestamp") or value.get("date")
        if text is None:
            raise InvalidInput(field, f"unsupported value {value!r} (numbers, strings, booleans, timestamps)")
        try:
            moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(field, f"not a timestamp: {text!r}") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidInput(field, f"unsupported value {value!r} (numbers, strings, booleans, timestamps)")


def _node(tree: Any, field: str) -> tuple[str, list[Any]]:
    if not isinstance(tree, dict) or "op" not in tree:
        raise InvalidInput(field, f'must be CQL2 JSON such as {{"op": "<", "args": [...]}}, got {tree!r}')
    op, args = str(tree["op"]), tree.get("args")
    if not isinstance(args, list):
        raise InvalidInput(field, f"{op!r} needs a list of args")
    return op, args


def _property(arg: Any, op: str, field: str) -> str:
    if not isinstance(arg, dict) or "property" not in arg:
        raise InvalidInput(field, f"the first argument of {op!r} must be a property, got {arg!r}")
    return str(arg["property"])


def quoted(name: str) -> str:
    """A DuckDB identifier: property names hold ':' and may hold quotes."""
    return '"' + name.replace('"', '""') + '"'


def parse_filter(value: Any, lang: str | None, field: str = "filter") -> dict[str, Any] | None:
    """A request's ``filter`` as a CQL2 JSON tree: CQL2 text parsed, CQL2 JSON (an object or its
    JSON text) checked, by the ``cql2`` package."""
    import cql2

    if value is None or value == "":
        return None
    if lang is None:  # a JSON object is no CQL2 text: read it as what it plainly is
        lang = "cql2-json" if isinstance(value, dict) or str(value).lstrip().startswith("{") else "cql2-text"
    if lang not in FILTER_LANGS:
        raise InvalidInput("filter-lang", f"must be one of {', '.join(FILTER_LANGS)}, got {lang!r}")
    try:
        if lang == "cql2-text":
            if not isinstance(value, str):
                raise InvalidInput(field, "with filter-lang=cql2-text must be a string")
            return cql2.parse_text(value).to_json()
        text = value if isinstance(value, str) else json.dumps(value)
        tree = json.loads(text)
        cql2.parse_json(text)  # raises on what is not CQL2 JSON
    except InvalidInput:
        raise
    except Exception as exc:  # cql2's ParseError and ValidationError, JSON's ValueError
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise InvalidInput(field, f"is not {lang}: {' '.join(lines)[:300]}") from None
    if not isinstance(tree, dict):
        raise InvalidInput(field, "must be a CQL2 JSON object")
    return tree


def _area_wkb(value: Any, field: str) -> tuple[bytes, tuple[float, float, float, float]]:
    from shapely.geometry import shape

    from .area import bbox_numbers, parse_bbox

    if isinstance(value, dict) and "bbox" in value:  # as any bbox: 3D, across the antimeridian
        area = parse_bbox(bbox_numbers(value["bbox"], field, heights=True), field)
        return area.wkb, area.bounds
    try:
        area = shape(value)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise InvalidInput(field, f"s_intersects needs a GeoJSON geometry or a bbox: {exc}") from None
    if area.is_empty or not area.is_valid:
        raise InvalidInput(field, "s_intersects needs a valid, non-empty geometry")
    return area.wkb, area.bounds


def to_sql(
    tree: dict[str, Any], columns: set[str] | dict[str, str], field: str = "filter"
) -> tuple[str, list[Any]]:
    """A DuckDB condition and its parameters; properties must be among ``columns`` (names, or
    names and DuckDB types: then a numeric string compared with a number column is a number)."""
    types = columns if isinstance(columns, dict) else dict.fromkeys(columns, "")
    unknown = {name for name in properties_in(tree) if name not in types or name in NOT_QUERYABLE} - set(
        _spatial_properties(tree)
    )
    if unknown:
        raise InvalidInput(field, f"not a queryable property: {', '.join(sorted(unknown))}")

    def value(name: str, literal: Any) -> Any:
        literal = _literal(literal, field)
        if isinstance(literal, str) and types.get(name, "").split("(")[0] in NUMBER_TYPES:
            try:
                return float(literal)
            except ValueError:
                raise InvalidInput(field, f"{name!r} is a number; {literal!r} is not") from None
        return literal

    def compile_node(node: Any) -> tuple[str, list[Any]]:
        op, args = _node(node, field)
        op = op.lower() if op.lower() in ("and", "or", "not", "like", "in", "between", "s_intersects") else op
        if op in ("and", "or"):
            if not args:
                raise InvalidInput(field, f"{op!r} needs arguments")
            parts = [compile_node(a) for a in args]
            return "(" + f" {op.upper()} ".join(p[0] for p in parts) + ")", [v for p in parts for v in p[1]]
        if op == "not" and len(args) == 1:
            inner, values = compile_node(args[0])
            return f"(NOT COALESCE({inner}, FALSE))", values
        if op == "isNull" and len(args) == 1:
            return f"({quoted(_property(args[0], op, field))} IS NULL)", []
        if op == "s_intersects" and len(args) == 2:
            if _property(args[0], op, field) != "geometry":
                raise InvalidInput(
                    field, "s_intersects tests the item geometry: its first argument is geometry"
                )
            wkb, (west, south, east, north) = _area_wkb(args[1], field)
            loose = (  # the bbox columns first: cheap, and most rows stop here
                "(bbox.ymax >= ? AND bbox.ymin <= ?"
                " AND (bbox.xmin > bbox.xmax OR (bbox.xmax >= ? AND bbox.xmin <= ?)))"
            )
            exact = f"{INTERSECTS_FUNCTION}(geometry::BLOB, ?)"
            return f"({loose} AND {exact})", [south, north, west, east, wkb]
        if (op in COMPARISONS or op == "like") and len(args) == 2:
            name = _property(args[0], op, field)
            sql_op = "LIKE" if op == "like" else COMPARISONS[op]
            if op == "like" and not isinstance(args[1], str):
                raise InvalidInput(field, "like needs a string pattern")
            escape = " ESCAPE '\\'" if op == "like" else ""
            return f"({quoted(name)} {sql_op} ?{escape})", [value(name, args[1])]
        if op == "in" and len(args) == 2 and isinstance(args[1], list) and args[1]:
            name = _property(args[0], op, field)
            values = [value(name, v) for v in args[1]]
            if types.get(name, "").endswith("[]"):  # a list property (instruments): any one of them
                return f"list_has_any({quoted(name)}, ?)", [values]
            return f"({quoted(name)} IN ({', '.join('?' * len(values))}))", values
        if op == "between" and len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:
            args = [args[0], *args[1]]  # the draft form: [property, [low, high]]
        if op == "between" and len(args) == 3:
            name = _property(args[0], op, field)
            return f"({quoted(name)} BETWEEN ? AND ?)", [value(name, args[1]), value(name, args[2])]
        raise InvalidInput(field, f"unsupported operator {op!r} with {len(args)} argument(s)")

    return compile_node(tree)


def _spatial_properties(tree: Any) -> list[str]:
    """The properties spatial operators name (the geometry, which is no comparable property)."""
    if not isinstance(tree, dict):
        return []
    if str(tree.get("op", "")).lower() == "s_intersects":
        return [
            str(a["property"]) for a in tree.get("args", [])[:1] if isinstance(a, dict) and "property" in a
        ]
    return [name for a in tree.get("args", []) or [] for name in _spatial_properties(a)]


def _like(value: Any, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    regex, escaped = "", False
    for char in pattern:
        if escaped:
            regex, escaped = regex + re.escape(char), False
        elif char == "\\":
            escaped = True
        else:
            regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return False
    if isinstance(right, dt.datetime) and isinstance(left, str):
        left = dt.datetime.fromisoformat(left.replace("Z", "+00:00"))
    try:
        return {
            "=": left == right,
            "<>": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    except TypeError:  # a string compared with a number: no match, as a typed column would not
        return False


def matches(properties: dict[str, Any], tree: dict[str, Any] | None, field: str = "filter") -> bool:
    """Whether an item's properties pass the tree; the same meaning as :func:`to_sql`."""
    if not tree:
        return True
    op, args = _node(tree, field)
    if op == "and":
        return all(matches(properties, a, field) for a in args)
    if op == "or":
        return any(matches(properties, a, field) for a in args)
    if op == "not" and len(args) == 1:
        return not matches(properties, args[0], field)
    if op == "isNull" and len(args) == 1:
        return properties.get(_property(args[0], op, field)) is None
    if op in COMPARISONS and len(args) == 2:
        return _compare(op, properties.get(_property(args[0], op, field)), _literal(args[1], field))
    if op == "like" and len(args) == 2 and isinstance(args[1], str):
        return _like(properties.get(_property(args[0], op, field)), args[1])
    if op == "in" and len(args) == 2 and isinstance(args[1], list) and args[1]:
        value = properties.get(_property(args[0], op, field))
        if isinstance(value, list):  # a list property: any one of its values
            return any(_compare("=", v, _literal(w, field)) for v in value for w in args[1])
        return any(_compare("=", value, _literal(v, field)) for v in args[1])
    if op == "between" and len(args) == 3:
        value = properties.get(_property(args[0], op, field))
        low, high = _literal(args[1], field), _literal(args[2], field)
        return _compare(">=", value, low) and _compare("<=", value, high)
    raise InvalidInput(field, f"unsupported operator {op!r} with {len(args)} argument(s)")
