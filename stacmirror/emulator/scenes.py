"""The emulator's synthetic Landsat 8/9 archive: where scenes are and what they say.

Scene centres follow a WRS-2-like grid derived from the real orbit (98.2 degree
inclination, 233 paths, 248 rows per orbit, descending node near row 60), so
footprints are tilted the way real ones are. Every scene is described in its
UTM zone the way USGS does it: EPSG:326xx even south of the equator (negative
northings), 30 m pixels whose centres sit on multiples of 30 m, and an imaged
area (a rotated rectangle) inside a nodata collar.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field, replace
from functools import cached_property

from rasterio.warp import transform as warp_transform

INCLINATION = math.radians(98.2)
ORBIT_MINUTES = 98.9
PATHS, ROWS = 233, 248
PIXEL = 30.0

# (path, row) sets the default archive covers: one northern, one southern region.
DEFAULT_REGIONS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((44, 33), (44, 34), (43, 34)),  # Sacramento valley, California (UTM 10N)
    ((91, 84),),  # Victoria, Australia (UTM 55, negative northings)
)
L9_FIRST_DAY = dt.date(2021, 10, 31)
ARCHIVE_START = dt.date(2021, 9, 1)


def wrs_point(path: int, row: float) -> tuple[float, float]:
    """Lon/lat of the ground track of ``path`` at (fractional) ``row``."""
    arg = math.radians((row - 60.0) * 360.0 / ROWS)  # orbital arc from the descending node
    lat = -math.degrees(math.asin(math.sin(INCLINATION) * math.sin(arg)))
    along = math.degrees(math.atan2(math.cos(INCLINATION) * math.sin(arg), math.cos(arg)))
    earth_turn = math.degrees(arg) / 360.0 * ORBIT_MINUTES / 1436.0 * 360.0
    lon = -64.6 - (path - 1) * 360.0 / PATHS + along - earth_turn
    lon = (lon + 180.0) % 360.0 - 180.0
    return lon, lat


def utm_zone(lon: float) -> int:
    return int((lon + 180.0) // 6.0) % 60 + 1


@dataclass(frozen=True)
class SceneSize:
    """Pixels of the imaged area across and along track (30 m)."""

    across: int
    along: int

    @classmethod
    def small(cls) -> SceneSize:
        return cls(300, 320)

    @classmethod
    def full(cls) -> SceneSize:
        return cls(6150, 6300)  # about 185 x 190 km, as a real WRS-2 scene


@dataclass(frozen=True)
class SceneRecord:
    """Everything the emulator says about one acquisition."""

    satellite: int
    path: int
    row: int
    acquired: dt.date
    center_seconds: float  # seconds after midnight UTC
    cloud_cover: float
    tier: str
    l1_generated: dt.datetime
    l2_generated: dt.datetime | None  # None: no Level-2 product (RT scenes)
    sun_azimuth: float
    sun_elevation: float
    size: SceneSize
    shift: tuple[float, float]  # along/across-track offset of this acquisition, metres
    seed: int
    clouds: tuple[tuple[float, float, float], ...] = field(default=())  # (u, v, radius) metres

    # -- identifiers ----------------------------------------------------------------------

    @property
    def doy(self) -> int:
        return self.acquired.timetuple().tm_yday

    @property
    def entity_id(self) -> str:
        return f"LC{self.satellite}{self.path:03d}{self.row:03d}{self.acquired.year}{self.doy:03d}LGN00"

    def display_id(self, level: int) -> str:
        if level == 1:
            correction, generated = "L1TP", self.l1_generated
        else:
            if self.l2_generated is None:
                raise ValueError(f"{self.entity_id} has no Level-2 product")
            correction, generated = "L2SP", self.l2_generated
        return (
            f"LC0{self.satellite}_{correction}_{self.path:03d}{self.row:03d}_"
            f"{self.acquired:%Y%m%d}_{generated:%Y%m%d}_02_{self.tier}"
        )

    @property
    def scene_time(self) -> dt.datetime:
        midnight = dt.datetime.combine(self.acquired, dt.time(), tzinfo=dt.timezone.utc)
        return midnight + dt.timedelta(seconds=self.center_seconds)

    # -- geometry (UTM) -------------------------------------------------------------------

    @cached_property
    def centre_lonlat(self) -> tuple[float, float]:
        return wrs_point(self.path, self.row)

    @property
    def zone(self) -> int:
        return utm_zone(self.centre_lonlat[0])

    @property
    def epsg(self) -> int:
        return 32600 + self.zone  # USGS uses the northern zone everywhere

    @cached_property
    def _frame(self) -> tuple[float, float, float, float]:
        """Centre (x, y) in UTM and the unit along-track vector (ex, ey)."""
        lon, lat = self.centre_lonlat
        ahead = wrs_point(self.path, self.row + 0.05)
        xs, ys = warp_transform("EPSG:4326", f"EPSG:{self.epsg}", [lon, ahead[0]], [lat, ahead[1]])
        ex, ey = xs[1] - xs[0], ys[1] - ys[0]
        norm = math.hypot(ex, ey)
        ex, ey = ex / norm, ey / norm
        cx = xs[0] + self.shift[0] * ex - self.shift[1] * ey
        cy = ys[0] + self.shift[0] * ey + self.shift[1] * ex
        return cx, cy, ex, ey

    def to_world(self, u: float, v: float) -> tuple[float, float]:
        """Scene frame (u across track, v along track, metres from centre) to UTM x/y."""
        cx, cy, ex, ey = self._frame
        # across-track unit vector is the along-track one turned clockwise
        return cx + u * ey + v * ex, cy - u * ex + v * ey

    def to_scene(self, x: float, y: float) -> tuple[float, float]:
        cx, cy, ex, ey = self._frame
        dx, dy = x - cx, y - cy
        return dx * ey - dy * ex, dx * ex + dy * ey

    @cached_property
    def imaged_corners(self) -> tuple[tuple[float, float], ...]:
        """Corners of the imaged area in UTM, ordered top, right, bottom, left (as ANG.txt)."""
        hu, hv = self.size.across * PIXEL / 2, self.size.along * PIXEL / 2
        corners = [self.to_world(u, v) for u, v in ((-hu, hv), (hu, hv), (hu, -hv), (-hu, -hv))]
        top = max(corners, key=lambda c: c[1])
        right = max(corners, key=lambda c: c[0])
        bottom = min(corners, key=lambda c: c[1])
        left = min(corners, key=lambda c: c[0])
        return top, right, bottom, left

    @cached_property
    def grid(self) -> tuple[float, float, int, int]:
        """(UL x, UL y) of the upper-left pixel centre, lines, samples: the product grid."""
        xs = [c[0] for c in self.imaged_corners]
        ys = [c[1] for c in self.imaged_corners]
        margin = 3 * PIXEL
        ul_x = math.floor((min(xs) - margin) / PIXEL) * PIXEL
        ul_y = math.ceil((max(ys) + margin) / PIXEL) * PIXEL
        samples = int(math.ceil((max(xs) + margin - ul_x) / PIXEL)) + 1
        lines = int(math.ceil((ul_y - (min(ys) - margin)) / PIXEL)) + 1
        return ul_x, ul_y, lines, samples

    def corner_pixels(self) -> dict[str, tuple[float, float]]:
        """Pixel-centre coordinates of the grid corners, as the MTL's *_PROJECTION_*_PRODUCT."""
        ul_x, ul_y, lines, samples = self.grid
        lr_x, lr_y = ul_x + (samples - 1) * PIXEL, ul_y - (lines - 1) * PIXEL
        return {"UL": (ul_x, ul_y), "UR": (lr_x, ul_y), "LL": (ul_x, lr_y), "LR": (lr_x, lr_y)}

    def to_lonlat(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        lons, lats = warp_transform(
            f"EPSG:{self.epsg}", "EPSG:4326", [p[0] for p in points], [p[1] for p in points]
        )
        return list(zip(lons, lats, strict=False))

    @cached_property
    def footprint_lonlat(self) -> list[tuple[float, float]]:
        """Closed, counter-clockwise lon/lat ring of the imaged area."""
        top, right, bottom, left = self.imaged_corners
        ring = self.to_lonlat([top, left, bottom, right])  # counter-clockwise on the map
        return [*ring, ring[0]]

    @property
    def cloud_cover_land(self) -> float:
        return round(min(100.0, self.cloud_cover * 1.1), 2)


def _cloud_discs(rng: random.Random, size: SceneSize, cover: float) -> tuple[tuple[float, float, float], ...]:
    """Non-overlapping discs covering ``cover`` percent of the imaged area exactly."""
    if cover <= 0:
        return ()
    width, height = size.across * PIXEL, size.along * PIXEL
    cells = 2 if cover > 20 else 1
    total = cover / 100.0 * width * height
    radius = math.sqrt(total / (cells * cells) / math.pi)
    cw, ch = width / cells, height / cells
    discs = []
    for i in range(cells):
        for j in range(cells):
            slack_u = max(0.0, cw / 2 - radius - PIXEL)
            slack_v = max(0.0, ch / 2 - radius - PIXEL)
            u = -width / 2 + cw * (i + 0.5) + rng.uniform(-slack_u, slack_u)
            v = -height / 2 + ch * (j + 0.5) + rng.uniform(-slack_v, slack_v)
            discs.append((u, v, radius))
    return tuple(discs)


def _sun(acquired: dt.date, lat: float) -> tuple[float, float]:
    """A plausible mid-morning sun: elevation from season and latitude, azimuth south-east."""
    declination = 23.44 * math.sin(math.radians(360.0 / 365.0 * (acquired.timetuple().tm_yday - 81)))
    elevation = max(5.0, 90.0 - abs(lat - declination) - 25.0)
    azimuth = 145.0 if lat >= 0 else 40.0
    return azimuth + (declination / 4.0 if lat >= 0 else -declination / 4.0), elevation


def build_archive(
    scenes: int = 36,
    seed: int = 0,
    size: SceneSize | None = None,
    regions: tuple[tuple[tuple[int, int], ...], ...] = DEFAULT_REGIONS,
    start: dt.date = ARCHIVE_START,
    *,
    today: dt.date | None = None,
    reprocess_share: float = 0.0,
) -> list[SceneRecord]:
    """A deterministic archive of ``scenes`` acquisitions, newest first.

    Each path/row is revisited every 16 days by Landsat 8 and, from the first
    Landsat 9 data day on, 8 days later by Landsat 9. Larger archives take more
    rows south of each region rather than more decades.

    Without ``today`` the archive is a snapshot in which the newest few days are Real-Time tier.
    With ``today`` it is the archive as USGS would show it on that day (see :func:`product_at`):
    acquisitions not yet published are absent, recent ones are Real-Time, and the products of
    ``reprocess_share`` of the acquisitions carry a later processing date once reprocessed.
    """
    rng = random.Random(seed)
    size = size or SceneSize.small()
    tiles = [tile for region in regions for tile in region]
    per_tile_cap = 46  # about one year of L8 + L9 revisits
    extra_rows = 0
    while len(tiles) * per_tile_cap < scenes:
        extra_rows += 1
        tiles += [(p, r + extra_rows * 1) for region in regions for (p, r) in region[:1]]
        tiles = list(dict.fromkeys(tiles))
    per_tile = math.ceil(scenes / len(tiles))
    records: list[SceneRecord] = []
    for path, row in tiles:
        # adjacent paths are imaged on different days, as with the real 16-day cycle
        day = start + dt.timedelta(days=(path * 7) % 16)
        count = 0
        while count < per_tile:
            for satellite, offset in ((8, 0), (9, 8)):
                acquired = day + dt.timedelta(days=offset)
                if satellite == 9 and acquired < L9_FIRST_DAY or count >= per_tile:
                    continue
                records.append(_make_record(rng, satellite, path, row, acquired, size))
                count += 1
            day += dt.timedelta(days=16)
    records.sort(key=lambda r: (r.acquired, r.path, r.row), reverse=True)
    records = records[:scenes]
    if today is not None:
        dated = (product_at(r, today, reprocess_share) for r in records)
        return [r for r in dated if r is not None]
    newest = max((r.acquired for r in records), default=start)
    # the newest acquisitions are Real-Time tier with no Level-2 product yet, as at USGS
    return [_as_real_time(r) if (newest - r.acquired).days < 3 else r for r in records]


# How products change after acquisition (the emulator's clock, ``--today``). Real figures: Level-1
# Real-Time data within a day or so; Tier 1/2 replaces it after about 14-26 days, when definitive
# ephemeris is in; Level-2 products follow the tiered Level-1. Reprocessing campaigns give a
# product a later processing date months or years on. The entity id never changes.
PUBLISH_DAYS = (1, 3)
TIERED_DAYS = (14, 26)
REPROCESS_DAYS = (60, 400)


def product_at(record: SceneRecord, today: dt.date, reprocess_share: float = 0.0) -> SceneRecord | None:
    """The acquisition's product as listed on ``today``, or None while it is not yet published.

    The history is drawn from the record's own seed, so it is the same whatever ``today`` is, and
    ``reprocess_share`` only decides whether the reprocessing step happens."""
    rng = random.Random(record.seed ^ 0x5EED7153)
    published = record.acquired + dt.timedelta(days=rng.randint(*PUBLISH_DAYS))
    tiered = record.acquired + dt.timedelta(days=rng.randint(*TIERED_DAYS))
    reprocessed = record.acquired + dt.timedelta(days=rng.randint(*REPROCESS_DAYS))
    reprocess = rng.random() < reprocess_share
    minutes = dt.timedelta(seconds=rng.randint(300, 3000))
    at = dt.time(4, 0)
    if today < published:
        return None
    if today < tiered:
        l1 = dt.datetime.combine(published, at, tzinfo=dt.timezone.utc)
        return replace(record, tier="RT", l1_generated=l1, l2_generated=None)
    day = reprocessed if reprocess and today >= reprocessed else tiered
    l1 = dt.datetime.combine(day, at, tzinfo=dt.timezone.utc)
    return replace(record, tier=final_tier(record.cloud_cover), l1_generated=l1, l2_generated=l1 + minutes)


def final_tier(cloud_cover: float) -> str:
    """Tier 2 for the cloudiest scenes (whose geometry cannot be checked well), else Tier 1."""
    return "T2" if cloud_cover > 60 else "T1"


def _as_real_time(record: SceneRecord) -> SceneRecord:
    return replace(record, tier="RT", l2_generated=None)


def _make_record(
    rng: random.Random, satellite: int, path: int, row: int, acquired: dt.date, size: SceneSize
) -> SceneRecord:
    lon, lat = wrs_point(path, row)
    cover = round(rng.choice([0.0, rng.uniform(0, 15), rng.uniform(0, 75)]), 2)
    azimuth, elevation = _sun(acquired, lat)
    generated = dt.datetime.combine(acquired, dt.time(4, 0), tzinfo=dt.timezone.utc)
    l1 = generated + dt.timedelta(days=rng.randint(1, 9), seconds=rng.randint(0, 80000))
    l2 = l1 + dt.timedelta(seconds=rng.randint(300, 3000))
    shift = (rng.uniform(-12, 12) * PIXEL, rng.uniform(-5, 5) * PIXEL)
    seconds = (10.0 - lon / 15.0) % 24 * 3600 + rng.uniform(0, 30)  # about 10:00 local time
    return SceneRecord(
        satellite=satellite,
        path=path,
        row=row,
        acquired=acquired,
        center_seconds=seconds,
        cloud_cover=cover,
        tier=final_tier(cover),
        l1_generated=l1,
        l2_generated=l2,
        sun_azimuth=round(azimuth + rng.uniform(-2, 2), 8),
        sun_elevation=round(elevation + rng.uniform(-1, 1), 8),
        size=size,
        shift=shift,
        seed=rng.getrandbits(32),
        clouds=_cloud_discs(rng, size, cover),
    )
