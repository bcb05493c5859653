"""Keyset paging: the rows after a given sort key, and that key as URL-safe text.

A page that starts after the last item's sort key costs what the first page does; one that starts
at an offset makes DuckDB sort and skip every row before it. The key has one value per ORDER BY
term (the sort properties, then collection and id, so it is unique); nulls sort last.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .errors import InvalidInput
from .property_filter import quoted


def after_key_sql(terms: list[tuple[str, bool]], key: list[Any]) -> tuple[str, list[Any]]:
    """SQL true of the rows after the one with sort ``key`` in the order of ``terms`` (nulls
    last), and its parameters: equal on the first i-1 keys and after it on the i-th, for some i."""
    if not isinstance(key, list) or len(key) != len(terms):
        raise InvalidInput("after_key", f"must hold {len(terms)} values, one per sort key")
    ors, args = [], []
    for i, (column, descending) in enumerate(terms):
        ands, values = [], []
        for (earlier, _), value in zip(terms[:i], key, strict=False):
            ands.append(f"{quoted(earlier)} IS NULL" if value is None else f"{quoted(earlier)} = ?")
            values += [] if value is None else [value]
        if key[i] is None:  # nothing sorts after a null but the following keys of other nulls
            continue
        ands.append(f"({quoted(column)} {'<' if descending else '>'} ? OR {quoted(column)} IS NULL)")
        ors.append("(" + " AND ".join(ands) + ")")
        args += [*values, key[i]]
    return ("(" + " OR ".join(ors) + ")" if ors else "FALSE"), args


def key_token(key: list[Any]) -> str | None:
    """A page key (``next_key``) as URL-safe text, or None for a value it cannot carry."""
    import base64

    import orjson

    encoded = []
    for value in key:
        if isinstance(value, dt.datetime):
            encoded.append({"t": value.isoformat()})
        elif isinstance(value, dt.date):
            encoded.append({"d": value.isoformat()})
        elif value is None or isinstance(value, (str, int, float, bool)):
            encoded.append(value)
        else:  # a list or struct column as a sort key: the page is told by position instead
            return None
    return base64.urlsafe_b64encode(orjson.dumps(encoded)).decode().rstrip("=")


def token_key(text: str) -> list[Any]:
    """The page key a :func:`key_token` text holds; InvalidInput for any other text."""
    import base64

    import orjson

    try:
        values = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(values, list):
            raise ValueError(text)
        key = []
        for value in values:
            if isinstance(value, dict) and list(value) == ["t"]:
                key.append(dt.datetime.fromisoformat(value["t"]))
            elif isinstance(value, dict) and list(value) == ["d"]:
                key.append(dt.date.fromisoformat(value["d"]))
            elif value is None or isinstance(value, (str, int, float, bool)):
                key.append(value)
            else:
                raise ValueError(text)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("token", "is not one this API gave") from None
    return key
