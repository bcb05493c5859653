"""MTL (txt, xml, json) and ANG.txt text for emulator scenes, in the Collection 2 layout.

One tree feeds all three MTL encodings so they agree value for value, as the
real ones do. Values wrapped in :class:`Bare` are written unquoted in the ODL
text (numbers, dates), everything else is quoted.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape

from .scenes import PIXEL, SceneRecord

Tree = dict[str, "object"]

DOI_L1 = "https://doi.org/10.5066/P975CC9B"
DOI_L2 = "https://doi.org/10.5066/P9OGBGM6"
L1_BANDS = [str(b) for b in range(1, 12)]
SR_MULT, SR_ADD = 2.75e-05, -0.2
ST_MULT, ST_ADD = 0.00341802, 149.0


class Bare(str):
    """A value written without quotes in MTL.txt."""


def _f(value: float, digits: int) -> Bare:
    return Bare(f"{value:.{digits}f}")


# (file suffix, MTL name key, data type) of each Level-2 product file, in MTL order
L2_FILES: list[tuple[str, str, str]] = [
    *[(f"SR_B{b}.TIF", f"BAND_{b}", "UINT16") for b in range(1, 8)],
    ("ST_B10.TIF", "BAND_ST_B10", "UINT16"),
    ("ST_TRAD.TIF", "THERMAL_RADIANCE", "INT16"),
    ("ST_URAD.TIF", "UPWELL_RADIANCE", "INT16"),
    ("ST_DRAD.TIF", "DOWNWELL_RADIANCE", "INT16"),
    ("ST_ATRAN.TIF", "ATMOSPHERIC_TRANSMITTANCE", "INT16"),
    ("ST_EMIS.TIF", "EMISSIVITY", "INT16"),
    ("ST_EMSD.TIF", "EMISSIVITY_STDEV", "INT16"),
    ("ST_CDIST.TIF", "CLOUD_DISTANCE", "INT16"),
    ("SR_QA_AEROSOL.TIF", "QUALITY_L2_AEROSOL", "UINT8"),
    ("ST_QA.TIF", "QUALITY_L2_SURFACE_TEMPERATURE", "INT16"),
    ("QA_PIXEL.TIF", "QUALITY_L1_PIXEL", "UINT16"),
    ("QA_RADSAT.TIF", "QUALITY_L1_RADIOMETRIC_SATURATION", "UINT16"),
]
L1_FILES: list[tuple[str, str, str]] = [
    *[(f"B{b}.TIF", f"BAND_{b}", "UINT16") for b in L1_BANDS],
    ("QA_PIXEL.TIF", "QUALITY_L1_PIXEL", "UINT16"),
    ("QA_RADSAT.TIF", "QUALITY_L1_RADIOMETRIC_SATURATION", "UINT16"),
    ("VAA.TIF", "ANGLE_SENSOR_AZIMUTH_BAND_4", "INT16"),
    ("VZA.TIF", "ANGLE_SENSOR_ZENITH_BAND_4", "INT16"),
    ("SAA.TIF", "ANGLE_SOLAR_AZIMUTH_BAND_4", "INT16"),
    ("SZA.TIF", "ANGLE_SOLAR_ZENITH_BAND_4", "INT16"),
]


def _radiance_mult(band: str) -> float:
    return 1.2929e-02 - 0.0005 * int(band) if band not in ("10", "11") else 3.342e-04


def _file_list(pid: str, files: list[tuple[str, str, str]], level: int) -> Tree:
    group: Tree = {}
    for suffix, key, _ in files:
        group[f"FILE_NAME_{key}"] = f"{pid}_{suffix}"
    group["FILE_NAME_ANGLE_COEFFICIENT"] = f"{pid}_ANG.txt"
    group["FILE_NAME_METADATA_ODL"] = f"{pid}_MTL.txt"
    group["FILE_NAME_METADATA_XML"] = f"{pid}_MTL.xml"
    for _, key, dtype in files:
        group[f"DATA_TYPE_{key}"] = dtype
    return group


def mtl_tree(scene: SceneRecord, level: int) -> Tree:
    pid = scene.display_id(level)
    l1_pid = scene.display_id(1)
    ul_x, ul_y, lines, samples = scene.grid
    corners = scene.corner_pixels()
    lonlat = dict(zip(corners, scene.to_lonlat(list(corners.values())), strict=False))
    generated = scene.l2_generated if level == 2 else scene.l1_generated
    assert generated is not None
    files = L2_FILES if level == 2 else L1_FILES

    contents: Tree = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "DIGITAL_OBJECT_IDENTIFIER": DOI_L2 if level == 2 else DOI_L1,
        "LANDSAT_PRODUCT_ID": pid,
        "PROCESSING_LEVEL": pid[5:9],
        "COLLECTION_NUMBER": Bare("02"),
        "COLLECTION_CATEGORY": scene.tier,
        "OUTPUT_FORMAT": "GEOTIFF",
        **_file_list(pid, files, level),
    }
    image: Tree = {
        "SPACECRAFT_ID": f"LANDSAT_{scene.satellite}",
        "SENSOR_ID": "OLI_TIRS",
        "WRS_TYPE": Bare("2"),
        "WRS_PATH": Bare(str(scene.path)),
        "WRS_ROW": Bare(str(scene.row)),
        "NADIR_OFFNADIR": "NADIR",
        "TARGET_WRS_PATH": Bare(str(scene.path)),
        "TARGET_WRS_ROW": Bare(str(scene.row)),
        "DATE_ACQUIRED": Bare(scene.acquired.isoformat()),
        "SCENE_CENTER_TIME": scene.scene_time.strftime("%H:%M:%S.%f") + "0Z",
        "STATION_ID": "LGN",
        "CLOUD_COVER": _f(scene.cloud_cover, 2),
        "CLOUD_COVER_LAND": _f(scene.cloud_cover_land, 2),
        "IMAGE_QUALITY_OLI": Bare("9"),
        "IMAGE_QUALITY_TIRS": Bare("9"),
        **{f"SATURATION_BAND_{b}": "N" for b in range(1, 10)},
        "ROLL_ANGLE": Bare("-0.001"),
        "SUN_AZIMUTH": _f(scene.sun_azimuth, 8),
        "SUN_ELEVATION": _f(scene.sun_elevation, 8),
        "EARTH_SUN_DISTANCE": Bare("0.9854607"),
    }
    projection: Tree = {
        "MAP_PROJECTION": "UTM",
        "DATUM": "WGS84",
        "ELLIPSOID": "WGS84",
        "UTM_ZONE": Bare(str(scene.zone)),
    }
    if level == 1:
        projection["GRID_CELL_SIZE_PANCHROMATIC"] = _f(PIXEL / 2, 2)
    projection["GRID_CELL_SIZE_REFLECTIVE"] = _f(PIXEL, 2)
    projection["GRID_CELL_SIZE_THERMAL"] = _f(PIXEL, 2)
    if level == 1:
        projection["PANCHROMATIC_LINES"] = Bare(str(2 * lines - 1))
        projection["PANCHROMATIC_SAMPLES"] = Bare(str(2 * samples - 1))
    projection.update(
        {
            "REFLECTIVE_LINES": Bare(str(lines)),
            "REFLECTIVE_SAMPLES": Bare(str(samples)),
            "THERMAL_LINES": Bare(str(lines)),
            "THERMAL_SAMPLES": Bare(str(samples)),
            "ORIENTATION": "NORTH_UP",
        }
    )
    for name in ("UL", "UR", "LL", "LR"):
        projection[f"CORNER_{name}_LAT_PRODUCT"] = _f(lonlat[name][1], 5)
        projection[f"CORNER_{name}_LON_PRODUCT"] = _f(lonlat[name][0], 5)
    for name in ("UL", "UR", "LL", "LR"):
        projection[f"CORNER_{name}_PROJECTION_X_PRODUCT"] = _f(corners[name][0], 3)
        projection[f"CORNER_{name}_PROJECTION_Y_PRODUCT"] = _f(corners[name][1], 3)

    tree: Tree = {
        "PRODUCT_CONTENTS": contents,
        "IMAGE_ATTRIBUTES": image,
        "PROJECTION_ATTRIBUTES": projection,
    }
    if level == 2:
        assert scene.l2_generated is not None
        tree["LEVEL2_PROCESSING_RECORD"] = {
            "ORIGIN": "Image courtesy of the U.S. Geological Survey",
            "DIGITAL_OBJECT_IDENTIFIER": DOI_L2,
            "REQUEST_ID": f"EMU{scene.seed:010d}_00001",
            "LANDSAT_PRODUCT_ID": pid,
            "PROCESSING_LEVEL": "L2SP",
            "OUTPUT_FORMAT": "GEOTIFF",
            "DATE_PRODUCT_GENERATED": scene.l2_generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "PROCESSING_SOFTWARE_VERSION": "LPGS_16.3.0",
            "ALGORITHM_SOURCE_SURFACE_REFLECTANCE": "LaSRC_1.6.0",
            "ALGORITHM_SOURCE_SURFACE_TEMPERATURE": "st_1.5.0",
        }
        sr: Tree = {}
        for b in range(1, 8):
            sr[f"REFLECTANCE_MAXIMUM_BAND_{b}"] = Bare("1.602213")
            sr[f"REFLECTANCE_MINIMUM_BAND_{b}"] = Bare("-0.199972")
        for b in range(1, 8):
            sr[f"QUANTIZE_CAL_MAX_BAND_{b}"] = Bare("65535")
            sr[f"QUANTIZE_CAL_MIN_BAND_{b}"] = Bare("1")
        for b in range(1, 8):
            sr[f"REFLECTANCE_MULT_BAND_{b}"] = Bare("2.75e-05")
        for b in range(1, 8):
            sr[f"REFLECTANCE_ADD_BAND_{b}"] = Bare("-0.2")
        tree["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"] = sr
        tree["LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"] = {
            "TEMPERATURE_MAXIMUM_BAND_ST_B10": Bare("372.999941"),
            "TEMPERATURE_MINIMUM_BAND_ST_B10": Bare("149.003418"),
            "QUANTIZE_CAL_MAXIMUM_BAND_ST_B10": Bare("65535"),
            "QUANTIZE_CAL_MINIMUM_BAND_ST_B10": Bare("1"),
            "TEMPERATURE_MULT_BAND_ST_B10": Bare("0.00341802"),
            "TEMPERATURE_ADD_BAND_ST_B10": Bare("149.0"),
        }
    l1_record: Tree = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "DIGITAL_OBJECT_IDENTIFIER": DOI_L1,
        "REQUEST_ID": f"EMU{scene.seed:010d}_00001",
        "LANDSAT_SCENE_ID": scene.entity_id,
        "LANDSAT_PRODUCT_ID": l1_pid,
        "PROCESSING_LEVEL": "L1TP",
        "COLLECTION_CATEGORY": scene.tier,
        "OUTPUT_FORMAT": "GEOTIFF",
        "DATE_PRODUCT_GENERATED": scene.l1_generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "PROCESSING_SOFTWARE_VERSION": "LPGS_16.3.0",
    }
    for suffix, key, _ in L1_FILES:
        l1_record[f"FILE_NAME_{key}"] = f"{l1_pid}_{suffix}"
    l1_record.update(
        {
            "FILE_NAME_ANGLE_COEFFICIENT": f"{l1_pid}_ANG.txt",
            "FILE_NAME_METADATA_ODL": f"{l1_pid}_MTL.txt",
            "FILE_NAME_METADATA_XML": f"{l1_pid}_MTL.xml",
            "DATA_SOURCE_ELEVATION": "GLS2000",
            "GROUND_CONTROL_POINTS_VERSION": Bare("5"),
            "GROUND_CONTROL_POINTS_MODEL": Bare("512"),
            "GEOMETRIC_RMSE_MODEL": Bare("7.512"),
            "GEOMETRIC_RMSE_MODEL_Y": Bare("5.624"),
            "GEOMETRIC_RMSE_MODEL_X": Bare("4.980"),
        }
    )
    tree["LEVEL1_PROCESSING_RECORD"] = l1_record
    rescaling: Tree = {}
    for b in L1_BANDS:
        rescaling[f"RADIANCE_MULT_BAND_{b}"] = Bare(f"{_radiance_mult(b):.4E}")
    for b in L1_BANDS:
        rescaling[f"RADIANCE_ADD_BAND_{b}"] = Bare(f"{-_radiance_mult(b) * 5000:.5f}")
    for b in L1_BANDS[:9]:
        rescaling[f"REFLECTANCE_MULT_BAND_{b}"] = Bare("2.0000E-05")
    for b in L1_BANDS[:9]:
        rescaling[f"REFLECTANCE_ADD_BAND_{b}"] = Bare("-0.100000")
    tree["LEVEL1_RADIOMETRIC_RESCALING"] = rescaling
    tree["LEVEL1_THERMAL_CONSTANTS"] = {
        "K1_CONSTANT_BAND_10": Bare("774.8853"),
        "K1_CONSTANT_BAND_11": Bare("480.8883"),
        "K2_CONSTANT_BAND_10": Bare("1321.0789"),
        "K2_CONSTANT_BAND_11": Bare("1201.1442"),
    }
    tree["LEVEL1_PROJECTION_PARAMETERS"] = {
        "MAP_PROJECTION": "UTM",
        "DATUM": "WGS84",
        "ELLIPSOID": "WGS84",
        "UTM_ZONE": Bare(str(scene.zone)),
        "GRID_CELL_SIZE_PANCHROMATIC": _f(PIXEL / 2, 2),
        "GRID_CELL_SIZE_REFLECTIVE": _f(PIXEL, 2),
        "GRID_CELL_SIZE_THERMAL": _f(PIXEL, 2),
        "ORIENTATION": "NORTH_UP",
        "RESAMPLING_OPTION": "CUBIC_CONVOLUTION",
    }
    return {"LANDSAT_METADATA_FILE": tree}


def _odl_lines(tree: Tree, depth: int = 0) -> list[str]:
    pad = "  " * depth
    lines = []
    for key, value in tree.items():
        if isinstance(value, dict):
            lines.append(f"{pad}GROUP = {key}")
            lines.extend(_odl_lines(value, depth + 1))
            lines.append(f"{pad}END_GROUP = {key}")
        elif isinstance(value, Bare):
            lines.append(f"{pad}{key} = {value}")
        else:
            lines.append(f'{pad}{key} = "{value}"')
    return lines


def mtl_txt(tree: Tree) -> str:
    return "\n".join([*_odl_lines(tree), "END", ""])


def mtl_xml(tree: Tree) -> str:
    def element(key: str, value: object, depth: int) -> list[str]:
        pad = "  " * depth
        if isinstance(value, dict):
            inner = [line for k, v in value.items() for line in element(k, v, depth + 1)]
            return [f"{pad}<{key}>", *inner, f"{pad}</{key}>"]
        return [f"{pad}<{key}>{escape(str(value))}</{key}>"]

    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    for key, value in tree.items():
        lines.extend(element(key, value, 0))
    return "\n".join(lines) + "\n"


def mtl_json(tree: Tree) -> str:
    def plain(value: object) -> object:
        return {k: plain(v) for k, v in value.items()} if isinstance(value, dict) else str(value)

    return json.dumps(plain(tree), indent=2) + "\n"


def ang_txt(scene: SceneRecord, level: int) -> str:
    """An ANG.txt with the parts catalogues read: header, projection and per-band corners."""
    ul_x, ul_y, lines, samples = scene.grid
    corners = scene.corner_pixels()
    img = [((ul_y - y) / PIXEL, (x - ul_x) / PIXEL) for x, y in scene.imaged_corners]
    out = [
        "GROUP = FILE_HEADER",
        f'  LANDSAT_SCENE_ID = "{scene.entity_id}"',
        f'  SPACECRAFT_ID = "LANDSAT_{scene.satellite}"',
        "  NUMBER_OF_BANDS = 11",
        "  BAND_LIST = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)",
        "END_GROUP = FILE_HEADER",
        "GROUP = PROJECTION",
        "  ELLIPSOID_AXES = (6378137.000000, 6356752.314200)",
        '  MAP_PROJECTION = "UTM"',
        '  PROJECTION_UNITS = "METERS"',
        '  DATUM = "WGS84"',
        '  ELLIPSOID = "WGS84"',
        f"  UTM_ZONE = {scene.zone}",
        "  PROJECTION_PARAMETERS = (0.000000, 0.000000, 0.000000, 0.000000, 0.000000, ",
        "                           0.000000, 0.000000, 0.000000, 0.000000, 0.000000, ",
        "                           0.000000, 0.000000, 0.000000, 0.000000, 0.000000)",
    ]
    for name in ("UL", "UR", "LL", "LR"):
        x, y = corners[name]
        out.append(f"  {name}_CORNER = ( {x:.3f},  {y:.3f})")
    out.append("END_GROUP = PROJECTION")
    for band in range(1, 12):
        pan = band == 8
        scale = 2 if pan else 1
        n_lines = 2 * lines - 1 if pan else lines
        n_samps = 2 * samples - 1 if pan else samples
        lines_text = ", ".join(f"{line * scale:12.6f}" for line, _ in img)
        samps_text = ", ".join(f"{samp * scale:12.6f}" for _, samp in img)
        out += [
            f"GROUP = RPC_BAND{band:02d}",
            f"  BAND{band:02d}_NUMBER = {band}",
            f"  BAND{band:02d}_NUM_L1T_LINES = {n_lines}",
            f"  BAND{band:02d}_NUM_L1T_SAMPS = {n_samps}",
            f"  BAND{band:02d}_L1T_IMAGE_CORNER_LINES = ({lines_text})",
            f"  BAND{band:02d}_L1T_IMAGE_CORNER_SAMPS = ({samps_text})",
            f"END_GROUP = RPC_BAND{band:02d}",
        ]
    out.append("END")
    return "\n".join(out) + "\n"
