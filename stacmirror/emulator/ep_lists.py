"""The emulated scene lists: scene-list-add/get/remove/summary/types, with their TTL.

A mixin of :class:`.service.Service`, which holds the state it uses."""

from __future__ import annotations

from typing import Any

from .catalogue import (
    DATASETS,
    PRIMARY_OF,
)
from .state import SCENE_LIST_CAP, ApiError, ApiKey, User, iso_duration


class SceneListEndpoints:
    def _list(self, user: User, list_id: str) -> dict[str, list[str]]:
        """A scene list, forgotten once its timeToLive has passed."""
        expiry = user.list_expiry.get(list_id)
        if expiry is not None and self.clock() > expiry:
            user.lists.pop(list_id, None)
            user.list_expiry.pop(list_id, None)
        return user.lists.get(list_id, {})

    def ep_scene_list_add(self, key: ApiKey, payload: dict[str, Any]) -> int:
        list_id = str(payload.get("listId") or "")
        if not list_id:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", "The parameter listId is required and was not supplied", 500
            )
        info = self._dataset(payload)
        ids = payload.get("entityIds")
        if ids is None and payload.get("entityId"):
            ids = [payload["entityId"]]
        if not isinstance(ids, list):
            raise ApiError("INPUT_PARAMETER_INVALID", "entityIds must be an array", 500)
        if payload.get("idField") == "displayId":
            ids = [self.by_display[i][0].entity_id for i in map(str, ids) if i in self.by_display]
        known = {s.entity_id for s in self._scenes_of(DATASETS[PRIMARY_OF.get(info.alias, info.alias)])}
        self._list(key.user, list_id)
        if payload.get("timeToLive"):
            key.user.list_expiry[list_id] = self.clock() + iso_duration(str(payload["timeToLive"]))
        entries = key.user.lists.setdefault(list_id, {}).setdefault(info.alias, [])
        total = sum(len(v) for v in key.user.lists[list_id].values())
        added = 0
        for entity_id in map(str, ids):
            if entity_id in known and entity_id not in entries:
                if total + added >= SCENE_LIST_CAP:
                    raise ApiError("INPUT_INVALID", "The scene list cannot exceed 50,000 items")
                entries.append(entity_id)
                added += 1
        return added

    def ep_scene_list_get(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, str]]:
        lists = self._list(key.user, str(payload.get("listId") or ""))
        return [{"entityId": e, "datasetName": d} for d, ids in lists.items() for e in ids]

    def ep_scene_list_remove(self, key: ApiKey, payload: dict[str, Any]) -> None:
        list_id = str(payload.get("listId") or "")
        if payload.get("datasetName"):
            key.user.lists.get(list_id, {}).pop(str(payload["datasetName"]).lower(), None)
        else:
            key.user.lists.pop(list_id, None)
        return None

    def _pid(self, product_id: str) -> str:
        """Product ids as currently served (rotating them is its own inverse)."""
        return product_id[::-1] if self.faults.rotate_product_ids else product_id

    def ep_scene_list_summary(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        list_id = str(payload.get("listId") or "")
        lists = self._list(key.user, list_id)
        wanted = str(payload.get("datasetName") or "").lower()
        datasets = []
        for alias, ids in lists.items():
            if wanted and alias != wanted:
                continue
            scenes = [self.by_entity[i] for i in ids if i in self.by_entity]
            dates = sorted(s.acquired.isoformat() for s in scenes)
            datasets.append(
                {
                    "datasetName": alias,
                    "sceneCount": len(scenes),
                    "temporalExtent": {
                        "min": dates[0] if dates else None,
                        "max": dates[-1] if dates else None,
                    },
                }
            )
        total = sum(d["sceneCount"] for d in datasets)
        return {
            "summary": {
                "sceneCount": str(total),  # a string, as live
                "temporalExtent": {
                    "min": min(
                        (d["temporalExtent"]["min"] for d in datasets if d["temporalExtent"]["min"]),
                        default=None,
                    ),
                    "max": max(
                        (d["temporalExtent"]["max"] for d in datasets if d["temporalExtent"]["max"]),
                        default=None,
                    ),
                },
            },
            "datasets": datasets,
        }

    def ep_scene_list_types(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for list_id in list(key.user.lists):
            lists = self._list(key.user, list_id)
            if lists:
                out.append(
                    {
                        "list": list_id,
                        "sceneCount": sum(len(v) for v in lists.values()),
                        "listTimeout": key.user.list_expiry.get(list_id),
                    }
                )
        return out
