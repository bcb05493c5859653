"""The emulated dataset-search, dataset, dataset-filters and dataset-file-groups.

A mixin of :class:`.service.Service`, which holds the state it uses."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .catalogue import (
    BAND_FILE_PRODUCT,
    DATASETS,
    GROUP_LABELS,
    RETIRED,
    file_groups,
    filters_for,
    product_suffixes,
)
from .state import ApiError, ApiKey


class DatasetEndpoints:
    def _dataset(self, payload: dict[str, Any], name: str = "datasetName"):
        alias = str(payload.get(name) or "").lower()
        if not alias:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", f"The parameter {name} is required and was not supplied", 500
            )
        if alias in RETIRED:
            raise ApiError("DATASET_AUTH", "Dataset status is unavailable to this user")
        info = DATASETS.get(alias)
        if info is None or alias in self.faults.retired_datasets:
            raise ApiError("DATASET_INVALID", f"Invalid dataset: {payload.get(name)}")
        return info

    def _dataset_json(self, info) -> dict[str, Any]:
        count = len(self._scenes_of(info)) if info.level else 0
        newest = max((s.acquired for s in self.scenes), default=dt.date.today())
        return {
            "abstractText": f"{info.collection_name} (emulated)",
            "acquisitionStart": info.start,
            "acquisitionEnd": None,
            "catalogs": ["EE"],
            "collectionName": info.collection_name,
            "collectionLongName": info.collection_name,
            "datasetId": info.dataset_id,
            "datasetAlias": info.alias,
            "datasetCategoryName": info.category,
            "dataOwner": "LSAA",
            "dateUpdated": "2024-08-20 00:00:00-05",
            "doiNumber": info.doi,
            "ingestFrequency": "P1D",
            "keywords": "Landsat",
            "legacyId": None,
            "sceneCount": count,
            "spatialBounds": {"north": 82.7, "east": 194.4, "south": -82.7, "west": -180.0},
            "temporalCoverage": json.dumps([f"{info.start} 00:00:00-05", f"{newest} 00:00:00-05"]),
            "supportCloudCover": info.level > 0,
            "supportDeletionSearch": True,
            "allowInKmz": False,
        }

    def ep_dataset_search(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        query = str(payload.get("datasetName") or "").lower()
        found = [
            d
            for d in DATASETS.values()
            if not query or query in d.alias or query in d.collection_name.lower()
        ]
        return [self._dataset_json(d) for d in found]

    def ep_dataset(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("datasetId"):
            for info in DATASETS.values():
                if info.dataset_id == payload["datasetId"]:
                    return self._dataset_json(info)
            raise ApiError("DATASET_INVALID", f"Invalid dataset id: {payload['datasetId']}")
        return self._dataset_json(self._dataset(payload))

    def ep_dataset_filters(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        info = self._dataset(payload)
        out = []
        for spec in filters_for(info.alias):
            config: dict[str, Any] = {
                "type": spec.kind,
                "filters": [],
                "validators": [],
                "numElements": 0,
                "displayListId": None,
            }
            if spec.kind == "Text":
                config["filters"] = [{"type": "StringToUpper"}, {"type": "Application\\Filter\\Like"}]
            out.append(
                {
                    "id": spec.filter_id,
                    "legacyFieldId": None,
                    "dictionaryLink": f"https://www.usgs.gov/centers/eros/science/landsat-data-dictionary#{spec.label}",
                    "fieldConfig": config,
                    "fieldLabel": spec.label,
                    "searchSql": spec.search_sql,
                    "valueList": ({"": "All", **spec.values} if spec.values else []),
                }
            )
        return out

    def ep_dataset_file_groups(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        info = self._dataset(payload)
        if not info.level or not info.secondary:
            return {"primary": [], "secondary": []}
        secondary = DATASETS[info.secondary]
        product_id, product_name = BAND_FILE_PRODUCT[info.level]
        groups: dict[str, dict[str, Any]] = {}
        for order, suffix in enumerate(product_suffixes(info.level)):
            for group in file_groups(info.level, suffix):
                entry = groups.setdefault(
                    group,
                    {
                        "id": group,
                        "label": GROUP_LABELS[group],
                        "description": GROUP_LABELS[group],
                        "displayOrder": len(groups),
                        "color": None,
                        "icon": None,
                        "files": [],
                    },
                )
                entry["files"].append(
                    {
                        "name": suffix,
                        "productName": product_name,
                        "displayOrder": order,
                        "productIds": {self._pid(product_id): "ls_s3"},
                    }
                )
        return {"primary": [], "secondary": {secondary.dataset_id: groups}}
