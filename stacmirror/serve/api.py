"""A STAC API over the mirror, at ``/api/``, backed by the collections' ``items.parquet``.

Landing page, conformance, an OpenAPI 3 document (``/api/api``) and its HTML page
(``/api/api.html``), queryables, collections (the datasets' and the crop stacks'), a collection's
items, one item, and ``/search`` by GET and POST with ``bbox``/``intersects``, ``datetime``,
``ids``, ``collections``, ``limit`` and next-page tokens; the query, filter (CQL2 text and JSON,
basic spatial), sort and fields extensions. Requests are read by :mod:`.request`, searches run by
:mod:`stacmirror.offline_search`. Items are the catalog's own files, with asset hrefs made
absolute to the served ``/catalog/`` tree. Why no existing server is used: the README's "STAC API"
section says what failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..errors import InvalidInput, StacmirrorError
from ..layout import Mirror
from ..offline_search import queryables, search
from ..sort_keys import key_token
from .openapi import OPENAPI, openapi_document, service_doc
from .request import ApiError, SearchRequest, bad

STAC_VERSION = "1.1.0"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/browseable",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA = "application/schema+json"
HTML = "text/html; charset=utf-8"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


QUERYABLE_DETAILS = {
    "eo:cloud_cover": {"title": "Cloud cover (%)", "minimum": 0, "maximum": 100},
    "landsat:cloud_cover_land": {"title": "Cloud cover over land (%)", "minimum": 0, "maximum": 100},
    "landsat:wrs_path": {"title": "WRS path (3 digits)"},
    "landsat:wrs_row": {"title": "WRS row (3 digits)"},
    "platform": {
        "title": "Platform",
        "enum": ["landsat-4", "landsat-5", "landsat-7", "landsat-8", "landsat-9"],
    },
    "view:sun_elevation": {"title": "Sun elevation (°)", "minimum": -90, "maximum": 90},
    "datetime": {"title": "Acquired"},
}
CODES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 500: "InternalServerError"}


class StacApi:
    """Answers STAC API requests for one mirror; ``handle`` returns (status, media type, body),
    the body a JSON document or, for the HTML page, text."""

    def __init__(self, out: Path, base_url: str, read: Callable[[Path], bytes] | None = None):
        self.mirror = Mirror(out)
        self.read = read or Path.read_bytes  # a store mirror's items are read from the store
        self.base = base_url.rstrip("/")
        self.api = self.base + "/api"

    # -- routing ---------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, str], body: bytes, query: str = ""
    ) -> tuple[int, str, Any]:
        parts = [p for p in path[len("/api") :].split("/") if p]
        try:
            if method == "POST" and parts != ["search"]:
                raise ApiError(405, f"{path} answers GET only")
            if not parts:
                return 200, JSON, self.landing()
            if parts == ["conformance"]:
                return 200, JSON, {"conformsTo": CONFORMANCE}
            if parts == ["api"]:
                return 200, OPENAPI, openapi_document(self.api, self._example())
            if parts == ["api.html"]:
                return 200, HTML, service_doc(self.api)
            if parts == ["queryables"]:
                return 200, SCHEMA, self.queryables()
            if parts[0] == "collections" and len(parts) == 3 and parts[2] == "queryables":
                self._collection_file(parts[1])  # 404 for an unknown collection
                return 200, SCHEMA, self.queryables(parts[1])
            if parts == ["collections"]:
                return 200, JSON, self.collections()
            if parts[0] == "collections" and len(parts) == 2:
                return 200, JSON, self.collection(parts[1])
            if parts[0] == "collections" and len(parts) == 3 and parts[2] == "items":
                self._collection_file(parts[1])
                request = SearchRequest.read({**params, "collections": parts[1]}, post=False)
                return 200, GEOJSON, self.search(request, path=path, query=query)
            if parts[0] == "collections" and len(parts) == 4 and parts[2] == "items":
                return 200, GEOJSON, self.item(parts[1], parts[3])
            if parts == ["search"]:
                if method == "POST":
                    try:
                        raw = json.loads(body or b"{}")
                    except ValueError:
                        raise ApiError(400, "the body is not JSON") from None
                    return 200, GEOJSON, self.search(SearchRequest.read(raw, post=True), post=True)
                return 200, GEOJSON, self.search(SearchRequest.read(params, post=False), query=query)
            raise ApiError(404, f"no such resource: {path}")
        except ApiError as exc:
            return exc.status, JSON, {"code": CODES.get(exc.status, "Error"), "description": str(exc)}
        except (InvalidInput, StacmirrorError, ValueError) as exc:
            return 400, JSON, {"code": "BadRequest", "description": str(exc)}

    # -- documents -------------------------------------------------------------------------------

    def _collection_ids(self) -> list[str]:
        return list(self.mirror.collection_parquets())

    def _example(self) -> tuple[str, str] | None:
        for collection_id in self._collection_ids():
            found = search(self.mirror.root, collection=collection_id, limit=1)
            if found.items:
                return collection_id, found.items[0]["id"]
        return None

    def _service_links(self) -> list[dict[str, Any]]:
        return [
            {"rel": "conformance", "href": f"{self.api}/conformance", "type": JSON},
            {"rel": "service-desc", "href": f"{self.api}/api", "type": OPENAPI, "title": "OpenAPI 3"},
            {"rel": "service-doc", "href": f"{self.api}/api.html", "type": "text/html", "title": "API"},
            {"rel": QUERYABLES_REL, "href": f"{self.api}/queryables", "type": SCHEMA},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "POST"},
        ]

    def landing(self) -> dict[str, Any]:
        root = json.loads(self.mirror.catalog_path.read_text())
        links = [
            {"rel": "self", "href": f"{self.api}/", "type": JSON},
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "data", "href": f"{self.api}/collections", "type": JSON},
            *self._service_links(),
        ]
        links += [
            {"rel": "child", "href": f"{self.api}/collections/{c}", "type": JSON, "title": c}
            for c in self._collection_ids()
        ]
        return {
            "type": "Catalog",
            "stac_version": STAC_VERSION,
            "id": "stacmirror-api",
            "title": root.get("title", "stacmirror"),
            "description": root.get("description", "A Landsat mirror"),
            "conformsTo": CONFORMANCE,
            "links": links,
        }

    def searchable_root(self) -> dict[str, Any]:
        """The mirror's static root catalog as ``serve`` hands it out: with the API's conformance
        classes and ``search`` links added, so STAC Browser, which opens the static tree, also offers
        item search against ``/api/search``. The file on disk is not changed: it must stay valid
        wherever the mirror is copied, where no API runs."""
        root = json.loads(self.mirror.catalog_path.read_text())
        added = {"search", "conformance", "service-desc", "service-doc", QUERYABLES_REL}
        links = [link for link in root.get("links", []) if link.get("rel") not in added]
        return {**root, "conformsTo": CONFORMANCE, "links": links + self._service_links()}

    def _collection_file(self, collection_id: str, known: list[str] | None = None) -> Path:
        """The collection's file, or 404 unless it is one of ``known`` (else: of the mirror's)."""
        path = self.mirror.collection_file(collection_id)
        if collection_id not in (self._collection_ids() if known is None else known) or not path.exists():
            raise ApiError(404, f"no collection {collection_id!r}")
        return path

    def collection(self, collection_id: str, known: list[str] | None = None) -> dict[str, Any]:
        path = self._collection_file(collection_id, known)
        data = json.loads(path.read_text())
        here = f"{self.api}/collections/{collection_id}"
        kept = [link for link in data.get("links", []) if "://" in str(link.get("href", ""))]
        # the static tree below the collection, absolute: the API is browseable through it
        below = [
            {**link, "href": self._asset_url(path.parent, str(link["href"]))}
            for link in data.get("links", [])
            if link.get("rel") in ("child", "item") and "://" not in str(link.get("href", ""))
        ]
        data["links"] = [
            {"rel": "self", "href": here, "type": JSON},
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "parent", "href": f"{self.api}/", "type": JSON},
            {"rel": "items", "href": f"{here}/items", "type": GEOJSON},
            {"rel": QUERYABLES_REL, "href": f"{here}/queryables", "type": SCHEMA},
            *below,
            *kept,
        ]
        for asset in (data.get("assets") or {}).values():
            asset["href"] = self._asset_url(path.parent, asset["href"])
        return data

    def queryables(self, collection_id: str | None = None) -> dict[str, Any]:
        here = f"{self.api}/collections/{collection_id}" if collection_id else self.api
        properties = queryables(self.mirror.root, collection_id)
        for name, schema in properties.items():
            schema.update(QUERYABLE_DETAILS.get(name, {}))
        if properties:
            properties["geometry"] = {"title": "Footprint", "format": "geometry-any"}
        return {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{here}/queryables",
            "type": "object",
            "title": "Queryables",
            "description": "Item properties that the query extension, CQL2 filters and sortby accept",
            "properties": properties,
            "additionalProperties": False,
        }

    def collections(self) -> dict[str, Any]:
        known = self._collection_ids()  # listed once, not once per collection
        return {
            "collections": [self.collection(c, known) for c in known],
            "links": [
                {"rel": "self", "href": f"{self.api}/collections", "type": JSON},
                {"rel": "root", "href": f"{self.api}/", "type": JSON},
            ],
        }

    def _asset_url(self, folder: Path, href: str) -> str:
        if "://" in href:
            return href
        target = (folder / href).resolve()
        return f"{self.base}/catalog/{target.relative_to(self.mirror.root.resolve()).as_posix()}"

    def _item(self, path: Path) -> dict[str, Any]:
        item = json.loads(self.read(path))
        for asset in item.get("assets", {}).values():
            asset["href"] = self._asset_url(path.parent, str(asset["href"]))
        collection = item.get("collection")
        here = f"{self.api}/collections/{collection}"
        kept = [link for link in item.get("links", []) if "://" in str(link.get("href", ""))]
        # ``self`` names the item's file in the served static tree, its one canonical copy: STAC
        # Browser opens a search result through it without leaving the catalog it was given.
        item["links"] = [
            {"rel": "self", "href": self._asset_url(path.parent, path.name), "type": GEOJSON},
            {
                "rel": "alternate",
                "href": f"{here}/items/{item['id']}",
                "type": GEOJSON,
                "title": "in the API",
            },
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "parent", "href": here, "type": JSON},
            {"rel": "collection", "href": here, "type": JSON},
            *kept,
        ]
        return item

    def item(self, collection_id: str, item_id: str) -> dict[str, Any]:
        found = search(self.mirror.root, collection=collection_id, ids=[item_id], limit=1)
        if not found.items:
            raise ApiError(404, f"no item {item_id!r} in {collection_id!r}")
        return self._item(Path(found.items[0]["item"]))

    # -- search ----------------------------------------------------------------------------------

    def _search(self, request: SearchRequest) -> Any:
        return search(
            self.mirror.root,
            collection=request.collections,
            bbox=request.bbox,
            intersects=request.intersects,
            start=request.start,
            end=request.end,
            ids=request.ids,
            filter=request.filter,
            sortby=request.sortby,
            limit=request.limit,
            after=request.after,
            after_key=request.after_key,
            count=False,
        )

    def search(
        self, request: SearchRequest, *, post: bool = False, path: str | None = None, query: str = ""
    ) -> dict[str, Any]:
        try:
            found = self._search(request)
        except InvalidInput as exc:
            if exc.field != "after_key":
                raise
            raise bad("token", f"does not fit this search ({exc.message})") from None
        features = [self._item(Path(i["item"])) for i in found.items]
        if request.fields is not None:
            features = [request.fields.apply(f) for f in features]
        base = f"{self.base}{path}" if path else f"{self.api}/search"
        raw = dict(request.raw)
        if path:
            raw.pop("collections", None)  # in the path already
        links = [
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "self", "href": base + ("" if post or not query else f"?{query}"), "type": GEOJSON},
        ]
        if path:
            links.append({"rel": "collection", "href": base.rsplit("/items", 1)[0], "type": JSON})
        if found.next_after is not None:
            key = key_token(found.next_key) if found.next_key is not None else None
            token = f"k{key}" if key is not None else f"p{found.next_after}"
            if post:
                body = {**raw, "token": token}
                links.append({"rel": "next", "href": base, "type": GEOJSON, "method": "POST", "body": body})
            else:
                args = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in raw.items()}
                href = f"{base}?{urlencode({**args, 'token': token})}"
                links.append({"rel": "next", "href": href, "type": GEOJSON, "method": "GET"})
        page = {"type": "FeatureCollection", "features": features, "links": links}
        if found.matched is not None:  # left out when it would cost an exact test of every item
            page["numberMatched"] = found.matched
        page["numberReturned"] = len(features)
        return page
