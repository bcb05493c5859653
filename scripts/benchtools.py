"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def tool_python(package: str) -> Path:
    """The Python of a virtual environment holding ``package`` (created on first use, outside the project)."""
    venv = Path(tempfile.gettempdir()) / f"stacmirror-bench-{package}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing {package} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", package], check=True, capture_output=True
        )
    return python
