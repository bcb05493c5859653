"""Replacing a product by a newer one of the same acquisition, so that no moment lacks a product.

USGS keeps an acquisition's entity id when it reprocesses it, but the product id (the folder's
name) changes: a later processing date, or Real-Time becoming Tier 1/2. The replacement is
downloaded and verified in ``OUT/.stacmirror/incoming/`` (invisible to the catalog), then:

1. the ledger records the replacement as pending (from here on a re-run finishes it);
2. the verified folder is renamed into the tree beside the old one (one atomic rename; while both
   are there the catalog shows only the newer, see :meth:`Mirror.scene_folder_keys`);
3. the ledger's file rows follow the folder;
4. each old folder is renamed out of the tree (into ``superseded/`` when kept, else into the trash,
   which is then emptied) and its rows are dropped; the replacement is recorded as done.

Every step can be repeated, so :func:`finish_pending` completes a swap that ``kill -9``
interrupted anywhere. A scene therefore always has a complete product on disk: the old one until
step 2, the new one from then on.

In an object store there is no rename and none is needed: the newer product's keys differ from the
older one's (another folder name), so it is uploaded, verified and completed in place, beside the
old one (the catalog lists only the newer). Step 4 then deletes the old product's objects (copied
under ``.stacmirror/superseded/`` first when kept), and is as repeatable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..layout import Mirror
from ..ledger import Ledger
from ..storage import delete_objects


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(
    mirror: Mirror,
    ledger: Ledger,
    dataset: str,
    new_id: str,
    old_ids: list[str],
    *,
    keep: bool = False,
    store: Any = None,
) -> None:
    """Put the verified product ``new_id`` in place of ``old_ids`` (steps 1-4 above); ``store``:
    the :class:`~stacmirror.storage.StoreMirror` when the mirror is one (``mirror`` its cache)."""
    ledger.begin_replacement(dataset, new_id, old_ids, keep)
    _finish(mirror, ledger, dataset, new_id, old_ids, keep, store)


def finish_pending(mirror: Mirror, ledger: Ledger, store: Any = None) -> list[tuple[str, str]]:
    """Complete the swaps an interrupted run left; returns the (old, new) pairs finished."""
    empty_trash(mirror)
    finished = []
    for new_id, (dataset, old_ids, keep) in ledger.pending_replacements().items():
        _finish(mirror, ledger, dataset, new_id, old_ids, keep, store)
        finished += [(old, new_id) for old in old_ids]
    return finished


def remove_product(mirror: Mirror, ledger: Ledger, dataset: str, display_id: str, store: Any = None) -> None:
    """Delete a product's folder (renamed out of the tree first; in a store, its objects) and its
    ledger rows (``--prune``)."""
    if store is not None:
        delete_objects(store.store, sorted(store.sizes(mirror.rel(mirror.scene_dir(dataset, display_id)))))
    else:
        _discard(mirror.scene_dir(dataset, display_id), mirror.trash_dir / display_id)
    ledger.forget_scene(display_id)
    empty_trash(mirror)


def empty_trash(mirror: Mirror) -> None:
    if mirror.trash_dir.exists():
        shutil.rmtree(mirror.trash_dir)


def _finish(
    mirror: Mirror, ledger: Ledger, dataset: str, new_id: str, old_ids: list[str], keep: bool, store: Any
) -> None:
    if store is not None:
        _finish_in_store(mirror, ledger, dataset, old_ids, keep, store)
        return
    staging = mirror.incoming_dir(dataset, new_id)
    final = mirror.scene_dir(dataset, new_id)
    if staging.is_dir():  # verified in full (the swap is pending only then): it wins over any other copy
        if final.exists():
            _discard(final, mirror.trash_dir / f"replaced-{new_id}")
            ledger.drop_files(new_id, mirror.rel(final))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)
        _fsync_dir(final.parent)
    ledger.move_files(new_id, mirror.rel(staging), mirror.rel(final))
    for old_id in old_ids:
        old = mirror.scene_dir(dataset, old_id)
        if keep:
            _discard(old, mirror.superseded_dir(dataset, old_id))
        else:
            _discard(old, mirror.trash_dir / old_id)
        with ledger.transaction():
            ledger.forget_scene(old_id)
            ledger.finish_replacement(old_id)
    empty_trash(mirror)


def _finish_in_store(
    mirror: Mirror, ledger: Ledger, dataset: str, old_ids: list[str], keep: bool, store: Any
) -> None:
    import obstore

    for old_id in old_ids:
        prefix = mirror.rel(mirror.scene_dir(dataset, old_id))
        keys = sorted(store.sizes(prefix))
        if keep:
            kept = mirror.rel(mirror.superseded_dir(dataset, old_id))
            for key in keys:
                obstore.copy(store.store, key, kept + key[len(prefix) :])
        delete_objects(store.store, keys)
        with ledger.transaction():
            ledger.forget_scene(old_id)
            ledger.finish_replacement(old_id)


def _discard(folder: Path, to: Path) -> None:
    """Rename ``folder`` (if it is still there) to ``to``, replacing what ``to`` held."""
    if not folder.exists():
        return
    if to.exists():
        shutil.rmtree(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, to)
    _fsync_dir(folder.parent)
