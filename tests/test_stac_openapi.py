"""The STAC API's OpenAPI document, and the API fuzzed from it with schemathesis over loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

import stacmirror
from stacmirror.emulator.synthetic import synthetic_records, write_metadata_mirror

from .helpers import serving

SCHEMATHESIS = [
    sys.executable,
    "-c",
    "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
]
# positive_data_acceptance is left out: the document types bbox, datetime, query, filter and
# sortby as strings, and their grammars (RFC 3339, CQL2, JSON) are more than OpenAPI can state,
# so a string it generates is rightly refused. Every other check runs.
EXCLUDED = "positive_data_acceptance"


def test_service_desc_and_doc_are_linked_and_served(tmp_path: Path) -> None:
    out = tmp_path / "m"
    write_metadata_mirror(out, synthetic_records(12, seed=4))
    assert stacmirror.build_catalog(out, workers=1).ok
    with serving(out) as server:
        landing = requests.get(f"{server.base_url}/api/", timeout=30).json()
        links = {link["rel"]: link for link in landing["links"]}
        desc = requests.get(links["service-desc"]["href"], timeout=30)
        assert desc.status_code == 200 and desc.headers["Content-Type"] == links["service-desc"]["type"]
        document = desc.json()
        assert document["openapi"].startswith("3.0") and "/search" in document["paths"]
        assert document["servers"] == [{"url": f"{server.base_url}/api"}]
        page = requests.get(links["service-doc"]["href"], timeout=30)
        assert page.headers["Content-Type"].startswith("text/html") and "/search" in page.text
        assert "<script" not in page.text and "http" not in page.text.split("<body>", 1)[1].replace(
            server.base_url, ""
        )  # nothing fetched from elsewhere: it works offline
        # methods the API does not answer are 405, with Allow, and JSON
        refused = requests.delete(f"{server.base_url}/api/search", timeout=30)
        assert refused.status_code == 405 and "GET" in refused.headers["Allow"]
        assert refused.json()["code"] == "MethodNotAllowed"


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    """Every operation fuzzed (examples, coverage, fuzzing and stateful phases): no 5xx, every
    status code, media type, header and body as the document says, bad input refused."""
    out = tmp_path / "m"
    write_metadata_mirror(out, synthetic_records(30, seed=9))
    assert stacmirror.build_catalog(out, workers=1).ok
    with serving(out) as server:
        run = subprocess.run(
            [
                *SCHEMATHESIS, "run", f"{server.base_url}/api/api", "--exclude-checks", EXCLUDED,
                "--max-examples", "30", "--seed", "17", "--no-color",
                "--report-dir", str(tmp_path / "report"),
            ],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
