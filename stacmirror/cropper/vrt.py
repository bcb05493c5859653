"""A crop that copies no pixels: a small GDAL VRT naming a window of its source file.

The VRT carries what a copied crop carries (georeferencing, data type, nodata, scale, offset,
descriptions, tags) and one ``SimpleSource`` per band whose source rectangle is the crop's window
and whose destination is the whole VRT: GDAL, and so rasterio, odc-stac and stackstac, read the
source's own pixels through it, unresampled. The source is named relative to the VRT, so a mirror
can be moved or served as a whole.

There is no registered media type for VRT files. Ours sits under ``image/`` (in the ``x.`` tree
for unregistered types) because that is what odc-stac takes as band data; it is not a type
STAC Browser tries to draw on its map, which it could not do for a VRT.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import rasterio
from rasterio.dtypes import _gdal_typename
from rasterio.windows import Window

from ..fileio import write_bytes_atomic

VRT_MEDIA_TYPE = "image/x.gdal-vrt+xml"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def window_vrt(
    src: rasterio.DatasetReader, target: Path, window: tuple[int, int, int, int], source: Path | None = None
) -> bytes:
    """The VRT XML showing the ``(col, row, width, height)`` window of the open raster ``src``, as
    written at ``target`` (the source is referred to relative to ``target``'s folder; ``source`` is
    where it sits in the mirror's layout, when ``src`` was opened by another name, in a store)."""
    col, row, width, height = window
    source = Path(source or src.name)
    transform = src.window_transform(Window(col, row, width, height))
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if src.crs is not None:
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = src.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (transform.c, transform.a, transform.b, transform.f, transform.d, transform.e)
    )
    _metadata(root, src.tags())
    relative = os.path.relpath(source, target.parent)
    for index in src.indexes:
        dtype = _gdal_typename(src.dtypes[index - 1])
        band = ET.SubElement(root, "VRTRasterBand", dataType=dtype, band=str(index))
        _metadata(band, src.tags(index))
        description = src.descriptions[index - 1]
        if description:
            ET.SubElement(band, "Description").text = description
        if src.nodatavals[index - 1] is not None:
            ET.SubElement(band, "NoDataValue").text = _number(src.nodatavals[index - 1])
        ET.SubElement(band, "ColorInterp").text = src.colorinterp[index - 1].name.capitalize()
        if src.offsets[index - 1] != 0:
            ET.SubElement(band, "Offset").text = repr(float(src.offsets[index - 1]))
        if src.scales[index - 1] != 1:
            ET.SubElement(band, "Scale").text = repr(float(src.scales[index - 1]))
        simple = ET.SubElement(band, "SimpleSource")
        ET.SubElement(simple, "SourceFilename", relativeToVRT="1").text = relative.replace(os.sep, "/")
        ET.SubElement(simple, "SourceBand").text = str(index)
        block_y, block_x = src.block_shapes[index - 1]
        ET.SubElement(
            simple,
            "SourceProperties",
            RasterXSize=str(src.width),
            RasterYSize=str(src.height),
            DataType=dtype,
            BlockXSize=str(block_x),
            BlockYSize=str(block_y),
        )
        ET.SubElement(simple, "SrcRect", xOff=str(col), yOff=str(row), xSize=str(width), ySize=str(height))
        ET.SubElement(simple, "DstRect", xOff="0", yOff="0", xSize=str(width), ySize=str(height))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8") + b"\n"


def write_window_vrt(
    src: rasterio.DatasetReader, target: Path, window: tuple[int, int, int, int], source: Path | None = None
) -> None:
    """Write :func:`window_vrt` to ``target`` atomically."""
    write_bytes_atomic(target, window_vrt(src, target, window, source))


def _metadata(parent: ET.Element, tags: dict[str, str]) -> None:
    if not tags:
        return
    block = ET.SubElement(parent, "Metadata")
    for key, value in sorted(tags.items()):
        ET.SubElement(block, "MDI", key=key).text = value
