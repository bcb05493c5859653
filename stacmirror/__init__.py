"""stacmirror: mirror Landsat Collection 2 from USGS M2M into a local STAC catalog.

The public API (see the README's "Python API")::

    import stacmirror

    selection = stacmirror.Selection("landsat_ot_c2_l2", "2021-06-01", "2021-06-30", bbox="-122,38,-121,39")
    result = stacmirror.harvest("mirror", selection, bands="red,nir08,MTL")
    report = stacmirror.validate("mirror")
    stacks = stacmirror.find_stacks("mirror")
    stacmirror.crop("mirror", stacks)

Each stage returns a result with ``to_dict()``; progress arrives as typed events
(:mod:`stacmirror.events`) through ``on_event``; errors derive from
:class:`stacmirror.errors.StacmirrorError`. The library never prints.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import events
from .errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    MirrorBusy,
    NotACatalog,
    SchemaUnavailable,
    ServiceError,
    StacmirrorError,
)

if TYPE_CHECKING:
    from .api import (
        CropResult,
        build_catalog,
        connect,
        crop,
        find_stacks,
        harvest,
        remove_subscription,
        subscriptions,
        sync,
        validate,
    )
    from .doctor import DoctorReport, doctor
    from .harvester.options import HarvestResult
    from .harvester.selection import Selection
    from .harvester.subscription import Subscription
    from .layout import Mirror
    from .syncer import SyncResult

# The stages load on first use (shapely, requests, rasterio ...): `import stacmirror`, and every
# command line start, stays quick.
_LAZY = {
    "CropResult": "api",
    "build_catalog": "api",
    "connect": "api",
    "crop": "api",
    "find_stacks": "api",
    "harvest": "api",
    "remove_subscription": "api",
    "subscriptions": "api",
    "sync": "api",
    "validate": "api",
    "Subscription": "harvester.subscription",
    "SyncResult": "syncer",
    "DoctorReport": "doctor",
    "doctor": "doctor",
    "HarvestResult": "harvester.options",
    "Selection": "harvester.selection",
    "Mirror": "layout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stacmirror' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"
__all__ = [
    "AccessDenied",
    "CredentialsMissing",
    "CropResult",
    "DoctorReport",
    "HarvestResult",
    "InvalidInput",
    "Mirror",
    "MirrorBusy",
    "NotACatalog",
    "SchemaUnavailable",
    "Selection",
    "ServiceError",
    "StacmirrorError",
    "Subscription",
    "SyncResult",
    "__version__",
    "build_catalog",
    "connect",
    "crop",
    "doctor",
    "events",
    "find_stacks",
    "harvest",
    "items",
    "query",
    "remove_subscription",
    "subscriptions",
    "sync",
    "validate",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def items(
    path: Any,
    collection: str | None = None,
    *,
    bbox: Any = None,
    datetime: str | None = None,
    query: dict[str, Any] | None = None,
    **filters: Any,
) -> Any:
    """The mirror's items with absolute hrefs and ``proj:epsg``, ready for ``stackstac.stack``.

    ``bbox`` and ``datetime`` select through the collections' ``items.parquet`` (``query``, the
    STAC API query extension, is applied there too); ``query`` alone is applied while walking the
    tree, which also reaches crop collections. See :func:`stacmirror.catalog.load.items`.
    """
    from .catalog.load import items as load_items

    return load_items(path, collection, bbox=bbox, datetime=datetime, query=query, **filters)


def query(out: Any, **filters: Any) -> Any:
    """Search the mirror offline; see :func:`stacmirror.offline_search.search`."""
    from .offline_search import search

    return search(out, **filters)
