"""Map pages frame footprints that cross the antimeridian on the footprints, not on the world."""

from __future__ import annotations

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
