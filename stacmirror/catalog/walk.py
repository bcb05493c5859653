"""Walking a static catalog the way a STAC client does: child links down to item links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def item_files(node: Path) -> Iterator[Path]:
    """The item files below a catalog or collection file, depth first, in link order."""
    data = json.loads(Path(node).read_text())
    for link in data.get("links", []):
        rel, href = link.get("rel"), str(link.get("href", ""))
        if rel not in ("child", "item") or "://" in href:
            continue
        target = (Path(node).parent / href).resolve()
        if rel == "item":
            yield target
        else:
            yield from item_files(target)
