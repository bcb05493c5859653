"""The STAC API's OpenAPI 3.0 document (``service-desc``) and an HTML page of it (``service-doc``).

The document is what the tests fuzz the API from (schemathesis): every route, parameter, status
code and media type the API answers with is in it, so a response that it does not describe is a
defect of one or the other. The HTML page is built from the same document, with no script and
nothing fetched from elsewhere, so it works offline.
"""

from __future__ import annotations

import html
from typing import Any

OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON = "application/geo+json"
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, media: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


ERRORS = {
    "400": _answer("A bad request: the description says which parameter and why", JSON, _ref("Error")),
    "404": _answer("No such resource", JSON, _ref("Error")),
    "405": _answer("The method is not allowed here", JSON, _ref("Error")),
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


SEARCH_PARAMETERS = [
    _query("bbox", "west,south,east,north (or 6 numbers with heights), in degrees"),
    _query("datetime", "an RFC 3339 instant, or start/end with one end open (.. or empty)"),
    _query("limit", "items per page (at most 1000; more is clamped)", {"type": "integer", "minimum": 1}),
    _query("ids", "comma-separated item ids"),
    _query("intersects", "a GeoJSON geometry, as JSON text"),
    _query("query", "the query extension, as JSON text"),
    _query("filter", "a CQL2 filter (text by default)"),
    _query("filter-lang", "the filter's language", {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
    _query("sortby", "comma-separated fields, each with an optional + or - (descending)"),
    _query("fields", "comma-separated fields to include (+ optional) or exclude (-)"),
    _query("token", "the next page, as a next link gives it"),
]
COLLECTION_ID = {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"}}
FEATURE_ID = {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
    },
    "Link": {
        "type": "object",
        "required": ["rel", "href"],
        "properties": {
            "rel": {"type": "string"},
            "href": {"type": "string"},
            "type": {"type": "string"},
            "method": {"type": "string"},
            "body": {"type": "object"},
        },
    },
    "Links": {"type": "array", "items": _ref("Link")},
    "Landing": {
        "type": "object",
        "required": ["type", "id", "stac_version", "description", "links", "conformsTo"],
        "properties": {
            "type": {"type": "string", "enum": ["Catalog"]},
            "links": _ref("Links"),
            "conformsTo": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Conformance": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
    },
    "Collection": {
        "type": "object",
        "required": ["type", "id", "stac_version", "description", "license", "extent", "links"],
        "properties": {"type": {"type": "string", "enum": ["Collection"]}, "links": _ref("Links")},
    },
    "Collections": {
        "type": "object",
        "required": ["collections", "links"],
        "properties": {"collections": {"type": "array", "items": _ref("Collection")}, "links": _ref("Links")},
    },
    "Queryables": {
        "type": "object",
        "required": ["$schema", "type", "properties"],
        "properties": {"properties": {"type": "object"}},
    },
    "Item": {
        "type": "object",
        "description": "A STAC Item; with the fields extension, only what was asked for (and id)",
        "required": ["id"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "collection": {"type": "string"},
            "bbox": {"type": "array", "items": {"type": "number"}},
            "geometry": {"type": "object"},
            "properties": {"type": "object"},
            "assets": {"type": "object"},
            "links": _ref("Links"),
        },
    },
    "ItemCollection": {
        "type": "object",
        "required": ["type", "features", "links", "numberReturned"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": _ref("Item")},
            "links": _ref("Links"),
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
        },
    },
    "SearchBody": {
        "type": "object",
        "properties": {
            "bbox": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
            "datetime": {"type": "string"},
            "intersects": {"type": "object"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "collections": {"type": "array", "items": {"type": "string"}},
            "limit": {"type": "integer", "minimum": 1},
            "query": {"type": "object"},
            "filter": {"oneOf": [{"type": "object"}, {"type": "string"}]},
            "filter-lang": {"type": "string", "enum": ["cql2-text", "cql2-json"]},
            "sortby": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field"],
                    "properties": {
                        "field": {"type": "string"},
                        "direction": {"type": "string", "enum": ["asc", "desc"]},
                    },
                },
            },
            "fields": {
                "type": "object",
                "properties": {
                    "include": {"type": "array", "items": {"type": "string"}},
                    "exclude": {"type": "array", "items": {"type": "string"}},
                },
            },
            "token": {"type": "string"},
        },
    },
}


def _get(summary: str, media: str, schema: dict[str, Any], *errors: str, **extra: Any) -> dict[str, Any]:
    responses = {"200": _answer(summary, media, schema), **{c: ERRORS[c] for c in ("405", *errors)}}
    return {"get": {"summary": summary, "responses": responses, **extra}}


def openapi_document(api_url: str, example: tuple[str, str] | None = None) -> dict[str, Any]:
    """The document, with the API's own address as its server, and ``example`` (a collection id
    and an item id in it) as the examples of the path parameters, so a fuzzer reaches an item."""
    collection_id, feature_id = dict(COLLECTION_ID), dict(FEATURE_ID)
    if example:
        collection_id["example"], feature_id["example"] = example
    items = _answer("A page of items", GEOJSON, _ref("ItemCollection"))
    search = {
        "get": {
            "summary": "Search items",
            "parameters": SEARCH_PARAMETERS + [_query("collections", "comma-separated collection ids")],
            "responses": {"200": items, "400": ERRORS["400"], "405": ERRORS["405"]},
        },
        "post": {
            "summary": "Search items (the same, as a JSON body)",
            "requestBody": {"required": False, "content": {JSON: {"schema": _ref("SearchBody")}}},
            "responses": {"200": items, "400": ERRORS["400"], "405": ERRORS["405"]},
        },
    }
    collection_items = _get(
        "A collection's items", GEOJSON, _ref("ItemCollection"), "400", "404",
        parameters=[collection_id, *SEARCH_PARAMETERS],
    )  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "stacmirror STAC API",
            "version": "1.0.0",
            "description": "A STAC API over a Landsat mirror's items.parquet files",
        },
        "servers": [{"url": api_url}],
        "paths": {
            "/": _get("The landing page", JSON, _ref("Landing")),
            "/conformance": _get("The conformance classes", JSON, _ref("Conformance")),
            "/api": _get("This document", OPENAPI, {"type": "object"}),
            "/api.html": _get("This document as a web page", "text/html", {"type": "string"}),
            "/queryables": _get(
                "What filters and sortby accept", "application/schema+json", _ref("Queryables")
            ),
            "/collections": _get("The collections", JSON, _ref("Collections")),
            "/collections/{collectionId}": _get(
                "One collection", JSON, _ref("Collection"), "404", parameters=[collection_id]
            ),
            "/collections/{collectionId}/queryables": _get(
                "A collection's queryables",
                "application/schema+json",
                _ref("Queryables"),
                "404",
                parameters=[collection_id],
            ),  # fmt: skip
            "/collections/{collectionId}/items": collection_items,
            "/collections/{collectionId}/items/{featureId}": _get(
                "One item", GEOJSON, _ref("Item"), "404", parameters=[collection_id, feature_id]
            ),
            "/search": search,
        },
        "components": {"schemas": SCHEMAS},
    }


def service_doc(api_url: str) -> str:
    """The document as a plain HTML page: routes, their parameters and answers."""
    document = openapi_document(api_url)
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parameters = ", ".join(
                html.escape(p["name"]) for p in operation.get("parameters", []) if p["in"] == "query"
            )
            codes = ", ".join(operation["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation['summary'])}</td><td>{parameters}</td><td>{codes}</td></tr>"
            )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>stacmirror STAC API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left;"
        "vertical-align:top;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>stacmirror STAC API</h1><p>At <code>{html.escape(api_url)}</code>. The OpenAPI 3 document is "
        "<a href='api'>api</a>; the conformance classes are at <a href='conformance'>conformance</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>query parameters</th><th>answers</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
