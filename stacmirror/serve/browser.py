"""STAC Browser 4.0.1, built once from its npm source package into a cache.

npm only has STAC Browser's source, so it is built here: ``npm pack`` fetches the pinned version,
our ``package.json``/``package-lock.json`` (beside this module; ``ol-stac`` pinned to 1.1.0, since
newer releases need a newer ``ol`` than STAC Browser pins) replace its own so ``npm ci`` installs the
same tree every time, the runtime ``config.js`` hook in ``public/index.html`` is switched on, our
``basemaps.config.js`` replaces its own (so the basemap is chosen at run time: OpenStreetMap, or
none with ``serve --offline``), and ``vue-cli-service build`` writes ``dist/``. Building on first
use (rather than shipping the built files in the wheel) keeps the package small and needs only
Node.js and npm, which the build step names when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from rasterio.crs import CRS

from ..layout import Mirror

VERSION = "4.0.1"
# Bumped whenever our changes to the build change: a cache built from older changes is not reused.
BUILD = 2
CACHE_NAME = f"stac-browser-{VERSION}-{BUILD}"
PACKAGE = f"@radiantearth/stac-browser@{VERSION}"
MANIFESTS = Path(__file__).resolve().parent / "stac-browser"
BUILD_INPUTS = ("package.json", "package-lock.json", "basemaps.config.js")  # copied over STAC Browser's


class BrowserUnavailable(Exception):
    """STAC Browser cannot be built here; the message says what is missing."""


def cache_dir() -> Path:
    override = os.environ.get("STACMIRROR_BROWSER_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stacmirror" / CACHE_NAME


def built() -> Path | None:
    dist = cache_dir() / "dist"
    return dist if (dist / "index.html").exists() else None


def _run(command: list[str], cwd: Path, log: Any) -> None:
    log(f"$ {' '.join(command)}")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise BrowserUnavailable(f"`{' '.join(command)}` failed:\n" + "\n".join(tail))


def build(log: Any = lambda message: None) -> Path:
    """Build STAC Browser into the cache (a few minutes, once) and return its ``dist`` folder."""
    existing = built()
    if existing is not None:
        return existing
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BrowserUnavailable(
            "STAC Browser is built once with Node.js and npm, which are not installed "
            "(Debian: apt-get install nodejs npm)"
        )
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stac-browser-", dir=target) as work:
        work_dir = Path(work)
        _run([npm, "pack", PACKAGE, "--pack-destination", str(work_dir)], work_dir, log)
        tarball = next(work_dir.glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            try:
                archive.extractall(work_dir, filter="data")
            except TypeError:  # Python < 3.10.12 has no extraction filters
                archive.extractall(work_dir)  # noqa: S202 - the registry's own tarball
        source = work_dir / "package"
        for name in BUILD_INPUTS:
            shutil.copyfile(MANIFESTS / name, source / name)
        index = source / "public" / "index.html"
        html = index.read_text()
        hook = '<!-- <script defer="defer" src="/config.js"></script> -->'
        if hook not in html:
            raise BrowserUnavailable("STAC Browser's index.html has no commented config.js hook to switch on")
        index.write_text(html.replace(hook, '<script defer="defer" src="/config.js"></script>'))
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], source, log)
        _run([npm, "exec", "--", "vue-cli-service", "build"], source, log)
        dist = target / "dist"
        if dist.exists():
            shutil.rmtree(dist)
        os.replace(source / "dist", dist)
    return dist


def crs_definitions(out: Path) -> dict[str, str]:
    """WKT of every CRS the catalog uses, so STAC Browser's map needs no network for them.

    Read from the collections' ``proj:code`` summaries, which the catalog step writes.
    """
    mirror = Mirror(out)
    codes: set[str] = set()
    for collection in [*mirror.scene_collections(), *mirror.crop_collections()]:
        codes.update(json.loads(collection.read_text()).get("summaries", {}).get("proj:code", []))
    return {code: CRS.from_string(code).to_wkt(version="WKT1_GDAL") for code in sorted(codes)}


OSM_BASEMAP = {
    "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "is": "XYZ",
    "title": "OpenStreetMap",
    "attributions": '&copy; <a href="https://www.openstreetmap.org/copyright" target="_blank">'
    "OpenStreetMap</a> contributors.",
    "projection": "EPSG:3857",
}


def config_js(out: Path, base_url: str, *, offline: bool = False) -> str:
    """STAC Browser's runtime configuration: the served catalog as root, hash routes, the mirror's
    CRS definitions, and the OpenStreetMap basemap unless ``offline``."""
    catalog = Mirror(out).catalog_path
    root = json.loads(catalog.read_text()) if catalog.exists() else {}
    config = {
        "catalogUrl": f"{base_url}/catalog/catalog.json",
        "catalogTitle": root.get("title", "stacmirror"),
        "historyMode": "hash",
        "allowExternalAccess": False,
        "crs": crs_definitions(out),
        "displayGeoTiffByDefault": False,
        "stacmirrorBasemaps": [] if offline else [OSM_BASEMAP],
    }
    return f"window.STAC_BROWSER_CONFIG = {json.dumps(config, indent=2)};\n"
