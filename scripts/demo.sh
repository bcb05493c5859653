#!/usr/bin/env bash
# Quick start: set up the virtual environment, then mirror six scenes into ./demo-mirror and build
# their STAC catalog (harvest -> catalog). With no USGS credentials configured this runs against the
# built-in M2M emulator (synthetic scenes); with credentials it fetches the same request from USGS.
# Extra arguments are passed to `stacmirror harvest`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/stacmirror harvest demo-mirror --dataset landsat_ot_c2_l2 --bbox=-122.6,38.0,-120.0,39.6 \
    --start 2021-09-01 --end 2021-12-31 --bands red,green,blue,nir08,qa_pixel,MTL,ANG --max-scenes 6 "$@"
echo "demo-mirror/catalog.json is ready. Next: .venv/bin/stacmirror map demo-mirror (a map on OpenStreetMap; --offline for none),"
echo ".venv/bin/stacmirror crop demo-mirror (pixel-exact crops), .venv/bin/stacmirror serve demo-mirror (STAC Browser),"
echo ".venv/bin/stacmirror sync demo-mirror --dry-run (what keeping it current would fetch)."
