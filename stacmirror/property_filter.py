"""Filters on item properties: the STAC API ``query`` extension and CQL2 JSON, in one form.

Both are read into a CQL2 JSON tree (``query`` is rewritten as comparisons joined by ``and``),
which is then either compiled to a DuckDB ``WHERE`` clause over ``items.parquet`` (its columns
are the item properties, as stac-geoparquet lays them out) or evaluated on an item's properties in
Python, with the same meaning: a comparison with a missing value is false, as in SQL.

Supported: ``and``, ``or``, ``not``; ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``; ``isNull``;
``in``; ``between``; literals are numbers, strings, booleans and ``{"timestamp": ...}`` /
``{"date": ...}``. Anything else is an :class:`~stacmirror.errors.InvalidInput` naming the
parameter, so the API can answer 400 and the library raise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .errors import InvalidInput

COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
QUERY_OPERATORS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
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
                args.append({"op": "in", "args": [{"property": name}, list(value)]})
            elif op in QUERY_OPERATORS:
                args.append({"op": QUERY_OPERATORS[op], "args": [{"property": name}, value]})
            else:
                known = ", ".join([*QUERY_OPERATORS, "in"])
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


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(tree: dict[str, Any], columns: set[str], field: str = "filter") -> tuple[str, list[Any]]:
    """A DuckDB condition and its parameters; properties must be among ``columns``."""
    unknown = properties_in(tree) - (columns - NOT_QUERYABLE)
    if unknown:
        raise InvalidInput(field, f"not a queryable property: {', '.join(sorted(unknown))}")

    def compile_node(node: Any) -> tuple[str, list[Any]]:
        op, args = _node(node, field)
        if op in ("and", "or"):
            if not args:
                raise InvalidInput(field, f"{op!r} needs arguments")
            parts = [compile_node(a) for a in args]
            return "(" + f" {op.upper()} ".join(p[0] for p in parts) + ")", [v for p in parts for v in p[1]]
        if op == "not" and len(args) == 1:
            inner, values = compile_node(args[0])
            return f"(NOT COALESCE({inner}, FALSE))", values
        if op == "isNull" and len(args) == 1:
            return f"({_quoted(_property(args[0], op, field))} IS NULL)", []
        if op in COMPARISONS and len(args) == 2:
            column = _quoted(_property(args[0], op, field))
            return f"({column} {COMPARISONS[op]} ?)", [_literal(args[1], field)]
        if op == "in" and len(args) == 2 and isinstance(args[1], list) and args[1]:
            column = _quoted(_property(args[0], op, field))
            values = [_literal(v, field) for v in args[1]]
            return f"({column} IN ({', '.join('?' * len(values))}))", values
        if op == "between" and len(args) == 3:
            column = _quoted(_property(args[0], op, field))
            return f"({column} BETWEEN ? AND ?)", [_literal(args[1], field), _literal(args[2], field)]
        raise InvalidInput(field, f"unsupported operator {op!r} with {len(args)} argument(s)")

    return compile_node(tree)


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
    if op == "in" and len(args) == 2 and isinstance(args[1], list) and args[1]:
        value = properties.get(_property(args[0], op, field))
        return any(_compare("=", value, _literal(v, field)) for v in args[1])
    if op == "between" and len(args) == 3:
        value = properties.get(_property(args[0], op, field))
        low, high = _literal(args[1], field), _literal(args[2], field)
        return _compare(">=", value, low) and _compare("<=", value, high)
    raise InvalidInput(field, f"unsupported operator {op!r} with {len(args)} argument(s)")
