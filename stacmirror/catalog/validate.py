"""Validation of a mirror's catalog: STAC 1.1 core, every declared extension, Landsat formats.

The STAC core schemas ship with pystac. Extension schemas live in a folder laid
out like the schema host (``<dir>/stac-extensions.github.io/<ext>/<version>/schema.json``):

* by default the user cache (``~/.cache/stacmirror/stac-schemas``), where a schema
  that is not cached yet is fetched once, over HTTPS, from its published URL (or
  from ``$STACMIRROR_SCHEMA_HOST``, which stands in for
  ``https://stac-extensions.github.io/``); after that, validation runs offline;
* with ``schemas=DIR`` or ``$STACMIRROR_SCHEMAS``, only that local folder, and
  nothing is fetched.

A schema that can be had neither way raises :class:`SchemaUnavailable`.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import requests
from pystac.validation import JsonSchemaSTACValidator, validate_dict

from ..errors import SchemaUnavailable
from ..fileio import write_json_atomic
from ..storage import StoreMirror, is_store_url

SCHEMA_HOST = "https://stac-extensions.github.io/"
SCENE_ID = re.compile(r"^L[CEMOT][1-9]\d{3}\d{3}\d{7}[A-Z]{3}\d{2}$")
LANDSAT_RULES: dict[str, Any] = {
    "landsat:wrs_type": {"1", "2"},
    "landsat:collection_category": {"A1", "A2", "T1", "T2", "RT"},
    "landsat:collection_number": {"01", "02"},
    "landsat:correction": {"L1TP", "L1GT", "L1GS", "L2SR", "L2SP"},
}


def schema_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stacmirror" / "stac-schemas"


class SchemaStore:
    """Extension schemas by URI, from a folder, fetched into it on first use when it is the cache."""

    def __init__(self, folder: Path | None = None):
        env = os.environ.get("STACMIRROR_SCHEMAS")
        local = folder if folder is not None else (Path(env) if env else None)
        self.fetch = local is None
        self.folder = Path(local) if local is not None else schema_cache_dir()
        if not self.fetch and not self.folder.is_dir():
            raise SchemaUnavailable(f"schema folder {self.folder} not found")
        self.host = os.environ.get("STACMIRROR_SCHEMA_HOST") or SCHEMA_HOST
        self.validator = JsonSchemaSTACValidator()
        self.fetched: list[str] = []

    def ensure(self, uri: str) -> None:
        """Make the schema at ``uri`` known to the validator (reading, or fetching, it once)."""
        uri = uri.rstrip("#")
        if uri in self.validator.schema_cache or not uri.startswith(SCHEMA_HOST):
            return  # other hosts (the STAC core) are pystac's business
        relative = uri[len(SCHEMA_HOST) :]
        path = self.folder / "stac-extensions.github.io" / relative
        if not path.is_file():
            if not self.fetch:
                raise SchemaUnavailable(f"the schema {uri} is not in {self.folder}")
            self._download(uri, relative, path)
        try:
            self.validator.schema_cache[uri] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SchemaUnavailable(f"the cached schema {path} is unreadable ({exc}); delete it") from None

    def _download(self, uri: str, relative: str, path: Path) -> None:
        url = self.host.rstrip("/") + "/" + relative
        try:
            response = requests.get(url, timeout=(10, 60))
            response.raise_for_status()
            schema = response.json()
        except (requests.RequestException, ValueError) as exc:
            reason = type(exc).__name__ if isinstance(exc, requests.ConnectionError) else str(exc)[:200]
            raise SchemaUnavailable(
                f"the schema {uri} is not cached and could not be fetched ({reason}); "
                "connect once, or pass --schemas DIR with a local copy"
            ) from None
        if not isinstance(schema, dict):
            raise SchemaUnavailable(f"{url} did not answer with a JSON schema")
        write_json_atomic(path, schema)
        self.fetched.append(uri)


@dataclass
class ValidationReport:
    """What validation found; ``to_dict()`` is what ``validate --json`` prints."""

    checked: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)
    schemas_fetched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "problems": self.problems, "schemasFetched": self.schemas_fetched}

    def add(self, path: Path | str, message: str) -> None:
        self.problems.setdefault(str(path), []).append(message)

    @property
    def ok(self) -> bool:
        return not self.problems


def landsat_problems(properties: dict[str, Any]) -> list[str]:
    """The value rules the Landsat extension schema v2.0.0 states but does not enforce."""
    problems = []
    for name in ("landsat:wrs_path", "landsat:wrs_row"):
        value = properties.get(name)
        limit = 233 if name.endswith("path") else 248
        if not (isinstance(value, str) and re.fullmatch(r"\d{3}", value) and 1 <= int(value) <= limit):
            problems.append(f"{name} must be a 3-digit string 001-{limit}, got {value!r}")
    for name, allowed in LANDSAT_RULES.items():
        if properties.get(name) not in allowed:
            problems.append(f"{name} must be one of {sorted(allowed)}, got {properties.get(name)!r}")
    scene_id = properties.get("landsat:scene_id")
    if not (isinstance(scene_id, str) and SCENE_ID.match(scene_id)):
        problems.append(f"landsat:scene_id is not a Landsat scene id: {scene_id!r}")
    land = properties.get("landsat:cloud_cover_land")
    if not (isinstance(land, (int, float)) and -1 <= land <= 100):
        problems.append(f"landsat:cloud_cover_land must be a number in -1..100, got {land!r}")
    return problems


class _Tree:
    """The catalog's files by key (a path relative to the mirror root): on disk, or in a store."""

    def __init__(self, out: Path | str):
        self.store = None
        if is_store_url(out):
            import obstore

            self.store = StoreMirror.open(str(out))
            self.keys = set()
            for batch in obstore.list(self.store.store):
                self.keys.update(meta["path"] for meta in batch)
        else:
            self.root = Path(out)

    def name(self, key: str) -> str:
        return f"{self.store.url}/{key}" if self.store else str(self.root / key)

    def exists(self, key: str) -> bool:
        return key in self.keys if self.store else (self.root / key).exists()

    def read(self, key: str) -> bytes:
        if self.store:
            data = self.store.get_bytes(key)
            if data is None:
                raise OSError(f"{key}: no such object")
            return data
        return (self.root / key).read_bytes()


def validate_catalog(out: Path | str, schema_dir: Path | None = None) -> ValidationReport:
    """Validate ``OUT/catalog.json`` and every collection and item it links to; ``out`` is a folder
    or a mirror's store URL (read with one listing and a GET per catalog file)."""
    schemas = SchemaStore(schema_dir)
    pystac.validation.set_validator(schemas.validator)
    report = ValidationReport()
    tree = _Tree(out)
    if not tree.exists("catalog.json"):
        report.add(tree.name("catalog.json"), "no catalog.json (run: stacmirror catalog OUT)")
        return report
    queue, seen = ["catalog.json"], set()
    while queue:
        key = queue.pop()
        if key in seen:
            continue
        seen.add(key)
        name = tree.name(key)
        try:
            data = json.loads(tree.read(key))
        except (OSError, ValueError) as exc:
            report.add(name, f"unreadable JSON: {exc}")
            continue
        report.checked += 1
        for extension in data.get("stac_extensions") or []:
            schemas.ensure(str(extension))
        try:
            validate_dict(data, href=name)
        except pystac.STACValidationError as exc:
            detail = getattr(exc, "source", None) or exc
            report.add(name, f"schema: {str(detail).splitlines()[0][:400]}")
        except pystac.errors.GetSchemaError as exc:  # a schema missing from the local folder
            report.add(name, f"schema not available offline: {exc}")
        except Exception as exc:  # the validator can fail on malformed input in other ways
            report.add(name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        if data.get("type") == "Feature" and any(
            e.startswith(SCHEMA_HOST + "landsat/") for e in data.get("stac_extensions", [])
        ):
            for problem in landsat_problems(data.get("properties", {})):
                report.add(name, problem)
        folder = posixpath.dirname(key)
        for link in data.get("links", []):
            if link.get("rel") in ("child", "item") and "://" not in str(link.get("href", "")):
                target = posixpath.normpath(posixpath.join(folder, link["href"]))
                if target.startswith("../") or not tree.exists(target):
                    report.add(name, f"broken {link['rel']} link {link['href']}")
                else:
                    queue.append(target)
        for asset_key, asset in (data.get("assets") or {}).items():
            href = str(asset.get("href", ""))
            if (
                href
                and "://" not in href
                and not tree.exists(posixpath.normpath(posixpath.join(folder, href)))
            ):
                report.add(name, f"asset {asset_key}: file {href} does not exist")
    report.schemas_fetched = schemas.fetched
    return report
