"""Offline validation of a mirror's catalog: STAC 1.1 core, every declared extension, Landsat formats.

Extension schemas come from a local folder laid out like the schema host
(``<dir>/stac-extensions.github.io/<ext>/<version>/schema.json``); the STAC
core schemas ship with pystac. Nothing is fetched over the network: a schema
that is not in the folder is reported as an error, not downloaded.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from pystac.validation import JsonSchemaSTACValidator, validate_dict

SCHEMA_HOST = "https://stac-extensions.github.io/"
SCENE_ID = re.compile(r"^L[CEMOT][1-9]\d{3}\d{3}\d{7}[A-Z]{3}\d{2}$")
LANDSAT_RULES: dict[str, Any] = {
    "landsat:wrs_type": {"1", "2"},
    "landsat:collection_category": {"A1", "A2", "T1", "T2", "RT"},
    "landsat:collection_number": {"01", "02"},
    "landsat:correction": {"L1TP", "L1GT", "L1GS", "L2SR", "L2SP"},
}


def default_schema_dir() -> Path:
    env = os.environ.get("STACMIRROR_SCHEMAS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stacmirror" / "stac-schemas"


@dataclass
class ValidationReport:
    checked: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: Path, message: str) -> None:
        self.problems.setdefault(str(path), []).append(message)

    @property
    def ok(self) -> bool:
        return not self.problems


def make_validator(schema_dir: Path) -> JsonSchemaSTACValidator:
    validator = JsonSchemaSTACValidator()
    root = Path(schema_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"schema folder {root} not found")
    for path in root.rglob("schema.json"):
        schema = json.loads(path.read_text())
        uri = schema.get("$id") or SCHEMA_HOST + str(path.relative_to(root / "stac-extensions.github.io"))
        validator.schema_cache[uri.rstrip("#")] = schema
    return validator


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


def validate_catalog(out: Path, schema_dir: Path | None = None) -> ValidationReport:
    """Validate ``OUT/catalog.json`` and every collection and item it links to."""
    validator = make_validator(schema_dir or default_schema_dir())
    pystac.validation.set_validator(validator)
    report = ValidationReport()
    root = Path(out) / "catalog.json"
    if not root.exists():
        report.add(root, "no catalog.json (run: stacmirror catalog OUT)")
        return report
    queue, seen = [root], set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            report.add(path, f"unreadable JSON: {exc}")
            continue
        report.checked += 1
        try:
            validate_dict(data, href=str(path))
        except pystac.STACValidationError as exc:
            detail = getattr(exc, "source", None) or exc
            report.add(path, f"schema: {str(detail).splitlines()[0][:400]}")
        except pystac.errors.GetSchemaError as exc:  # a schema missing from the local folder
            report.add(path, f"schema not available offline: {exc}")
        except Exception as exc:  # the validator can fail on malformed input in other ways
            report.add(path, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        if data.get("type") == "Feature" and any(
            e.startswith(SCHEMA_HOST + "landsat/") for e in data.get("stac_extensions", [])
        ):
            for problem in landsat_problems(data.get("properties", {})):
                report.add(path, problem)
        for link in data.get("links", []):
            if link.get("rel") in ("child", "item") and not str(link.get("href", "")).startswith("http"):
                target = (path.parent / link["href"]).resolve()
                if not target.exists():
                    report.add(path, f"broken {link['rel']} link {link['href']}")
                else:
                    queue.append(target)
        for key, asset in (data.get("assets") or {}).items():
            href = str(asset.get("href", ""))
            if href and "://" not in href and not (path.parent / href).exists():
                report.add(path, f"asset {key}: file {href} does not exist")
    return report
