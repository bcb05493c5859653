"""The public API: one function per stage, each with explicit parameters, returning a result.

Every long operation takes ``on_event`` (see :mod:`stacmirror.events`); nothing here prints.
Bad input raises :class:`stacmirror.errors.InvalidInput` before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from .area import load_area, load_regions
from .errors import InvalidInput, NotACatalog
from .harvester.options import HarvestResult
from .harvester.selection import Selection
from .layout import Mirror
from .m2m import Credentials, M2MClient
from .storage import is_store_url

__all__ = [
    "CropResult",
    "build_catalog",
    "connect",
    "crop",
    "find_stacks",
    "harvest",
    "remove_subscription",
    "subscriptions",
    "sync",
    "validate",
]


@contextmanager
def connect(
    service_url: str | None = None,
    credentials: Credentials | None = None,
    *,
    on_event: ev.EventHandler | None = None,
    record: str | Path | None = None,
) -> Iterator[M2MClient]:
    """A logged-in M2M client, logged out on exit.

    Credentials resolve as the CLI resolves them: the environment (``M2M_USERNAME`` and
    ``M2M_TOKEN``), then ``~/.config/stacmirror/credentials.ini``, then a prompt on a terminal.
    With no ``service_url`` (nor ``M2M_SERVICE_URL``) and no credentials anywhere, the built-in
    emulator is started on loopback, and a :class:`~stacmirror.events.Note` says so. ``record``: a
    folder for a redacted transcript of every call (see :mod:`stacmirror.m2m.transcript`).
    """
    from .service import open_client

    folder = Path(record) if record is not None else None
    with open_client(service_url, credentials=credentials, on_event=on_event, record=folder) as client:
        yield client


def harvest(
    out: str | Path,
    selection: Selection,
    *,
    client: M2MClient | None = None,
    service_url: str | None = None,
    mode: str | None = None,
    bands: str | Sequence[str] = (),
    file_groups: str | Sequence[str] = (),
    max_scenes: int | None = None,
    regions: Any = None,
    per_region: int | None = None,
    workers: int = 4,
    dry_run: bool = False,
    browse: bool = True,
    catalog: bool = True,
    keep_tar: bool = False,
    keep_superseded: bool = False,
    poll_interval: float = 30.0,
    poll_timeout: float = 3600.0,
    fsync: bool = False,
    on_event: ev.EventHandler | None = None,
    command: str = "harvest (Python API)",
    record: str | Path | None = None,
) -> HarvestResult:
    """Search M2M and mirror the scenes into ``out``, then (unless ``catalog=False``) catalogue them.

    ``mode`` is ``"bands"`` (default when ``bands`` is given), ``"bundle"`` or ``"band-group"``.
    ``regions`` (a CSV or GeoJSON file, a GeoJSON mapping, or shapely geometries) are searched one
    by one instead of the selection's area. The request is recorded in the mirror as a subscription
    (see :func:`sync`); a product that replaces one the mirror holds is verified in full before
    the old one is deleted (or, with ``keep_superseded``, moved to ``OUT/.stacmirror/superseded/``).
    Every file appears by an atomic rename once verified; ``fsync=True`` also flushes it to disk
    first, so that it survives a power cut (slower where the disk is slower than the network).
    With ``client=None`` a client is opened with
    :func:`connect` (to ``service_url``) and closed afterwards. Raises InvalidInput, AccessDenied
    or MirrorBusy before anything is written; files that did not arrive are listed in the result.
    """
    import time

    from .harvester.options import HarvestOptions
    from .harvester.run import Harvest
    from .ledger import MirrorLock
    from .storage import StoreMirror

    started = time.monotonic()
    options = HarvestOptions(
        out=out if is_store_url(out) else Path(out),
        selection=selection,
        mode=mode,
        bands=bands,  # type: ignore[arg-type]
        file_groups=file_groups,  # type: ignore[arg-type]
        keep_tar=keep_tar,
        keep_superseded=keep_superseded,
        max_scenes=max_scenes,
        regions=load_regions(regions) if regions is not None else None,
        per_region=per_region,
        workers=workers,
        poll_interval=poll_interval,
        poll_timeout=poll_timeout,
        dry_run=dry_run,
        browse=browse,
        command=command,
        fsync=fsync,
    )
    # a store is opened and checked (bucket, credentials, an empty prefix or a mirror) before M2M is asked
    store = StoreMirror.open(options.out) if isinstance(options.out, str) else None
    (store or MirrorLock(Mirror(options.out))).check_free()
    if client is None:
        with connect(service_url, on_event=on_event, record=record) as own:
            result = Harvest(own, options, on_event, store=store).run()
            result.api_calls = dict(own.calls)
    else:
        before = dict(client.calls)
        result = Harvest(client, options, on_event, store=store).run()
        result.api_calls = {k: v - before.get(k, 0) for k, v in client.calls.items() if v - before.get(k, 0)}
    if catalog and not dry_run and result.files_downloaded + result.files_skipped:
        result.catalog = build_catalog(out, on_event=on_event)
    result.elapsed = time.monotonic() - started
    return result


def build_catalog(
    out: str | Path,
    *,
    force: bool = False,
    workers: int | None = None,
    dask: str | None = None,
    executor: Executor | None = None,
    on_event: ev.EventHandler | None = None,
):
    """Build or update ``out/catalog.json`` from the files on disk and the ledger (no network).

    Items are built in parallel: in ``executor`` when given, else on the Dask cluster whose
    scheduler is at ``dask``, else in a pool of ``workers`` processes (default: the CPU count).
    A handful of changed scenes is built in this process, where a pool would only add start-up
    time. The output is the same whatever runs it. Returns a
    :class:`~stacmirror.catalog.build.CatalogResult`.

    ``out`` may be a mirror's store URL (``s3://bucket/prefix``): the workers read the rasters from
    the store (no shared disk needed, on a Dask cluster either), and the catalog is written with
    relative hrefs into the store, under its lock.
    """
    from .catalog.build import build_catalog as build

    if is_store_url(out):  # listed and read from the store; the catalog is published to it
        return build(str(out), force=force, workers=workers, dask=dask, executor=executor, on_event=on_event)
    root = Path(out)
    if not root.is_dir():
        raise InvalidInput("out", f"{root} is not a folder")
    return build(root, force=force, workers=workers, dask=dask, executor=executor, on_event=on_event)


def validate(out: str | Path, *, schemas: str | Path | None = None):
    """Validate the catalog: STAC core, every declared extension, Landsat field formats.

    Extension schemas come from ``schemas`` (a local folder) when given, else from the user cache,
    where a schema that is not cached yet is fetched once. Returns a
    :class:`~stacmirror.catalog.validate.ValidationReport` with ``.ok`` and ``.problems``;
    raises :class:`~stacmirror.errors.SchemaUnavailable` when a schema cannot be had.
    """
    from .catalog.validate import validate_catalog

    if is_store_url(out):  # read from the store: one listing, a GET per catalog file
        return validate_catalog(str(out), Path(schemas) if schemas is not None else None)
    root = Path(out)
    if not root.is_dir():
        raise InvalidInput("out", f"{root} is not a folder")
    return validate_catalog(root, Path(schemas) if schemas is not None else None)


def _catalog_mirror(out: str | Path) -> Mirror:
    """The mirror whose catalog state finds stacks: the folder, or for a store the cache of the
    machine that built its catalog."""
    from .storage import StoreMirror

    if is_store_url(out):
        from .catalog.published import pull_catalog_state

        store = StoreMirror.open(str(out))
        pull_catalog_state(store)  # built on another machine: its state, fetched once
        if not store.local.catalog_path.exists():
            raise NotACatalog(f"{store.url} has no catalog yet (run: stacmirror catalog {store.url})")
        return store.local
    mirror = Mirror(Path(out))
    if not mirror.catalog_path.exists():
        raise NotACatalog(f"{mirror.root} has no catalog yet (build it first: build_catalog)")
    return mirror


def find_stacks(
    out: str | Path,
    *,
    collection: str | None = None,
    min_scenes: int = 2,
    aoi: Any = None,
    max_cloud: float | None = None,
    group_by: str = "path-row",
    on_event: ev.EventHandler | None = None,
):
    """Stacks of overlapping scenes with their largest common rectangle (a list of ``Stack``).

    ``aoi`` is a GeoJSON file, mapping or shapely geometry in lon/lat; notes (CRS zones, scenes
    left out) arrive as :class:`~stacmirror.events.Note` events.
    """
    from .cropper.stacks import GROUP_BY
    from .cropper.stacks import find_stacks as find

    mirror = _catalog_mirror(out)
    store_url = str(out).rstrip("/") if is_store_url(out) else None
    if group_by not in GROUP_BY:
        raise InvalidInput("group_by", f"must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
    if not isinstance(min_scenes, int) or min_scenes < 1:
        raise InvalidInput("min_scenes", f"must be a whole number >= 1, got {min_scenes!r}")
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise InvalidInput("max_cloud", f"must be between 0 and 100, got {max_cloud}")
    area = load_area(aoi=aoi) if aoi is not None else None
    stacks, notes = find(
        mirror,
        collection=collection,
        min_scenes=min_scenes,
        aoi=area,
        max_cloud=max_cloud,
        group_by=group_by,
        store_url=store_url,
    )
    emit = ev.emitter(on_event)
    for note in notes:
        emit(ev.Note(note))
    return stacks


@dataclass
class CropResult:
    """What a crop did per stack, and the catalog update after it; ``to_dict()`` is ``crop --json``."""

    stacks: list[Any] = field(default_factory=list)  # StackCropResult
    catalog: Any = None

    @property
    def errors(self) -> list[str]:
        return [f"{s.stack_id}: {e}" for s in self.stacks for e in s.errors]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "stacks": [s.to_dict() for s in self.stacks],
            "catalog": self.catalog.to_dict() if self.catalog is not None else None,
        }


def crop(
    out: str | Path,
    stacks: Iterable[Any],
    *,
    assets: str | Sequence[str] | None = None,
    workers: int | None = None,
    dask: str | None = None,
    executor: Executor | None = None,
    on_event: ev.EventHandler | None = None,
    virtual: bool = False,
    level: int | None = None,
) -> CropResult:
    """Crop every scene of each stack to its rectangle, pixel-exactly, then bring the catalog up to
    date so the crop collections are linked from the root. ``assets`` limits the raster assets
    cropped; an unknown name raises InvalidInput before anything is written. With ``virtual``, each
    cropped asset is a small VRT over its source file's window, and no pixel is copied: the same
    items, ``proj:*`` and pixels, for a few kB per asset (the sources must stay). ``level`` (1 to 9)
    is the copies' compression effort, as the sources are compressed (DEFLATE for Landsat): lower
    is faster and larger; None keeps GDAL's default (6). Scenes are cropped in
    ``executor``, on the Dask cluster at ``dask``, or in a pool of ``workers`` processes (default:
    the CPU count); the output is the same whatever runs it.
    """
    from .cropper.crop import check_level, crop_stack, raster_asset_keys
    from .executors import check_workers, executor_for
    from .storage import StoreMirror

    store = StoreMirror.open(str(out)) if is_store_url(out) else None
    mirror = store.local if store is not None else Mirror(Path(out))
    stacks = list(stacks)
    wanted: set[str] | None = None
    if assets is not None:
        names = assets.split(",") if isinstance(assets, str) else list(assets)
        wanted = {a.strip() for a in names if a.strip()}
        if not wanted:
            raise InvalidInput("assets", "is empty")
        known = raster_asset_keys(stacks)
        unknown = wanted - known
        if unknown and stacks:  # no stack, nothing to crop: no asset to check against
            raise InvalidInput(
                "assets", f"no raster asset {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
    check_level(level, virtual)
    check_workers(workers)
    emit = ev.emitter(on_event)
    result = CropResult()
    if store is not None:  # under the store's lock; the catalog build then publishes the crops
        store.acquire()
    try:
        with executor_for(executor, workers=workers, dask=dask) as (pool, _):
            for stack in stacks:
                done = crop_stack(
                    mirror,
                    stack,
                    assets=wanted,
                    executor=pool,
                    virtual=virtual,
                    store_url=store and store.url,
                    level=level,
                )
                result.stacks.append(done)
                emit(ev.StackCropped(done.stack_id, done.cropped, done.files, done.skipped, len(done.errors)))
    finally:
        if store is not None:
            store.release()
    result.catalog = build_catalog(
        store.url if store is not None else mirror.root,
        workers=workers,
        dask=dask,
        executor=executor,
        on_event=on_event,
    )
    return result


def sync(
    out: str | Path,
    *,
    client: M2MClient | None = None,
    service_url: str | None = None,
    dry_run: bool = False,
    prune: bool = False,
    keep_superseded: bool = False,
    catalog: bool = True,
    workers: int = 4,
    poll_interval: float = 30.0,
    poll_timeout: float = 3600.0,
    fsync: bool = False,
    on_event: ev.EventHandler | None = None,
    record: str | Path | None = None,
):
    """Bring the mirror ``out`` up to date with every subscription its harvests recorded.

    New scenes are fetched; products USGS replaced (same acquisition, newer product id) are
    downloaded, verified and swapped in, the old ones deleted (kept in
    ``OUT/.stacmirror/superseded/`` with ``keep_superseded``); products no subscription lists any
    more are reported, and removed only with ``prune``. The catalog, items.parquet and the crops of
    changed stacks are brought in step (unless ``catalog=False``). ``dry_run`` plans it all and
    writes nothing. ``fsync`` as for :func:`harvest`. Raises InvalidInput (not a mirror, no
    subscriptions, a subscription whose dataset is gone) or MirrorBusy before anything is written.
    Returns a :class:`~stacmirror.syncer.SyncResult`.
    """
    import time

    from .storage import StoreMirror
    from .syncer import run_sync

    started = time.monotonic()
    if is_store_url(out):
        store = StoreMirror.open(str(out))
        store.pull_state()  # the subscriptions are in its ledger
        root: Path | str = store.url
        local = store.local.root
        if not store.local.ledger_path.exists():
            raise InvalidInput(
                "out", f"{store.url} is not a stacmirror mirror (no ledger); harvest into it first"
            )
    else:
        root = local = Path(out)
        if not root.is_dir():
            raise InvalidInput("out", f"{root} is not a folder")
    options = {
        "workers": workers,
        "poll_interval": poll_interval,
        "poll_timeout": poll_timeout,
        "fsync": fsync,
    }
    flags = {"dry_run": dry_run, "prune": prune, "keep_superseded": keep_superseded, "catalog": catalog}
    if client is None:
        from .syncer import read_subscriptions

        read_subscriptions(Mirror(local))  # not a mirror: said before connecting
        with connect(service_url, on_event=on_event, record=record) as own:
            result = run_sync(own, root, on_event=on_event, **flags, **options)
            result.api_calls = dict(own.calls)
    else:
        before = dict(client.calls)
        result = run_sync(client, root, on_event=on_event, **flags, **options)
        result.api_calls = {k: v - before.get(k, 0) for k, v in client.calls.items() if v - before.get(k, 0)}
    result.elapsed = time.monotonic() - started
    return result


def subscriptions(out: str | Path) -> list[Any]:
    """The subscriptions recorded in the mirror ``out`` (a list of ``Subscription``, by number);
    for a store URL, from its ledger, pulled into the local cache first."""
    from .syncer import read_subscriptions

    return read_subscriptions(_subscribed_mirror(out)[0])


def remove_subscription(out: str | Path, number: int) -> Any:
    """Drop subscription ``number`` (sync no longer runs it); no file is deleted. Returns the
    removed ``Subscription``; an unknown number raises InvalidInput, a busy mirror MirrorBusy. In a
    store the ledger is pulled again and pushed back under the store's lock."""
    from .harvester.subscription import check_number
    from .ledger import Ledger, MirrorLock
    from .syncer import read_subscriptions

    mirror, store = _subscribed_mirror(out)
    found = check_number(read_subscriptions(mirror), number)
    lock = store if store is not None else MirrorLock(mirror)
    lock.acquire()
    try:
        if store is not None:
            store.pull_state()  # under the lock: another machine may have written it since
        ledger = Ledger(mirror)
        try:
            ledger.remove_subscription(found.id)
        finally:
            ledger.close()
        if store is not None:
            store.push_state()
    finally:
        lock.release()
    return found


def _subscribed_mirror(out: str | Path) -> tuple[Mirror, Any]:
    """The mirror whose ledger holds the subscriptions (a store's: its cache, the ledger pulled),
    and the store or None."""
    from .storage import StoreMirror, is_store_url

    if not is_store_url(out):
        return Mirror(Path(out)), None
    store = StoreMirror.open(str(out))
    store.pull_state()
    if not store.local.ledger_path.exists():
        raise InvalidInput(
            "out", f"{store.url} is not a stacmirror mirror (no ledger); harvest into it first"
        )
    return store.local, store
