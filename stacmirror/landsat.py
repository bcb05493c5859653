"""Landsat Collection 2 naming facts shared by harvest and catalog."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

PRODUCT_ID = re.compile(
    r"^L(?P<sensor>[CEMOT])(?P<satellite>\d{2})_(?P<correction>L1TP|L1GT|L1GS|L2SP|L2SR)_"
    r"(?P<path>\d{3})(?P<row>\d{3})_(?P<acquired>\d{8})_(?P<processed>\d{8})_(?P<collection>\d{2})_"
    r"(?P<tier>T1|T2|RT)$"
)


@dataclass(frozen=True)
class ProductId:
    text: str
    sensor: str
    satellite: int
    correction: str
    path: int
    row: int
    acquired: str
    processed: str
    collection: str
    tier: str

    @property
    def level(self) -> int:
        return int(self.correction[1])

    @property
    def acquired_date(self) -> dt.date:
        return dt.datetime.strptime(self.acquired, "%Y%m%d").date()

    @property
    def acquisition(self) -> tuple[str, int, int, int, int, str, str]:
        """What stays the same when USGS reprocesses a product (as the entity id does): sensor,
        satellite, level, path, row, acquisition date and collection. The processing date and the
        tier (RT -> T1/T2) change; so may the correction (L2SP <-> L2SR)."""
        return (self.sensor, self.satellite, self.level, self.path, self.row, self.acquired, self.collection)

    @property
    def version(self) -> tuple[str, bool]:
        """Orders the products of one acquisition: the later processing date, and at the same date a
        Tier 1/2 product over a Real-Time one."""
        return (self.processed, self.tier != "RT")

    def supersedes(self, other: ProductId) -> bool:
        """True when this is a newer product of the same acquisition than ``other``."""
        return self.acquisition == other.acquisition and self.version > other.version

    @classmethod
    def maybe(cls, text: str) -> ProductId | None:
        """The parsed id, or None when ``text`` is not a Collection 2 product id."""
        try:
            return cls.parse(text)
        except ValueError:
            return None

    @classmethod
    def parse(cls, text: str) -> ProductId:
        match = PRODUCT_ID.match(text)
        if not match:
            raise ValueError(f"not a Landsat Collection 2 product id: {text!r}")
        g = match.groupdict()
        return cls(
            text,
            g["sensor"],
            int(g["satellite"]),
            g["correction"],
            int(g["path"]),
            int(g["row"]),
            g["acquired"],
            g["processed"],
            g["collection"],
            g["tier"],
        )


def is_product_id(text: str) -> bool:
    return PRODUCT_ID.match(text) is not None


def current_products(names: list[str]) -> list[str]:
    """``names`` without the products another name supersedes (one per acquisition, the newest),
    in their given order; names that are not product ids are kept."""
    parsed = [(name, ProductId.maybe(name)) for name in names]
    newest: dict[tuple, ProductId] = {}
    for _, pid in parsed:
        if pid is not None and (pid.acquisition not in newest or pid.supersedes(newest[pid.acquisition])):
            newest[pid.acquisition] = pid
    return [name for name, pid in parsed if pid is None or newest[pid.acquisition].text == name]


# Common band names (STAC eo / stactools asset keys) -> file suffix stem, per level, for OLI/TIRS.
COMMON_NAMES: dict[int, dict[str, str]] = {
    2: {
        "coastal": "SR_B1",
        "blue": "SR_B2",
        "green": "SR_B3",
        "red": "SR_B4",
        "nir08": "SR_B5",
        "swir16": "SR_B6",
        "swir22": "SR_B7",
        "lwir11": "ST_B10",
        "qa_pixel": "QA_PIXEL",
        "qa_radsat": "QA_RADSAT",
        "qa_aerosol": "SR_QA_AEROSOL",
        "ang": "ANG",
    },
    1: {
        "coastal": "B1",
        "blue": "B2",
        "green": "B3",
        "red": "B4",
        "nir08": "B5",
        "swir16": "B6",
        "swir22": "B7",
        "pan": "B8",
        "cirrus": "B9",
        "lwir11": "B10",
        "lwir12": "B11",
        "qa_pixel": "QA_PIXEL",
        "qa_radsat": "QA_RADSAT",
        "ang": "ANG",
    },
}
