"""The STAC API judged by the community's conformance suite (stac-api-validator), offline.

The validator fetches JSON schemas from stac-extensions.github.io and schemas.stacspec.org: those
are answered from ../shared/stac-schemas and pystac's bundled copies, and any connection off
loopback fails the test, so it proves the suite ran against nothing but the served mirror.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pystac
import pytest

import stacmirror
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror
from stacmirror.offline_search import search

from .helpers import serving

DATASET = "landsat_ot_c2_l2"
CLASSES = [
    "core",
    "collections",
    "features",
    "item-search",
    "item-search#query",
    "filter",
    "browseable",
    "item-search#sort",
    "item-search#fields",
]
PYSTAC_SCHEMAS = Path(pystac.__file__).parent / "validation" / "jsonschemas"
WORLD = {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}


def local_schema(url: str, shared: Path) -> Path | None:
    """Where the copy of a schema the validator asks for lives here."""
    if url.startswith("https://stac-extensions.github.io/"):
        return shared / "stac-schemas" / "stac-extensions.github.io" / url.split(".github.io/", 1)[1]
    if url.startswith("https://schemas.stacspec.org/"):
        version, *_, name = url.split("schemas.stacspec.org/", 1)[1].split("/")
        return PYSTAC_SCHEMAS / "stac-spec" / version / name
    if url.startswith("https://geojson.org/schema/"):
        return PYSTAC_SCHEMAS / "geojson" / url.rsplit("/", 1)[1]
    return None


@pytest.fixture
def offline(monkeypatch, shared: Path) -> list[str]:
    """Schemas from local copies; connections anywhere but loopback refused (and listed)."""
    from stac_validator import utilities

    refused: list[str] = []
    connect = socket.socket.connect

    def loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            refused.append(host)
            raise OSError(f"offline test: no connection to {host}")
        return connect(sock, address)

    fetch = utilities.fetch_and_parse_file

    def from_copies(path: str, headers=None):
        copy = local_schema(path, shared)
        if copy is not None:
            return json.loads(copy.read_text())
        return fetch(path, headers)

    from pystac.stac_io import DefaultStacIO

    read = DefaultStacIO.read_text_from_href

    def pystac_from_copies(self, href: str) -> str:  # pystac's own item validation
        copy = local_schema(href, shared)
        return copy.read_text() if copy is not None else read(self, href)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    monkeypatch.setattr(utilities, "fetch_and_parse_file", from_copies)
    monkeypatch.setattr(DefaultStacIO, "read_text_from_href", pystac_from_copies)
    return refused


def query_config(out: Path):
    """Values of the mirror that the query extension's checks can find (the validator expects
    every comparison to have results)."""
    from stac_api_validator.validations import QueryConfig

    clouds = sorted({i["properties"]["eo:cloud_cover"] for i in search(out).items})
    platforms = sorted({i["properties"]["platform"] for i in search(out).items})
    assert len(clouds) > 2 and "landsat-8" in platforms
    # the validator tests "in" on a list property: any of the item's values among those given
    middle = clouds[len(clouds) // 2]
    return QueryConfig(
        "eo:cloud_cover", str(middle), str(clouds[0]), str(clouds[-1]), str(middle), str(clouds[0]),
        str(middle), "platform", "landsat", "-8", "sat", "instruments", "oli,tirs",
    )  # fmt: skip


def test_stac_api_validator_passes_every_class_offline(tmp_path: Path, offline: list[str]) -> None:
    from stac_api_validator.validations import validate_api

    out = tmp_path / "m"
    write_metadata_mirror(out, synthetic_records(40, seed=11))
    assert stacmirror.build_catalog(out, workers=1).ok
    with serving(out) as server:
        warnings, errors = validate_api(
            f"{server.base_url}/api/",
            CLASSES,
            DATASET,
            json.dumps(WORLD),
            None,
            None,
            "properties.eo:cloud_cover",
            True,
            query_config(out),
            None,
            {},
        )
    found = [str(e) for e in errors]
    assert found == [], "\n".join(found)
    assert offline == [], f"tried to reach {sorted(set(offline))}"
    # the classes the API claims are the ones just validated, and the CQL2 ones the suite ran
    from stacmirror.serve.api import CONFORMANCE

    assert "https://api.stacspec.org/v1.0.0/item-search#sort" in CONFORMANCE
    assert not any("advanced-comparison" in c or "temporal" in c for c in CONFORMANCE)
