"""A STAC API over the mirror, at ``/api/``, backed by the collections' ``items.parquet``.

Landing page, conformance, queryables, collections, a collection's items, one item, and
``/search`` by GET and POST with ``bbox``/``intersects``, ``datetime``, ``ids``, ``collections``,
``limit`` and next-page links, and filtering on any scalar item property through the ``query``
extension or a CQL2 JSON ``filter`` (:mod:`stacmirror.property_filter`). Items are the catalog's
own files, with asset hrefs made absolute to the served ``/catalog/`` tree. No existing STAC API
server fitted: those on PyPI need a database, and ``rustac serve`` reads stac-geoparquet through
DuckDB's spatial extension, which is downloaded at run time (with no network it hung here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from shapely.geometry import shape

from ..errors import InvalidInput, StacmirrorError
from ..layout import Mirror
from ..offline_search import queryables, search
from ..property_filter import combine, from_query

STAC_VERSION = "1.1.0"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1_000
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA = "application/schema+json"
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


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class StacApi:
    """Answers STAC API requests for one mirror; ``handle`` returns (status, media type, body)."""

    def __init__(self, out: Path, base_url: str):
        self.mirror = Mirror(out)
        self.base = base_url.rstrip("/")
        self.api = self.base + "/api"

    # -- routing ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, str], body: bytes) -> tuple[int, str, Any]:
        parts = [p for p in path[len("/api") :].split("/") if p]
        try:
            if not parts:
                return 200, JSON, self.landing()
            if parts == ["conformance"]:
                return 200, JSON, {"conformsTo": CONFORMANCE}
            if parts == ["queryables"]:
                return 200, SCHEMA, self.queryables()
            if parts[0] == "collections" and len(parts) == 3 and parts[2] == "queryables":
                self.collection(parts[1])  # 404 for an unknown collection
                return 200, SCHEMA, self.queryables(parts[1])
            if parts == ["collections"]:
                return 200, JSON, self.collections()
            if parts[0] == "collections" and len(parts) == 2:
                return 200, JSON, self.collection(parts[1])
            if parts[0] == "collections" and len(parts) == 3 and parts[2] == "items":
                return 200, GEOJSON, self.search({**params, "collections": parts[1]}, path_base=path)
            if parts[0] == "collections" and len(parts) == 4 and parts[2] == "items":
                return 200, GEOJSON, self.item(parts[1], parts[3])
            if parts == ["search"]:
                if method == "POST":
                    try:
                        request = json.loads(body or b"{}")
                    except ValueError:
                        raise ApiError(400, "the body is not JSON") from None
                    return 200, GEOJSON, self.search(request, post=True)
                return 200, GEOJSON, self.search(params)
            raise ApiError(404, f"no such resource: {path}")
        except ApiError as exc:
            return (
                exc.status,
                JSON,
                {"code": "BadRequest" if exc.status == 400 else "NotFound", "description": str(exc)},
            )
        except (InvalidInput, StacmirrorError, ValueError) as exc:
            return 400, JSON, {"code": "BadRequest", "description": str(exc)}

    # -- documents -------------------------------------------------------------------------------

    def _collection_ids(self) -> list[str]:
        return [p.parent.name for p in self.mirror.item_parquets()]

    def landing(self) -> dict[str, Any]:
        root = json.loads(self.mirror.catalog_path.read_text())
        links = [
            {"rel": "self", "href": f"{self.api}/", "type": JSON},
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "conformance", "href": f"{self.api}/conformance", "type": JSON},
            {"rel": QUERYABLES_REL, "href": f"{self.api}/queryables", "type": SCHEMA},
            {"rel": "data", "href": f"{self.api}/collections", "type": JSON},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "POST"},
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
        added = ("search", "conformance", QUERYABLES_REL)
        links = [link for link in root.get("links", []) if link.get("rel") not in added]
        links += [
            {"rel": "conformance", "href": f"{self.api}/conformance", "type": JSON},
            {"rel": QUERYABLES_REL, "href": f"{self.api}/queryables", "type": SCHEMA},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{self.api}/search", "type": GEOJSON, "method": "POST"},
        ]
        return {**root, "conformsTo": CONFORMANCE, "links": links}

    def collection(self, collection_id: str) -> dict[str, Any]:
        path = self.mirror.collection_path(collection_id)
        if collection_id not in self._collection_ids() or not path.exists():
            raise ApiError(404, f"no collection {collection_id!r}")
        data = json.loads(path.read_text())
        here = f"{self.api}/collections/{collection_id}"
        kept = [link for link in data.get("links", []) if "://" in str(link.get("href", ""))]
        data["links"] = [
            {"rel": "self", "href": here, "type": JSON},
            {"rel": "root", "href": f"{self.api}/", "type": JSON},
            {"rel": "parent", "href": f"{self.api}/", "type": JSON},
            {"rel": "items", "href": f"{here}/items", "type": GEOJSON},
            {"rel": QUERYABLES_REL, "href": f"{here}/queryables", "type": SCHEMA},
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
        return {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{here}/queryables",
            "type": "object",
            "title": "Queryables",
            "description": "Item properties that the query extension and CQL2 JSON filters accept",
            "properties": properties,
            "additionalProperties": False,
        }

    def collections(self) -> dict[str, Any]:
        return {
            "collections": [self.collection(c) for c in self._collection_ids()],
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
        item = json.loads(path.read_text())
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
        found = search(self.mirror.root, collection=collection_id, ids=[item_id])
        if not found.items:
            raise ApiError(404, f"no item {item_id!r} in {collection_id!r}")
        return self._item(Path(found.items[0]["item"]))

    # -- search ----------------------------------------------------------------------------------

    def search(
        self, request: dict[str, Any], *, post: bool = False, path_base: str | None = None
    ) -> dict[str, Any]:
        def listed(value: Any) -> list[str] | None:
            if value is None or value == "":
                return None
            return [v for v in (value.split(",") if isinstance(value, str) else value) if v]

        try:
            limit = int(request.get("limit") or DEFAULT_LIMIT)
            offset = int(str(request.get("token") or "0").removeprefix("o:"))
        except ValueError:
            raise ApiError(400, "limit and token must be whole numbers") from None
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise ApiError(400, f"limit must be 1..{MAX_LIMIT}")
        bbox = request.get("bbox")
        if isinstance(bbox, list):
            bbox = ",".join(str(v) for v in bbox[:2] + bbox[-2:]) if len(bbox) in (4, 6) else "x"
        intersects = request.get("intersects")
        if isinstance(intersects, str):
            intersects = json.loads(intersects)
        if bbox and intersects:
            raise ApiError(400, "give bbox or intersects, not both")
        start = end = None
        if request.get("datetime"):
            first, _, last = str(request["datetime"]).partition("/")
            start = None if first in ("", "..") else first
            end = None if last in ("", "..") else last if "/" in str(request["datetime"]) else first
        query = request.get("query")
        if isinstance(query, str):
            query = json.loads(query)
        cql = request.get("filter")
        if isinstance(cql, str):
            cql = json.loads(cql)
        if request.get("filter-lang", "cql2-json") != "cql2-json":
            raise ApiError(400, "filter-lang must be cql2-json (cql2-text is not supported)")
        tree = combine(from_query(query), cql)
        found = search(
            self.mirror.root,
            collection=listed(request.get("collections")),
            bbox=bbox or None,
            intersects=shape(intersects) if intersects else None,
            start=start,
            end=end,
            ids=listed(request.get("ids")),
            filter=tree,
            limit=limit,
            offset=offset,
        )
        features = [self._item(Path(i["item"])) for i in found.items]
        base = f"{self.base}{path_base}" if path_base else f"{self.api}/search"
        links = [{"rel": "root", "href": f"{self.api}/", "type": JSON}]
        if offset + limit < found.matched:
            token = f"o:{offset + limit}"
            if post:
                links.append(
                    {
                        "rel": "next",
                        "href": base,
                        "type": GEOJSON,
                        "method": "POST",
                        "body": {**request, "token": token},
                    }
                )
            else:
                query_args = {
                    k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in request.items()
                }
                query_args.pop("collections", None) if path_base else None
                links.append(
                    {
                        "rel": "next",
                        "href": f"{base}?{urlencode({**query_args, 'token': token})}",
                        "type": GEOJSON,
                    }
                )
        return {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberMatched": found.matched,
            "numberReturned": len(features),
        }
