"""Lon/lat geometry helpers shared by search and catalog: antimeridian splits, winding, rounding."""

from __future__ import annotations

from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient


def crosses_antimeridian(polygon: Polygon) -> bool:
    """Whether a ring jumps across 180 degrees (an edge spanning more than 180 degrees of longitude).

    Edges running exactly from -180 to 180 are a polygon covering all longitudes, not a jump.
    """
    coords = list(polygon.exterior.coords)
    for (x1, _), (x2, _) in zip(coords, coords[1:], strict=False):
        if abs(x2 - x1) > 180 and {x1, x2} != {-180.0, 180.0}:
            return True
    return False


def split_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """A polygon whose longitudes jump by more than 180 degrees, as parts on each side of 180."""
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    out: list[BaseGeometry] = []
    for part in parts:
        if not crosses_antimeridian(part):
            out.append(part)
            continue
        shifted = Polygon([(x + 360 if x < 0 else x, y) for x, y in part.exterior.coords])
        east = shifted.intersection(box(0, -90, 180, 90))
        west = shifted.intersection(box(180, -90, 360, 90))
        out.append(east)
        for piece in getattr(west, "geoms", [west]):
            if not piece.is_empty:
                out.append(Polygon([(x - 360, y) for x, y in piece.exterior.coords]))
    polygons = [p for g in out if not g.is_empty for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def tidy(geom: BaseGeometry, digits: int = 6) -> BaseGeometry:
    """Counter-clockwise exterior rings (RFC 7946), coordinates rounded."""

    def fix(polygon: Polygon) -> Polygon:
        ring = [(round(x, digits), round(y, digits)) for x, y in orient(polygon, 1.0).exterior.coords]
        return Polygon(ring)

    if isinstance(geom, MultiPolygon):
        return MultiPolygon([fix(p) for p in geom.geoms])
    return fix(geom)


def stac_bbox(geom: BaseGeometry) -> list[float]:
    """bbox of a footprint; across the antimeridian west > east, as STAC asks."""
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    minx, miny, maxx, maxy = geom.bounds
    east = [p for p in parts if p.bounds[0] >= 0]
    west = [p for p in parts if p.bounds[2] <= 0]
    if east and west and maxx >= 179.999 and minx <= -179.999:
        return [min(p.bounds[0] for p in east), miny, max(p.bounds[2] for p in west), maxy]
    return [minx, miny, maxx, maxy]
