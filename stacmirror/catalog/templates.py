"""The catalog and collection templates (title, license, providers, keywords, DOI).

The source of truth is the top-level ``catalog-template/`` folder; the wheel carries it as the
package ``stacmirror.catalog_template`` (see ``pyproject.toml``), so an installed stacmirror
reads it from site-packages and a source checkout reads the folder itself.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

SOURCE_TREE = Path(__file__).resolve().parents[2] / "catalog-template"


@functools.lru_cache(maxsize=1)
def template_root() -> Traversable:
    try:
        root = resources.files("stacmirror.catalog_template")
        if root.joinpath("catalog.json").is_file():
            return root
    except ModuleNotFoundError:
        pass
    return SOURCE_TREE  # running from a checkout that was never installed


def load_template(name: str, *, required: bool = False) -> dict[str, Any] | None:
    """The template ``name`` (e.g. ``collections/landsat_ot_c2_l2.json``), or None when there is none."""
    target = template_root()
    for part in name.split("/"):  # one part at a time: a namespace package's path takes only one
        target = target.joinpath(part)
    if not target.is_file():
        if required:
            raise FileNotFoundError(f"stacmirror's catalog template {name} is missing from the installation")
        return None
    return json.loads(target.read_text(encoding="utf-8"))
