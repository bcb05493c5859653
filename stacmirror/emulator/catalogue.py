"""What the emulated service knows about datasets: aliases, ids, filters, products, file groups.

Ids quoted in ``shared/m2m/API.md`` (live captures) are used as-is; ids that no
public source records are invented and marked so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .metadata import L1_FILES, L2_FILES
from .scenes import SceneRecord


@dataclass(frozen=True)
class DatasetInfo:
    alias: str
    dataset_id: str
    collection_name: str
    category: str
    level: int  # 0 for the band-file (secondary) datasets
    secondary: str | None  # alias of the band-file dataset
    doi: str
    start: str
    synthetic: bool = True  # False: listed by dataset-search, but the archive holds no scenes of it


DATASETS: dict[str, DatasetInfo] = {
    d.alias: d
    for d in (
        DatasetInfo(
            "landsat_ot_c2_l1",
            "5e81f14f59432a27",
            "Landsat 8-9 OLI/TIRS C2 L1",
            "Landsat Collection 2 Level-1",
            1,
            "landsat_band_files_c2_l1",
            "10.5066/P975CC9B",
            "2013-03-18",
        ),
        DatasetInfo(
            "landsat_ot_c2_l2",
            "5e83d14f2fc39685",
            "Landsat 8-9 OLI/TIRS C2 L2",
            "Landsat Collection 2 Level-2",
            2,
            "landsat_band_files_c2_l2",
            "10.5066/P9OGBGM6",
            "2013-04-11",
        ),
        # the other Collection 2 aliases are listed (ids invented) but hold no synthetic scenes
        DatasetInfo(
            "landsat_etm_c2_l1",
            "5e83d0a0f94d7d8d",
            "Landsat 7 ETM+ C2 L1",
            "Landsat Collection 2 Level-1",
            1,
            None,
            "10.5066/P9TU80IG",
            "1999-05-28",
            synthetic=False,
        ),
        DatasetInfo(
            "landsat_etm_c2_l2",
            "5e83d12aed0efa58",
            "Landsat 7 ETM+ C2 L2",
            "Landsat Collection 2 Level-2",
            2,
            None,
            "10.5066/P9C7I13B",
            "1999-05-28",
            synthetic=False,
        ),
        DatasetInfo(
            "landsat_tm_c2_l1",
            "5e83d0a0f8b6e5d1",
            "Landsat 4-5 TM C2 L1",
            "Landsat Collection 2 Level-1",
            1,
            None,
            "10.5066/P918ROHC",
            "1982-08-22",
            synthetic=False,
        ),
        DatasetInfo(
            "landsat_tm_c2_l2",
            "5e83d11933473426",
            "Landsat 4-5 TM C2 L2",
            "Landsat Collection 2 Level-2",
            2,
            None,
            "10.5066/P9IAXOVV",
            "1982-08-22",
            synthetic=False,
        ),
        DatasetInfo(
            "landsat_mss_c2_l1",
            "5e83d0a0f7e2c9ab",
            "Landsat 1-5 MSS C2 L1",
            "Landsat Collection 2 Level-1",
            1,
            None,
            "10.5066/P9AF14YV",
            "1972-07-25",
            synthetic=False,
        ),
        DatasetInfo(
            "landsat_band_files_c2_l1",
            "5e81ff5f86d11d08",
            "Landsat C2 L1 Band Files",
            "Landsat Collection 2 Level-1",
            0,
            None,
            "",
            "2013-03-18",
        ),
        # invented id: no public source records the L2 band-file dataset id
        DatasetInfo(
            "landsat_band_files_c2_l2",
            "5e83d1d5a0b1c2e3",
            "Landsat C2 L2 Band Files",
            "Landsat Collection 2 Level-2",
            0,
            None,
            "",
            "2013-04-11",
        ),
    )
}
RETIRED = {"landsat_8_c1", "landsat_etm_c1", "landsat_tm_c1"}
PRIMARY_OF = {d.secondary: d.alias for d in DATASETS.values() if d.secondary}


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    code: str
    system: str
    available: bool
    bundle: bool


PRODUCTS: dict[int, list[Product]] = {
    2: [
        Product(
            "5e83d14fec7cae84", "Landsat Collection 2 Level-2 Product Bundle", "D694", "ls_zip", True, True
        ),
        Product("6448198cc7b442a4", "Landsat Collection 2 Level-2 Band File", "D693", "folder", True, False),
        Product("6448198c62023764", "Landsat Collection 2 Level-2 Band File", "D691", "folder", True, False),
        Product(
            "632210d4770592cf", "Landsat Collection 2 Level-2 Product Bundle", "D806", "dds_ms", False, True
        ),
    ],
    1: [
        # invented code D685 for the ls_zip L1 bundle; the ids are from public clients
        Product(
            "5e81f14f92acf9ef", "Landsat Collection 2 Level-1 Product Bundle", "D685", "ls_zip", True, True
        ),
        Product("73ceb05468b7e8c2", "Landsat Collection 2 Level-1 Band File", "D687", "folder", True, False),
        Product(
            "632211e26883b1f7", "Landsat Collection 2 Level-1 Product Bundle", "D805", "dds_ms", False, True
        ),
    ],
}
BAND_FILE_PRODUCT = {
    2: ("5f85f041a2ea6695", "Landsat Collection 2 Level-2 Band File"),
    1: ("rp9zq1ewx8s985mp", "Landsat Collection 2 Level-1 Band File"),
}
METADATA_SUFFIXES = ["MTL.txt", "MTL.xml", "MTL.json", "ANG.txt"]


def product_suffixes(level: int) -> list[str]:
    files = L2_FILES if level == 2 else L1_FILES
    return [suffix for suffix, _, _ in files] + METADATA_SUFFIXES


def secondary_entity_id(level: int, display_id: str, suffix: str) -> str:
    """``L2SR_<pid>_SR_B4_TIF`` / ``L2ST_<pid>_ST_B10_TIF`` / ``L1_<pid>_B4_TIF``."""
    tail = suffix.replace(".", "_").upper()
    prefix = "L1" if level == 1 else "L2ST" if suffix.startswith("ST_") else "L2SR"
    return f"{prefix}_{display_id}_{tail}"


def file_groups(level: int, suffix: str) -> list[str]:
    """The file groups a band file belongs to (group names partly inferred, see API.md §8.4)."""
    if level == 2:
        groups = ["ls_c2l2_all"]
        if suffix.startswith("SR_B"):
            groups.append("ls_c2l2_sr_band")
        elif suffix.startswith("ST_") and suffix != "ST_QA.TIF":
            groups.append("ls_c2l2_st_band")
        elif "QA" in suffix:
            groups.append("ls_c2l2_qa_band")
        else:
            groups.append("ls_c2l2_metadata")
        return groups
    groups = ["ls_c2l1_all"]
    if suffix.startswith("B"):
        groups.append("ls_c2l1_ot_band")
    elif suffix.startswith("QA"):
        groups.append("ls_c2l1_qa_band")
    elif suffix[:3] in ("VAA", "VZA", "SAA", "SZA"):
        groups.append("ls_c2l1_angle_band")
    else:
        groups.append("ls_c2l1_metadata")
    return groups


GROUP_LABELS = {
    "ls_c2l2_all": "All Level-2 Files",
    "ls_c2l2_sr_band": "Surface Reflectance Bands",
    "ls_c2l2_st_band": "Surface Temperature Bands",
    "ls_c2l2_qa_band": "Quality Bands",
    "ls_c2l2_metadata": "Metadata Files",
    "ls_c2l1_all": "All Level-1 Files",
    "ls_c2l1_ot_band": "OLI/TIRS Bands",
    "ls_c2l1_qa_band": "Quality Bands",
    "ls_c2l1_angle_band": "Angle Bands",
    "ls_c2l1_metadata": "Metadata Files",
}


@dataclass(frozen=True)
class FilterSpec:
    filter_id: str
    label: str
    search_sql: str
    kind: str  # Text, Range, Select
    values: dict[str, str] | None
    field: Callable[[SceneRecord, int], str | float]


def _sat(s: SceneRecord, level: int) -> str:
    return str(s.satellite)


COMMON_SELECT = {"T1": "Tier 1", "T2": "Tier 2"}


def filters_for(alias: str) -> list[FilterSpec]:
    """Metadata filters of a dataset; L2 ids are the live ones (API.md §4.3)."""
    if alias == "landsat_ot_c2_l2":
        return [
            FilterSpec(
                "5e83d14f567d0086",
                "Landsat Product Identifier L2",
                "LANDSAT_PRODUCT_ID_L2 like ?",
                "Text",
                None,
                lambda s, lv: s.display_id(2),
            ),
            FilterSpec(
                "5e83d14f227b0d85",
                "Landsat Product Identifier L1",
                "LANDSAT_PRODUCT_ID_L1 like ?",
                "Text",
                None,
                lambda s, lv: s.display_id(1),
            ),
            FilterSpec(
                "5e83d14fc84c9a78",
                "Landsat Scene Identifier",
                "ENTITY_ID like ?",
                "Text",
                None,
                lambda s, lv: s.entity_id,
            ),
            FilterSpec(
                "5e83d14fb9436d88", "WRS Path", "WRS_PATH between ?", "Range", None, lambda s, lv: s.path
            ),
            FilterSpec(
                "5e83d14ff1eda1b8", "WRS Row", "WRS_ROW between ?", "Range", None, lambda s, lv: s.row
            ),
            FilterSpec(
                "61af9273566bb9a8",
                "Satellite",
                "SATELLITE = ?",
                "Select",
                {"8": "Landsat 8", "9": "Landsat 9"},
                _sat,
            ),
            FilterSpec(
                "5e83d14fc6e09eb6",
                "Sensor Identifier",
                "SENSOR_ID = ?",
                "Select",
                {"OLI": "OLI", "OLI_TIRS": "OLI_TIRS", "TIRS": "TIRS"},
                lambda s, lv: "OLI_TIRS",
            ),
            FilterSpec(
                "5f6aa429b870fd7f",
                "Nadir/Off Nadir",
                "NADIR_OFFNADIR = ?",
                "Select",
                {"NADIR": "Nadir", "OFFNADIR": "Off Nadir"},
                lambda s, lv: "NADIR",
            ),
            FilterSpec(
                "5f6a6fb2137a3c00",
                "Collection Category",
                "COLLECTION_CATEGORY = ?",
                "Select",
                COMMON_SELECT,
                lambda s, lv: s.tier,
            ),
            FilterSpec(
                "5f6a6f82795f1b6c",
                "Date Product Generated L2",
                "DATE_PRODUCT_GENERATED_L2 between ?",
                "Range",
                None,
                lambda s, lv: f"{s.l2_generated:%Y-%m-%d}" if s.l2_generated else "",
            ),
            FilterSpec(
                "628541043da7b4c1",
                "Image Quality",
                "IMAGE_QUALITY = ?",
                "Select",
                {str(q): str(q) for q in range(10)},
                lambda s, lv: "9",
            ),
        ]
    if alias == "landsat_ot_c2_l1":
        return [
            # invented ids for the three L1 text/satellite filters (not recorded publicly)
            FilterSpec(
                "5e81f14f4a4c5b3e",
                "Landsat Product Identifier L1",
                "LANDSAT_PRODUCT_ID like ?",
                "Text",
                None,
                lambda s, lv: s.display_id(1),
            ),
            FilterSpec(
                "5e81f14f6e2d1a2b",
                "Landsat Scene Identifier",
                "ENTITY_ID like ?",
                "Text",
                None,
                lambda s, lv: s.entity_id,
            ),
            FilterSpec(
                "61af93b8fad2acf5",
                "Satellite",
                "SATELLITE = ?",
                "Select",
                {"8": "Landsat 8", "9": "Landsat 9"},
                _sat,
            ),
            FilterSpec(
                "5e81f14fcf660794",
                "Data Type L1",
                "DATA_TYPE_L1 = ?",
                "Select",
                {"L1TP": "L1TP", "L1GT": "L1GT", "L1GS": "L1GS"},
                lambda s, lv: "L1TP",
            ),
            FilterSpec(
                "5e81f14fff5055a3",
                "Collection Category",
                "COLLECTION_CATEGORY = ?",
                "Select",
                {**COMMON_SELECT, "RT": "Real-Time"},
                lambda s, lv: s.tier,
            ),
            FilterSpec(
                "5e81f14f61bda7c4",
                "Day/Night Indicator",
                "DAY_NIGHT = ?",
                "Select",
                {"DAY": "Day", "NIGHT": "Night"},
                lambda s, lv: "DAY",
            ),
            FilterSpec(
                "5f6aa1a4e0985d4c",
                "Land Cloud Cover",
                "CLOUD_COVER_LAND between ?",
                "Range",
                None,
                lambda s, lv: s.cloud_cover_land,
            ),
            FilterSpec(
                "5e81f14f8faf8048", "WRS Path", "WRS_PATH between ?", "Range", None, lambda s, lv: s.path
            ),
            FilterSpec(
                "5e81f14f8d2a7c24", "WRS Row", "WRS_ROW between ?", "Range", None, lambda s, lv: s.row
            ),
            FilterSpec(
                "5e81f14f85d499dc",
                "Sensor Identifier",
                "SENSOR_ID = ?",
                "Select",
                {"OLI": "OLI", "OLI_TIRS": "OLI_TIRS", "TIRS": "TIRS"},
                lambda s, lv: "OLI_TIRS",
            ),
            FilterSpec(
                "5e81f150e42bc489",
                "Nadir/Off Nadir",
                "NADIR_OFFNADIR = ?",
                "Select",
                {"NADIR": "Nadir", "OFFNADIR": "Off Nadir"},
                lambda s, lv: "NADIR",
            ),
        ]
    return []
