"""Where everything lives in a mirror. The only module that builds these paths; keep it stable.

::

    OUT/catalog.json
    OUT/<dataset>/collection.json                                 children: one catalog per WRS path
    OUT/<dataset>/items.parquet/<PPP>.parquet                     the items as stac-geoparquet, per WRS path
    OUT/<dataset>/<PPP>/catalog.json                              children: one catalog per WRS row
    OUT/<dataset>/<PPP>/<RRR>/catalog.json                        the items (or years, past 1 000)
    OUT/<dataset>/<PPP>/<RRR>/catalog-<YYYY>.json                 a year's items, in a split row
    OUT/<dataset>/<PPP>/<RRR>/<displayId>/<original file names>
    OUT/<dataset>/<PPP>/<RRR>/<displayId>/<displayId>.json      the scene's STAC Item
    OUT/crops/<stack id>/collection.json                          one collection per cropped stack
    OUT/crops/<stack id>/items.parquet                            its items, as stac-geoparquet
    OUT/crops/<stack id>/<item id>/<item id>.json
    OUT/.stacmirror/ledger.sqlite                                 what was asked, found, fetched, verified
    OUT/.stacmirror/catalog.sqlite                                what each Item was built from
    OUT/.stacmirror/published.sqlite                              a store mirror's published catalog files
    OUT/.stacmirror/lock                                          held while a harvest or sync runs
    OUT/.stacmirror/incoming/<dataset>/<displayId>/               a replacement product, until verified
    OUT/.stacmirror/superseded/<dataset>/<displayId>/             replaced products (--keep-superseded)
    OUT/.stacmirror/trash/                                        what is being deleted
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .landsat import ProductId, current_products

STATE_DIR = ".stacmirror"
CROPS_DIR = "crops"
CROP_COLLECTION_PREFIX = "crop-"  # a crop collection's id is this and its stack's id
DATASET_DIR = re.compile(r"^landsat_[a-z]+_c2_l[12]$")


def partial_path(target: Path) -> Path:
    """Where a download streams before it is verified: hidden, beside its target."""
    return target.with_name(f".{target.name}.part")


def _names(folder: str) -> list[str]:
    """Names of the visible sub-folders, sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted (hidden ones hold partial or private state)."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


@dataclass(frozen=True)
class Mirror:
    """A mirror folder and the names of everything in it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- the catalog ------------------------------------------------------------------------------

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.json"

    def collection_path(self, dataset: str) -> Path:
        return self.root / dataset / "collection.json"

    def items_parquet(self, dataset: str) -> Path:
        """The collection's items as stac-geoparquet (for queries and the STAC API): a folder with
        one file per WRS path, read as one table."""
        return self.root / dataset / "items.parquet"

    def items_partition(self, dataset: str, wrs_path: int) -> Path:
        return self.items_parquet(dataset) / f"{wrs_path:03d}.parquet"

    def collection_parquets(self) -> dict[str, Path]:
        """Collection id → its items.parquet, for every collection that has one: the datasets',
        then the crop stacks'."""
        found = {d.name: d / "items.parquet" for d in self.dataset_dirs()}
        if self.crops_dir.is_dir():
            found.update(
                {self.crop_collection_id(d.name): d / "items.parquet" for d in _subdirs(self.crops_dir)}
            )
        return {name: path for name, path in found.items() if path.exists()}

    def collection_parquet_files(self) -> dict[str, list[Path]]:
        """Collection id → the Parquet files of its items.parquet (a dataset's partitions, or a crop
        stack's one file), for every collection that has any."""
        found = {}
        for name, path in self.collection_parquets().items():
            files = sorted(path.glob("[0-9]*.parquet")) if path.is_dir() else [path]
            if files:
                found[name] = files
        return found

    def collection_file(self, collection_id: str) -> Path:
        """The collection.json of a dataset or of a crop stack, by collection id."""
        if collection_id.startswith(CROP_COLLECTION_PREFIX):
            return self.crop_dir(collection_id[len(CROP_COLLECTION_PREFIX) :]) / "collection.json"
        return self.collection_path(collection_id)

    def item_file(self, collection_id: str, item_id: str) -> Path:
        """The item file of ``item_id`` in a dataset or crop collection."""
        if collection_id.startswith(CROP_COLLECTION_PREFIX):
            stack = collection_id[len(CROP_COLLECTION_PREFIX) :]
            return self.crop_dir(stack) / item_id / f"{item_id}.json"
        return self.item_path(self.scene_dir(collection_id, item_id))

    def item_file_text(self, collection_id: str, item_id: str) -> str:
        """:meth:`item_file` as a string, made without Path objects (a search result holds
        thousands of them)."""
        if collection_id.startswith(CROP_COLLECTION_PREFIX):
            return str(self.item_file(collection_id, item_id))
        pid = ProductId.parse(item_id)
        folder = os.path.join(str(self.root), collection_id, f"{pid.path:03d}", f"{pid.row:03d}", item_id)
        return os.path.join(folder, f"{item_id}.json")

    def path_catalog(self, dataset: str, wrs_path: int) -> Path:
        return self.root / dataset / f"{wrs_path:03d}" / "catalog.json"

    def row_catalog(self, dataset: str, wrs_path: int, wrs_row: int) -> Path:
        return self.root / dataset / f"{wrs_path:03d}" / f"{wrs_row:03d}" / "catalog.json"

    def year_catalog(self, dataset: str, wrs_path: int, wrs_row: int, year: int) -> Path:
        return self.row_catalog(dataset, wrs_path, wrs_row).with_name(f"catalog-{year}.json")

    def year_catalogs(self, dataset: str, wrs_path: int, wrs_row: int) -> list[Path]:
        folder = self.row_catalog(dataset, wrs_path, wrs_row).parent
        return sorted(folder.glob("catalog-[0-9][0-9][0-9][0-9].json")) if folder.is_dir() else []

    def scene_dir(self, dataset: str, display_id: str) -> Path:
        pid = ProductId.parse(display_id)
        return self.root / dataset / f"{pid.path:03d}" / f"{pid.row:03d}" / display_id

    @staticmethod
    def item_path(scene_folder: Path) -> Path:
        return scene_folder / f"{scene_folder.name}.json"

    @staticmethod
    def browse_stem(display_id: str) -> str:
        """The browse image's name without its extension (which the bytes decide)."""
        return f"{display_id}_browse"

    def dataset_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in _subdirs(self.root) if DATASET_DIR.match(p.name)]

    def scene_folder_keys(self) -> Iterator[tuple[str, str, str]]:
        """(dataset, absolute folder, folder relative to the root) as strings, for every folder at
        ``OUT/<dataset>/<PPP>/<RRR>/<name>`` but those holding a superseded product: strings, not
        Path objects (there are 100 000s of them)."""
        root = str(self.root)
        for dataset_dir in self.dataset_dirs():
            dataset = dataset_dir.name
            for path_name in filter(str.isdigit, _names(str(dataset_dir))):  # not items.parquet
                path_dir = os.path.join(str(dataset_dir), path_name)
                for row_name in _names(path_dir):
                    row_dir = os.path.join(path_dir, row_name)
                    # one item per acquisition: a product another folder supersedes is left out (a
                    # replacement is being swapped in, or an older release left both on disk)
                    for scene in current_products(_names(row_dir)):
                        folder = os.path.join(row_dir, scene)
                        yield dataset, folder, folder[len(root) + 1 :]

    def scene_collections(self) -> list[Path]:
        return [d / "collection.json" for d in self.dataset_dirs() if (d / "collection.json").exists()]

    # -- crops ------------------------------------------------------------------------------------

    @property
    def crops_dir(self) -> Path:
        return self.root / CROPS_DIR

    def crop_dir(self, stack_id: str) -> Path:
        return self.crops_dir / stack_id

    @staticmethod
    def crop_collection_id(stack_id: str) -> str:
        return CROP_COLLECTION_PREFIX + stack_id

    def crop_parquet(self, stack_id: str) -> Path:
        return self.crop_dir(stack_id) / "items.parquet"

    def crop_state_path(self, stack_id: str) -> Path:
        """The members and rectangle a stack's crops were made for."""
        return self.crop_dir(stack_id) / "stack.json"

    def crop_collections(self) -> list[Path]:
        if not self.crops_dir.is_dir():
            return []
        return [d / "collection.json" for d in _subdirs(self.crops_dir) if (d / "collection.json").exists()]

    def is_crop_collection(self, collection_file: Path) -> bool:
        return collection_file.parent.parent == self.crops_dir

    # -- private state ----------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "lock"

    def incoming_dir(self, dataset: str, display_id: str) -> Path:
        """Where a product that replaces another is downloaded and verified before the swap."""
        return self.state_dir / "incoming" / dataset / display_id

    def superseded_dir(self, dataset: str, display_id: str) -> Path:
        """Where a replaced product is kept when asked to (outside the catalog)."""
        return self.state_dir / "superseded" / dataset / display_id

    @property
    def trash_dir(self) -> Path:
        """Folders are renamed here (atomically) and then deleted, so none is ever half-deleted in place."""
        return self.state_dir / "trash"

    def acquisition_siblings(self, dataset: str, display_id: str) -> list[str]:
        """Other product folders of the same acquisition on disk (the same WRS row folder)."""
        pid = ProductId.parse(display_id)
        row_dir = self.scene_dir(dataset, display_id).parent
        if not row_dir.is_dir():
            return []
        return [
            name
            for name in _names(str(row_dir))
            if name != display_id
            and (o := ProductId.maybe(name)) is not None
            and o.acquisition == pid.acquisition
        ]

    @property
    def catalog_db_path(self) -> Path:
        return self.state_dir / "catalog.sqlite"

    @property
    def published_db_path(self) -> Path:
        """In a store mirror's cache: each catalog file published to the store, at which size and time."""
        return self.state_dir / "published.sqlite"

    @property
    def catalog_synced_path(self) -> Path:
        """In a store mirror's cache: the e-tag of the store's catalog state the cache is in step with."""
        return self.state_dir / "catalog-synced.json"

    @property
    def read_copy_dir(self) -> Path:
        """In a store mirror's cache: the copy of its collections and items.parquet that searches read."""
        return self.state_dir / "read"

    @property
    def legacy_catalog_state_path(self) -> Path:
        """The JSON state of stacmirror 0.1, removed when the database replaces it."""
        return self.state_dir / "catalog-state.json"

    def rel(self, path: Path) -> str:
        """``path`` relative to the mirror root, as the ledger and the catalog state key it."""
        return str(Path(path).relative_to(self.root))
