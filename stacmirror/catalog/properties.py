"""Item properties derived from the MTL: where every ``landsat:*``, ``view:*`` and date comes from."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..landsat import ProductId
from .constants import INSTRUMENTS, SENSOR_TITLES, SENSORS
from .mtl import Groups, MTLError


def _get(groups: Groups, group: str, key: str) -> str | None:
    value = groups.get(group, {}).get(key)
    return None if value in (None, "", "NULL") else value


def _float(groups: Groups, group: str, key: str) -> float | None:
    value = _get(groups, group, key)
    try:
        return None if value is None else float(value)
    except ValueError:
        raise MTLError(f"{group}/{key} is not a number: {value!r}") from None


def mtl_number(groups: Groups, group: str, key: str) -> float | None:
    return _float(groups, group, key)


def acquisition_datetime(groups: Groups) -> dt.datetime:
    date = _get(groups, "IMAGE_ATTRIBUTES", "DATE_ACQUIRED")
    time = (_get(groups, "IMAGE_ATTRIBUTES", "SCENE_CENTER_TIME") or "00:00:00").rstrip("Z")
    if date is None:
        raise MTLError("IMAGE_ATTRIBUTES/DATE_ACQUIRED is missing")
    whole, _, fraction = time.partition(".")
    micro = (fraction + "000000")[:6]  # MTL has 7 fractional digits; Python takes 6
    try:
        return dt.datetime.fromisoformat(f"{date}T{whole}.{micro}").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise MTLError(f"bad acquisition date/time: {date} {time}") from None


def product_id(groups: Groups) -> ProductId:
    text = _get(groups, "PRODUCT_CONTENTS", "LANDSAT_PRODUCT_ID")
    if text is None:
        raise MTLError("PRODUCT_CONTENTS/LANDSAT_PRODUCT_ID is missing")
    try:
        return ProductId.parse(text)
    except ValueError as exc:
        raise MTLError(str(exc)) from None


def sensor_of(pid: ProductId) -> str:
    return SENSORS[pid.sensor]


def epsg_of(groups: Groups) -> int:
    """USGS UTM grids are northern zones everywhere (negative northings south of the equator)."""
    projection = groups.get("PROJECTION_ATTRIBUTES", {})
    if projection.get("MAP_PROJECTION") == "PS":
        return 3031 if float(projection.get("TRUE_SCALE_LAT", "-71")) < 0 else 3995
    zone = projection.get("UTM_ZONE")
    if zone is None:
        raise MTLError("PROJECTION_ATTRIBUTES/UTM_ZONE is missing")
    return 32600 + int(zone)


def _doi(groups: Groups) -> str | None:
    doi = _get(groups, "PRODUCT_CONTENTS", "DIGITAL_OBJECT_IDENTIFIER")
    if doi is None:
        return None
    return doi.removeprefix("https://doi.org/").removeprefix("http://doi.org/").removeprefix("doi:")


def properties(groups: Groups) -> dict[str, Any]:
    """The item properties a best-in-class Landsat item carries (STAC-LANDSAT.md §6)."""
    pid = product_id(groups)
    image = "IMAGE_ATTRIBUTES"
    contents = "PRODUCT_CONTENTS"
    level = pid.level
    spacecraft = _get(groups, image, "SPACECRAFT_ID") or f"LANDSAT_{pid.satellite}"
    sensor_id = _get(groups, image, "SENSOR_ID") or "OLI_TIRS"
    path = int(_float(groups, image, "WRS_PATH") or pid.path)
    row = int(_float(groups, image, "WRS_ROW") or pid.row)
    wrs_type = _get(groups, image, "WRS_TYPE") or "2"
    acquired = acquisition_datetime(groups)
    sensor = sensor_of(pid)
    props: dict[str, Any] = {
        "title": f"{spacecraft.replace('_', ' ').title()} {SENSOR_TITLES[sensor]} {pid.correction} "
        f"{path:03d}/{row:03d} {acquired:%Y-%m-%d}",
        "description": f"Landsat Collection 2 Level-{level} {SENSOR_TITLES[sensor]} product {pid.text}",
        "datetime": acquired.isoformat().replace("+00:00", "Z"),
        "platform": spacecraft.lower().replace("_", "-"),
        "instruments": INSTRUMENTS.get(sensor_id, [sensor_id.lower()]),
        "constellation": "landsat",
    }
    gsd = _float(groups, "PROJECTION_ATTRIBUTES", "GRID_CELL_SIZE_REFLECTIVE")
    if gsd:
        props["gsd"] = gsd
    cloud = _float(groups, image, "CLOUD_COVER")
    if cloud is not None and cloud >= 0:
        props["eo:cloud_cover"] = cloud
    azimuth = _float(groups, image, "SUN_AZIMUTH")
    if azimuth is not None:
        props["view:sun_azimuth"] = azimuth + 360 if azimuth < 0 else azimuth
    elevation = _float(groups, image, "SUN_ELEVATION")
    if elevation is not None:
        props["view:sun_elevation"] = elevation
    roll = _float(groups, image, "ROLL_ANGLE")
    off_nadir = _get(groups, image, "NADIR_OFFNADIR") == "OFFNADIR"
    props["view:off_nadir"] = abs(roll) if off_nadir and roll is not None else 0
    land = _float(groups, image, "CLOUD_COVER_LAND")
    props["landsat:cloud_cover_land"] = land if land is not None else -1
    props["landsat:wrs_type"] = str(int(wrs_type))
    props["landsat:wrs_path"] = f"{path:03d}"
    props["landsat:wrs_row"] = f"{row:03d}"
    props["landsat:collection_category"] = _get(groups, contents, "COLLECTION_CATEGORY") or pid.tier
    props["landsat:collection_number"] = (
        f"{int(_get(groups, contents, 'COLLECTION_NUMBER') or pid.collection):02d}"
    )
    props["landsat:correction"] = _get(groups, contents, "PROCESSING_LEVEL") or pid.correction
    scene_id = _get(groups, "LEVEL1_PROCESSING_RECORD", "LANDSAT_SCENE_ID")
    if scene_id:
        props["landsat:scene_id"] = scene_id
    generated = _get(groups, "LEVEL2_PROCESSING_RECORD", "DATE_PRODUCT_GENERATED") or _get(
        groups, "LEVEL1_PROCESSING_RECORD", "DATE_PRODUCT_GENERATED"
    )
    if generated:
        props["landsat:product_generated"] = generated
    props["grid:code"] = f"WRS{int(wrs_type)}-{path:03d}{row:03d}"
    doi = _doi(groups)
    if doi:
        props["sci:doi"] = doi
    props["processing:level"] = f"L{level}"
    software = {}
    for group in ("LEVEL1_PROCESSING_RECORD", "LEVEL2_PROCESSING_RECORD"):
        version = _get(groups, group, "PROCESSING_SOFTWARE_VERSION")
        if version and "_" in version:
            name, _, number = version.partition("_")
            software[name] = number
    for key in ("ALGORITHM_SOURCE_SURFACE_REFLECTANCE", "ALGORITHM_SOURCE_SURFACE_TEMPERATURE"):
        value = _get(groups, "LEVEL2_PROCESSING_RECORD", key)
        if value and "_" in value:
            name, _, number = value.partition("_")
            software[name] = number
    if software:
        props["processing:software"] = software
    if generated:
        props["processing:datetime"] = generated
    rmse = {
        "accuracy:geometric_rmse": "GEOMETRIC_RMSE_MODEL",
        "accuracy:geometric_x_stddev": "GEOMETRIC_RMSE_MODEL_X",
        "accuracy:geometric_y_stddev": "GEOMETRIC_RMSE_MODEL_Y",
    }
    for field, key in rmse.items():
        value = _float(groups, "LEVEL1_PROCESSING_RECORD", key)
        if value is not None and level == 1:
            props[field] = value
    return props
