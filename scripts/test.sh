#!/usr/bin/env bash
# Set up (or update) the project's virtual environment with the test extras, then run
# the linter and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check stacmirror tests scripts
exec .venv/bin/python -m pytest "$@"
