"""Map pages frame footprints that cross the antimeridian on the footprints, not on the world."""

from __future__ import annotations

import math
import re

from shapely.geometry import MultiPolygon, box

from stacmirror.serve.maps import HEIGHT, WIDTH, feature, render


def _extent(page: str) -> tuple[float, float, float, float]:
    numbers = [tuple(map(float, p.split(","))) for d in re.findall(r'<path class="fp[^"]*" d="([^"]+)"', page)
               for p in re.findall(r"-?[\d.]+,-?[\d.]+", d)]  # fmt: skip
    xs, ys = [x for x, _ in numbers], [y for _, y in numbers]
    return min(xs), min(ys), max(xs), max(ys)


def test_three_scenes_at_180_degrees_fill_the_map() -> None:
    # three ~9 km scenes around 180° in Chukotka, split at the antimeridian as the catalog splits them
    scenes = [
        feature(
            MultiPolygon([box(179.9, 64.0, 180.0, 64.08), box(-180.0, 64.0, -179.95, 64.08)]), "scene", "a"
        ),
        feature(box(-179.99, 64.05, -179.85, 64.13), "scene", "b"),
        feature(box(179.8, 63.95, 179.97, 64.03), "scene", "c"),
    ]
    page = render(scenes, "Chukotka")
    west, south, east, north = _extent(page)
    assert east - west > WIDTH / 3 or north - south > HEIGHT / 3  # drawn large, not as slivers
    assert west >= 0 and east <= WIDTH and south >= 0 and north <= HEIGHT
    labels = [float(x) for x in re.findall(r'class="gridlabel" x="[^"]+" y="[^"]+">(-?[\d.]+)°', page)]
    assert labels and all(-180 <= x <= 180 for x in labels)  # real longitudes, also past 180°


def test_ordinary_areas_are_not_shifted() -> None:
    page = render([feature(box(-122.6, 38.0, -120.0, 39.6), "scene", "a")], "Sacramento")
    assert re.search(r">-12[0-3]°<", page)


def _tiles(page: str) -> list[tuple[int, int, int, float, float, float, float]]:
    found = re.findall(
        r'<image class="tile" href="https://tile\.openstreetmap\.org/(\d+)/(\d+)/(\d+)\.png" '
        r'x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="([\d.]+)"',
        page,
    )
    return [
        (int(z), int(x), int(y), float(px), float(py), float(w), float(h)) for z, x, y, px, py, w, h in found
    ]


def _slippy(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """The standard OpenStreetMap tile coordinates of a point (tile index plus the fraction)."""
    n = 2**zoom
    return (lon + 180) / 360 * n, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n


def test_footprints_sit_on_the_openstreetmap_tiles() -> None:
    page = render([feature(box(-122.6, 38.0, -120.0, 39.6), "scene", "a")], "Sacramento")
    tiles = _tiles(page)
    assert tiles and "OpenStreetMap</a> contributors" in page
    zoom = tiles[0][0]
    assert all(t[0] == zoom for t in tiles) and 4 <= zoom <= 9
    west, _, _, south = _extent(page)  # the south-west corner on the page (y grows downwards)
    tx, ty = _slippy(-122.6, 38.0, zoom)
    under = [t for t in tiles if t[1] == int(tx) and t[2] == int(ty)]
    assert len(under) == 1
    _, _, _, left, top, width, _ = under[0]
    size = width - 0.5  # drawn half a pixel larger, so no seam shows between tiles
    assert abs(left + (tx - int(tx)) * size - west) < 0.6
    assert abs(top + (ty - int(ty)) * size - south) < 0.6
    covered_x = min(t[3] for t in tiles), max(t[3] + t[5] for t in tiles)
    covered_y = min(t[4] for t in tiles), max(t[4] + t[6] for t in tiles)
    assert covered_x[0] <= 0 and covered_x[1] >= WIDTH and covered_y[0] <= 0 and covered_y[1] >= HEIGHT


def test_offline_pages_link_nothing() -> None:
    page = render([feature(box(-122.6, 38.0, -120.0, 39.6), "scene", "a")], "Sacramento", offline=True)
    assert "<image" not in page and not re.search(
        r"https?://", page.replace("http://www.w3.org/2000/svg", "")
    )


def test_tiles_across_the_antimeridian_wrap_round() -> None:
    scenes = [
        feature(box(179.8, 63.95, 179.97, 64.03), "scene", "c"),
        feature(box(-179.99, 64.05, -179.85, 64.13), "scene", "b"),
    ]
    tiles = _tiles(render(scenes, "Chukotka"))
    zoom = tiles[0][0]
    xs = {t[1] for t in tiles}
    assert all(0 <= x < 2**zoom for x in xs) and {0, 2**zoom - 1} <= xs  # both sides of 180°
