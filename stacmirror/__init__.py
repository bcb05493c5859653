"""stacmirror: mirror Landsat Collection 2 from USGS M2M into a local STAC catalog."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "items"]


def items(path: Any, collection: str | None = None, **filters: Any) -> Any:
    """The mirror's items with absolute hrefs and ``proj:epsg``, ready for ``stackstac.stack``.

    See :func:`stacmirror.catalog.load.items`.
    """
    from .catalog.load import items as load_items

    return load_items(path, collection, **filters)
