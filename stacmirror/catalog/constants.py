"""What each Landsat Collection 2 file is, per sensor and level: asset key, bands, units, QA bits.

Asset keys follow the common band names USGS and stactools use. Scale and
offset of reflectance, temperature and radiance bands are read from the MTL
at build time (``mtl_scale``); only the ST auxiliary scales, which the MTL
does not carry, are fixed here (from the product guide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STAC_VERSION = "1.1.0"
EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    # v1.2.0 allows proj:code *and* proj:epsg; stackstac 0.5 reads only proj:epsg
    "proj": "https://stac-extensions.github.io/projection/v1.2.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "landsat": "https://stac-extensions.github.io/landsat/v2.0.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
    "sci": "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "accuracy": "https://stac-extensions.github.io/accuracy/v1.0.0-beta.1/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOTIFF = "image/tiff; application=geotiff"
MEDIA_TYPES = {
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}

SENSORS = {"C": "oli-tirs", "O": "oli-tirs", "T": "tm", "E": "etm", "M": "mss"}
INSTRUMENTS = {
    "OLI_TIRS": ["oli", "tirs"],
    "OLI": ["oli"],
    "TIRS": ["tirs"],
    "ETM": ["etm+"],
    "TM": ["tm"],
    "MSS": ["mss"],
}
SENSOR_TITLES = {"oli-tirs": "OLI/TIRS", "etm": "ETM+", "tm": "TM", "mss": "MSS"}


@dataclass(frozen=True)
class Band:
    name: str
    common_name: str | None
    description: str
    center: float
    fwhm: float

    def eo(self) -> dict[str, Any]:
        band: dict[str, Any] = {"name": self.name}
        if self.common_name:
            band["common_name"] = self.common_name
        band.update(
            description=self.description, center_wavelength=self.center, full_width_half_max=self.fwhm
        )
        return band


@dataclass(frozen=True)
class AssetSpec:
    key: str
    title: str
    description: str
    roles: tuple[str, ...]
    band: Band | None = None
    unit: str | None = None
    scale: float | None = None
    offset: float | None = None
    mtl_scale: tuple[str, str, str] | None = None  # (group, MULT key, ADD key)
    bitfields: str | None = None  # name in BITFIELDS
    gsd: float | None = None  # native resolution when it differs from the grid (thermal)


def _bit(
    name: str,
    offset: int,
    description: str,
    length: int = 1,
    classes: list[tuple[int, str, str]] | None = None,
):
    if classes is None:
        classes = [(0, f"not_{name}", f"{description} not set"), (1, name, description)]
    return {
        "name": name,
        "description": description,
        "offset": offset,
        "length": length,
        "classes": [{"value": v, "name": n, "description": d} for v, n, d in classes],
    }


def _confidence(name: str, offset: int, label: str):
    levels = [
        (0, "not_set", "No confidence level set"),
        (1, "low", f"Low confidence {label}"),
        (2, "medium", f"Medium confidence {label}"),
        (3, "high", f"High confidence {label}"),
    ]
    return _bit(name, offset, f"{label.capitalize()} confidence levels", 2, levels)


_QA_COMMON = [
    _bit("fill", 0, "Image or fill data", classes=[(0, "not_fill", "Image data"), (1, "fill", "Fill data")]),
    _bit("dilated_cloud", 1, "Dilated cloud"),
]
BITFIELDS: dict[str, list[dict[str, Any]]] = {
    "qa_pixel_oli": [
        *_QA_COMMON,
        _bit("cirrus", 2, "High confidence cirrus"),
        _bit("cloud", 3, "High confidence cloud"),
        _bit("cloud_shadow", 4, "High confidence cloud shadow"),
        _bit("snow", 5, "High confidence snow/ice"),
        _bit("clear", 6, "Clear (no cloud, no dilated cloud)"),
        _bit("water", 7, "Water"),
        _confidence("cloud_confidence", 8, "cloud"),
        _confidence("cloud_shadow_confidence", 10, "cloud shadow"),
        _confidence("snow_confidence", 12, "snow/ice"),
        _confidence("cirrus_confidence", 14, "cirrus"),
    ],
    "qa_pixel_tm": [
        *_QA_COMMON,
        _bit("cloud", 3, "High confidence cloud"),
        _bit("cloud_shadow", 4, "High confidence cloud shadow"),
        _bit("snow", 5, "High confidence snow/ice"),
        _bit("clear", 6, "Clear (no cloud, no dilated cloud)"),
        _bit("water", 7, "Water"),
        _confidence("cloud_confidence", 8, "cloud"),
        _confidence("cloud_shadow_confidence", 10, "cloud shadow"),
        _confidence("snow_confidence", 12, "snow/ice"),
    ],
    "qa_pixel_mss": [
        _bit(
            "fill", 0, "Image or fill data", classes=[(0, "not_fill", "Image data"), (1, "fill", "Fill data")]
        ),
        _bit("cloud", 3, "High confidence cloud"),
        _confidence("cloud_confidence", 8, "cloud"),
    ],
    "qa_radsat_oli": [
        *[_bit(f"band{b}", b - 1, f"Band {b} radiometric saturation") for b in range(1, 8)],
        _bit("band9", 8, "Band 9 radiometric saturation"),
        _bit("occlusion", 11, "Terrain occlusion"),
    ],
    "qa_radsat_etm": [
        *[_bit(f"band{b}", b - 1, f"Band {b} radiometric saturation") for b in range(1, 6)],
        _bit("band6L", 5, "Band 6 low-gain radiometric saturation"),
        _bit("band7", 6, "Band 7 radiometric saturation"),
        _bit("band6H", 8, "Band 6 high-gain radiometric saturation"),
        _bit("dropped", 9, "Dropped pixel"),
    ],
    "qa_radsat_tm": [
        *[_bit(f"band{b}", b - 1, f"Band {b} radiometric saturation") for b in range(1, 8)],
        _bit("dropped", 9, "Dropped pixel"),
    ],
    "qa_aerosol": [
        _bit("fill", 0, "Fill data"),
        _bit("retrieval", 1, "Valid aerosol retrieval"),
        _bit("water", 2, "Water"),
        _bit("interpolated", 5, "Aerosol interpolated"),
        _bit(
            "level",
            6,
            "Aerosol level",
            2,
            [
                (0, "climatology", "No aerosol correction applied"),
                (1, "low", "Low aerosol level"),
                (2, "medium", "Medium aerosol level"),
                (3, "high", "High aerosol level"),
            ],
        ),
    ],
    "cloud_qa": [
        _bit("ddv", 0, "Dark dense vegetation"),
        _bit("cloud", 1, "Cloud"),
        _bit("cloud_shadow", 2, "Cloud shadow"),
        _bit("cloud_adjacent", 3, "Adjacent to cloud"),
        _bit("snow", 4, "Snow"),
        _bit("water", 5, "Water"),
    ],
}

OLI = {
    "B1": Band("OLI_B1", "coastal", "Coastal/Aerosol", 0.44, 0.02),
    "B2": Band("OLI_B2", "blue", "Visible blue", 0.48, 0.06),
    "B3": Band("OLI_B3", "green", "Visible green", 0.56, 0.06),
    "B4": Band("OLI_B4", "red", "Visible red", 0.65, 0.04),
    "B5": Band("OLI_B5", "nir08", "Near infrared", 0.87, 0.03),
    "B6": Band("OLI_B6", "swir16", "Short-wave infrared", 1.61, 0.09),
    "B7": Band("OLI_B7", "swir22", "Short-wave infrared", 2.2, 0.19),
    "B8": Band("OLI_B8", "pan", "Panchromatic", 0.59, 0.18),
    "B9": Band("OLI_B9", "cirrus", "Cirrus", 1.37, 0.02),
    "B10": Band("TIRS_B10", "lwir11", "Long-wave infrared", 10.9, 0.59),
    "B11": Band("TIRS_B11", "lwir12", "Long-wave infrared", 12.0, 1.01),
}
ETM = {
    "B1": Band("ETM_B1", "blue", "Visible blue", 0.48, 0.07),
    "B2": Band("ETM_B2", "green", "Visible green", 0.56, 0.08),
    "B3": Band("ETM_B3", "red", "Visible red", 0.66, 0.06),
    "B4": Band("ETM_B4", "nir08", "Near infrared", 0.84, 0.12),
    "B5": Band("ETM_B5", "swir16", "Short-wave infrared", 1.65, 0.2),
    "B6": Band("ETM_B6", "lwir", "Long-wave infrared", 11.34, 2.05),
    "B7": Band("ETM_B7", "swir22", "Short-wave infrared", 2.2, 0.28),
    "B8": Band("ETM_B8", "pan", "Panchromatic", 0.71, 0.24),
}
TM = {
    "B1": Band("TM_B1", "blue", "Visible blue", 0.49, 0.07),
    "B2": Band("TM_B2", "green", "Visible green", 0.56, 0.08),
    "B3": Band("TM_B3", "red", "Visible red", 0.66, 0.07),
    "B4": Band("TM_B4", "nir08", "Near infrared", 0.83, 0.14),
    "B5": Band("TM_B5", "swir16", "Short-wave infrared", 1.68, 0.2),
    "B6": Band("TM_B6", "lwir", "Long-wave infrared", 11.45, 2.1),
    "B7": Band("TM_B7", "swir22", "Short-wave infrared", 2.22, 0.27),
}
MSS_BANDS = [
    ("green", "Visible green", 0.55, 0.1),
    ("red", "Visible red", 0.65, 0.1),
    ("nir08", "Near infrared", 0.75, 0.1),
    ("nir09", "Near infrared", 0.95, 0.3),
]

SR = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "REFLECTANCE_MULT_BAND_{n}", "REFLECTANCE_ADD_BAND_{n}")
ST = ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", "TEMPERATURE_MULT_BAND_{n}", "TEMPERATURE_ADD_BAND_{n}")
RADIANCE = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIANCE_MULT_BAND_{n}", "RADIANCE_ADD_BAND_{n}")
W_M2 = "watt/steradian/square_meter/micrometer"


def _fmt(scale: tuple[str, str, str], n: str) -> tuple[str, str, str]:
    return scale[0], scale[1].format(n=n), scale[2].format(n=n)


def _metadata_assets() -> dict[str, AssetSpec]:
    return {
        "MTL.txt": AssetSpec(
            "mtl.txt",
            "Product Metadata File (txt)",
            "Collection 2 Product Metadata File (txt)",
            ("metadata",),
        ),
        "MTL.xml": AssetSpec(
            "mtl.xml",
            "Product Metadata File (xml)",
            "Collection 2 Product Metadata File (xml)",
            ("metadata",),
        ),
        "MTL.json": AssetSpec(
            "mtl.json",
            "Product Metadata File (json)",
            "Collection 2 Product Metadata File (json)",
            ("metadata",),
        ),
        "ANG.txt": AssetSpec(
            "ang", "Angle Coefficients File", "Collection 2 Angle Coefficients File", ("metadata",)
        ),
        "MD5.txt": AssetSpec("md5", "MD5 checksums", "Checksums of the product's files", ("metadata",)),
        "GCP.txt": AssetSpec(
            "gcp",
            "Ground Control Points",
            "Ground control points used for geometric correction",
            ("metadata",),
        ),
    }


def _qa(sensor: str, level: int) -> dict[str, AssetSpec]:
    family = "oli" if sensor == "oli-tirs" else ("mss" if sensor == "mss" else "tm")
    radsat = {"oli-tirs": "qa_radsat_oli", "etm": "qa_radsat_etm"}.get(sensor, "qa_radsat_tm")
    return {
        "QA_PIXEL.TIF": AssetSpec(
            "qa_pixel",
            "Pixel Quality Assessment Band",
            f"Collection 2 Level-{level} Pixel Quality Assessment Band (QA_PIXEL)",
            ("cloud", "cloud-shadow", "snow-ice", "water-mask"),
            unit="bit index",
            bitfields=f"qa_pixel_{family}",
        ),
        "QA_RADSAT.TIF": AssetSpec(
            "qa_radsat",
            "Radiometric Saturation and Terrain Occlusion Quality Assessment Band",
            f"Collection 2 Level-{level} Radiometric Saturation Quality Assessment Band",
            ("saturation",),
            unit="bit index",
            bitfields=radsat,
        ),
    }


def _l2(sensor: str) -> dict[str, AssetSpec]:
    table = OLI if sensor == "oli-tirs" else (ETM if sensor == "etm" else TM)
    specs: dict[str, AssetSpec] = {}
    reflective = (
        ["1", "2", "3", "4", "5", "6", "7"] if sensor == "oli-tirs" else ["1", "2", "3", "4", "5", "7"]
    )
    for n in reflective:
        band = table[f"B{n}"]
        specs[f"SR_B{n}.TIF"] = AssetSpec(
            band.common_name or f"sr_b{n}",
            f"{band.description} Band (B{n})",
            f"Collection 2 Level-2 {band.description} Band (SR_B{n}) Surface Reflectance",
            ("data", "reflectance"),
            band=band,
            mtl_scale=_fmt(SR, n),
        )
    thermal = "10" if sensor == "oli-tirs" else "6"
    tband = table[f"B{thermal}"]
    specs[f"ST_B{thermal}.TIF"] = AssetSpec(
        tband.common_name or "lwir",
        "Surface Temperature Band",
        f"Collection 2 Level-2 Thermal Infrared Band (ST_B{thermal}) Surface Temperature",
        ("data", "temperature"),
        band=tband,
        unit="kelvin",
        mtl_scale=_fmt(ST, f"ST_B{thermal}"),
        gsd={"oli-tirs": 100.0, "etm": 60.0, "tm": 120.0}[sensor],
    )
    aux = [
        ("ST_ATRAN.TIF", "atran", "Atmospheric Transmittance Band", None, 0.0001),
        ("ST_CDIST.TIF", "cdist", "Cloud Distance Band", "kilometer", 0.01),
        ("ST_DRAD.TIF", "drad", "Downwelled Radiance Band", W_M2, 0.001),
        ("ST_URAD.TIF", "urad", "Upwelled Radiance Band", W_M2, 0.001),
        ("ST_TRAD.TIF", "trad", "Thermal Radiance Band", W_M2, 0.001),
        ("ST_EMIS.TIF", "emis", "Emissivity Band", "emissivity coefficient", 0.0001),
        ("ST_EMSD.TIF", "emsd", "Emissivity Standard Deviation Band", "emissivity coefficient", 0.0001),
        ("ST_QA.TIF", "qa", "Surface Temperature Quality Assessment Band", "kelvin", 0.01),
    ]
    for suffix, key, title, unit, scale in aux:
        roles = ("data", "emissivity") if key in ("emis", "emsd") else ("data",)
        specs[suffix] = AssetSpec(
            key,
            title,
            f"Collection 2 Level-2 {title} ({suffix[:-4]}) Surface Temperature Product",
            roles,
            unit=unit,
            scale=scale,
        )
    if sensor == "oli-tirs":
        specs["SR_QA_AEROSOL.TIF"] = AssetSpec(
            "qa_aerosol",
            "Aerosol Quality Assessment Band",
            "Collection 2 Level-2 Aerosol Quality Assessment Band "
            "(SR_QA_AEROSOL) Surface Reflectance Product",
            ("data-mask", "water-mask"),
            unit="bit index",
            bitfields="qa_aerosol",
        )
    else:
        specs["SR_ATMOS_OPACITY.TIF"] = AssetSpec(
            "atmos_opacity",
            "Atmospheric Opacity Band",
            "Collection 2 Level-2 Atmospheric Opacity Band Surface Reflectance Product",
            ("data",),
            scale=0.001,
        )
        specs["SR_CLOUD_QA.TIF"] = AssetSpec(
            "cloud_qa",
            "Cloud Quality Assessment Band",
            "Collection 2 Level-2 Cloud Quality Assessment Band (SR_CLOUD_QA) Surface Reflectance Product",
            ("cloud", "cloud-shadow", "snow-ice", "water-mask"),
            unit="bit index",
            bitfields="cloud_qa",
        )
    return {**specs, **_qa(sensor, 2), **_metadata_assets()}


def _l1(sensor: str, satellite: int) -> dict[str, AssetSpec]:
    specs: dict[str, AssetSpec] = {}
    if sensor == "mss":
        numbers = ["4", "5", "6", "7"] if satellite <= 3 else ["1", "2", "3", "4"]
        for n, (common, description, center, fwhm) in zip(numbers, MSS_BANDS, strict=True):
            band = Band(f"B{n}", common, description, center, fwhm)
            specs[f"B{n}.TIF"] = AssetSpec(
                common,
                f"{description} Band (B{n})",
                f"Collection 2 Level-1 {description} Band (B{n}) Top of Atmosphere Radiance",
                ("data",),
                band=band,
                unit=W_M2,
                mtl_scale=_fmt(RADIANCE, n),
            )
    else:
        table = OLI if sensor == "oli-tirs" else (ETM if sensor == "etm" else TM)
        for key, band in table.items():
            n = key[1:]
            if sensor == "etm" and n == "6":
                for vcid, common in (("1", "lwir"), ("2", "lwir_high")):
                    suffix = f"B6_VCID_{vcid}"
                    specs[f"{suffix}.TIF"] = AssetSpec(
                        common,
                        f"Thermal Infrared Band (B6, VCID {vcid})",
                        f"Collection 2 Level-1 Thermal Infrared Band ({suffix}) Top of Atmosphere Radiance",
                        ("data",),
                        band=band,
                        unit=W_M2,
                        mtl_scale=_fmt(RADIANCE, f"6_VCID_{vcid}"),
                    )
                continue
            specs[f"B{n}.TIF"] = AssetSpec(
                band.common_name or f"b{n}",
                f"{band.description} Band (B{n})",
                f"Collection 2 Level-1 {band.description} Band (B{n}) Top of Atmosphere Radiance",
                ("data",),
                band=band,
                unit=W_M2,
                mtl_scale=_fmt(RADIANCE, n),
            )
        for angle, title in (
            ("VAA", "View Azimuth Angle"),
            ("VZA", "View Zenith Angle"),
            ("SAA", "Solar Azimuth Angle"),
            ("SZA", "Solar Zenith Angle"),
        ):
            specs[f"{angle}.TIF"] = AssetSpec(
                angle.lower(),
                f"{title} Band",
                f"Collection 2 Level-1 {title} Band (Band 4)",
                ("data",),
                unit="degree",
                scale=0.01,
            )
    return {**specs, **_qa(sensor, 1), **_metadata_assets()}


def asset_specs(sensor: str, level: int, satellite: int) -> dict[str, AssetSpec]:
    """File suffix (after ``<product id>_``) -> what that file is."""
    return _l2(sensor) if level == 2 else _l1(sensor, satellite)
