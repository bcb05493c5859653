"""The emulated scene-search and scene-metadata: filters, paging quirks and metadata records.

A mixin of :class:`.service.Service`, which holds the state it uses."""

from __future__ import annotations

import fnmatch
from typing import Any

from shapely.geometry import Polygon

from .catalogue import (
    FilterSpec,
    filters_for,
)
from .scenes import SceneRecord
from .state import MAX_RESULTS_CAP, ApiError, ApiKey, parse_spatial


class SceneEndpoints:
    def _scenes_of(self, info) -> list[SceneRecord]:
        if not info.synthetic:
            return []
        level = info.level or 2
        withdrawn = set(self.faults.withdrawn)
        return [
            s
            for s in self.scenes
            if (level == 1 or s.l2_generated is not None) and s.entity_id not in withdrawn
        ]

    def ep_scene_search(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        level = info.level or 2
        max_results = int(payload.get("maxResults") or 100)
        max_results = max(1, min(max_results, MAX_RESULTS_CAP))
        start = max(1, int(payload.get("startingNumber") or 1))
        scene_filter = payload.get("sceneFilter") or {}
        matches = [s for s in self._scenes_of(info) if self._matches(s, level, info.alias, scene_filter)]
        excluded = 0
        if payload.get("excludeListName"):  # scenes in that scene list are left out, and counted
            listed = set(self._list(key.user, str(payload["excludeListName"])).get(info.alias, []))
            kept = [s for s in matches if s.entity_id not in listed]
            excluded, matches = len(matches) - len(kept), kept
        descending = str(payload.get("sortDirection") or "DESC").upper() != "ASC"
        matches.sort(key=lambda s: (s.acquired, s.entity_id), reverse=descending)
        page = matches[start - 1 : start - 1 + max_results]
        total = len(matches)
        next_record = start + len(page)
        if next_record > total and not self.faults.next_record_past_end:
            next_record = total  # the live service points back at totalHits on the last page
        metadata_type = payload.get("metadataType")
        return {
            "results": [self._scene_json(s, level, metadata_type) for s in page],
            "recordsReturned": len(page),
            "totalHits": total,
            "totalHitsAccuracy": "exact" if scene_filter else "approximate",
            "isCustomized": False,
            "numExcluded": excluded,
            "startingNumber": start,
            "nextRecord": next_record,
        }

    def _reported_cloud(self, scene: SceneRecord) -> float:
        """The scene's cloud cover, or -1 (no score) for some scenes under a variation."""
        every = self.variation.unknown_cloud_every
        return -1.0 if every and scene.seed % every == 0 else scene.cloud_cover

    def ep_scene_metadata(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        wanted = str(payload.get("entityId") or "")
        id_type = payload.get("idType") or "entityId"
        for scene in self._scenes_of(info):
            ids = {
                "entityId": scene.entity_id,
                "orderingId": scene.entity_id,
                "displayId": scene.display_id(info.level or 2),
            }
            if ids.get(id_type) == wanted:
                data = self._scene_json(scene, info.level or 2, payload.get("metadataType") or "full")
                data["orderingId"] = scene.entity_id
                return data
        raise ApiError("NOT_FOUND", f"Scene not found: {wanted}")

    def _scene_json(self, scene: SceneRecord, level: int, metadata_type: str | None) -> dict[str, Any]:
        ring = [[round(x, 6), round(y, 6)] for x, y in scene.footprint_lonlat]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        pid = scene.display_id(level)
        published = (scene.l2_generated if level == 2 else scene.l1_generated) or scene.l1_generated
        metadata: list[dict[str, Any]] = []
        if metadata_type in ("summary", "full"):
            fields = [
                ("Landsat Product Identifier L2" if level == 2 else "Landsat Product Identifier L1", pid),
                ("Landsat Scene Identifier", scene.entity_id),
                ("Date Acquired", f"{scene.acquired:%Y/%m/%d}"),
                ("Collection Category", scene.tier),
                ("Collection Number", "2"),
                ("WRS Path", f" {scene.path:03d}"),
                ("WRS Row", f" {scene.row:03d}"),
                ("Land Cloud Cover", f"{scene.cloud_cover_land:.2f}"),
                ("Scene Cloud Cover L1", f"{scene.cloud_cover:.2f}"),
                ("Satellite", str(scene.satellite)),
                ("Sensor Identifier", "OLI_TIRS"),
            ]
            if metadata_type == "full":
                fields += [
                    ("Sun Elevation L0RA", f"{scene.sun_elevation:.8f}"),
                    ("Sun Azimuth L0RA", f"{scene.sun_azimuth:.8f}"),
                    ("Nadir/Off Nadir", "NADIR"),
                    ("Image Quality", "9"),
                    ("Start Time", f"{scene.scene_time:%Y:%j:%H:%M:%S.%f}"),
                ]
            metadata = [
                {
                    "id": f"5e83d14f{i:08x}",
                    "fieldName": name,
                    "dictionaryLink": "https://www.usgs.gov/centers/eros/science/landsat-data-dictionary",
                    "value": value,
                }
                for i, (name, value) in enumerate(fields)
            ]
        browse_base = f"{self.base_url}/gen-browse?type=refl&product_id={pid}"
        return {
            "browse": [
                {
                    "id": f"5e83a{scene.seed:011x}",
                    "browseRotationEnabled": None,
                    "browseName": "LandsatLook Natural Color Preview Image",
                    "browsePath": f"{browse_base}&size=rrb",
                    "overlayPath": None,
                    "overlayType": "dmid_wms",
                    "thumbnailPath": f"{browse_base}&size=thumb",
                }
            ],
            "cloudCover": f"{self._reported_cloud(scene):.2f}",
            "entityId": scene.entity_id,
            "displayId": pid,
            "orderingId": None,
            "metadata": metadata,
            "hasCustomizedMetadata": False,
            "options": {"bulk": True, "download": True, "order": True, "secondary": False},
            "selected": None,
            "spatialBounds": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [min(lons), min(lats)],
                        [min(lons), max(lats)],
                        [max(lons), max(lats)],
                        [max(lons), min(lats)],
                        [min(lons), min(lats)],
                    ]
                ],
            },
            "spatialCoverage": {"type": "Polygon", "coordinates": [ring]},
            "temporalCoverage": {
                "startDate": f"{scene.acquired} 00:00:00",
                "endDate": f"{scene.acquired} 00:00:00",
            },
            "publishDate": f"{published:%Y-%m-%d %H:%M:%S}-05",
        }

    def _matches(self, scene: SceneRecord, level: int, alias: str, f: dict[str, Any]) -> bool:
        acquisition = f.get("acquisitionFilter") or {}
        day = scene.acquired.isoformat()
        if acquisition.get("start") and day < str(acquisition["start"])[:10]:
            return False
        if acquisition.get("end") and day > str(acquisition["end"])[:10]:
            return False
        ingest = f.get("ingestFilter") or {}
        published = ((scene.l2_generated if level == 2 else None) or scene.l1_generated).date().isoformat()
        if ingest.get("start") and published < str(ingest["start"])[:10]:
            return False
        if ingest.get("end") and published > str(ingest["end"])[:10]:
            return False
        cloud = f.get("cloudCoverFilter")
        if cloud:
            low, high = float(cloud.get("min", 0)), float(cloud.get("max", 100))
            reported = self._reported_cloud(scene)
            if reported < 0:
                if not cloud.get("includeUnknown"):
                    return False
            elif not low <= reported <= high:
                return False
        months = f.get("seasonalFilter")
        if months and scene.acquired.month not in [int(m) for m in months]:
            return False
        spatial = f.get("spatialFilter")
        if spatial and not parse_spatial(spatial).intersects(Polygon(scene.footprint_lonlat)):
            return False
        metadata = f.get("metadataFilter")
        if metadata:
            specs = {spec.filter_id: spec for spec in filters_for(alias)}
            return self._metadata_matches(scene, level, metadata, specs)
        return True

    def _metadata_matches(
        self, scene: SceneRecord, level: int, f: dict[str, Any], specs: dict[str, FilterSpec]
    ) -> bool:
        kind = str(f.get("filterType") or "").lower()
        if kind in ("and", "or"):
            results = [self._metadata_matches(scene, level, c, specs) for c in f.get("childFilters") or []]
            return all(results) if kind == "and" else any(results)
        spec = specs.get(str(f.get("filterId")))
        if spec is None:
            raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid filterId: {f.get('filterId')}", 500)
        actual = spec.field(scene, level)
        if kind == "between":
            low, high = f.get("firstValue"), f.get("secondValue")
            if isinstance(actual, str):
                return (low is None or actual >= str(low)) and (high is None or actual <= str(high))
            return (low is None or float(actual) >= float(low)) and (
                high is None or float(actual) <= float(high)
            )
        if kind == "value":
            value = str(f.get("value") or "").upper()
            text = str(actual).upper()
            if str(f.get("operand") or "=").lower() == "like":
                pattern = value.replace("%", "*").replace("_", "?")
                if "*" not in pattern:
                    pattern = f"*{pattern}*"
                return fnmatch.fnmatchcase(text, pattern)
            return text == value
        raise ApiError("INPUT_PARAMETER_INVALID", f"Invalid filterType: {f.get('filterType')}", 500)
