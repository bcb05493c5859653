"""Where things live in a mirror. Other commands rely on this layout; keep it stable.

OUT/<dataset>/<PPP>/<RRR>/<displayId>/<original file names>
OUT/.stacmirror/ledger.sqlite   (what was asked, found, fetched and verified)
OUT/.stacmirror/lock            (held while a harvest runs)
"""

from __future__ import annotations

from pathlib import Path

from ..landsat import ProductId

STATE_DIR = ".stacmirror"


def scene_dir(out: Path, dataset: str, display_id: str) -> Path:
    pid = ProductId.parse(display_id)
    return Path(out) / dataset / f"{pid.path:03d}" / f"{pid.row:03d}" / display_id


def partial_path(target: Path) -> Path:
    """Where a download streams before it is verified: hidden, beside its target."""
    return target.with_name(f".{target.name}.part")


def browse_name(display_id: str) -> str:
    return f"{display_id}_browse.jpg"
