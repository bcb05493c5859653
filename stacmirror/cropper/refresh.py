"""Crops kept in step with their sources: a stack whose member was replaced or removed is found
again with the parameters that first found it, and cropped anew (or dropped, when it no longer
makes a stack).

Used by sync after the catalog is up to date. A stack none of whose members changed is not
touched, and no mask is read for it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from shapely.geometry import shape

from ..layout import Mirror
from .crop import crop_stack, delete_crop_objects
from .stacks import find_stacks


@dataclass
class CropRefresh:
    stack_id: str
    action: str  # "recropped" | "dropped" | "failed"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack_id, "action": self.action, "detail": self.detail}


def default_request(stack_id: str) -> dict[str, Any]:
    """How a stack cropped before its request was recorded was most likely found."""
    collection = stack_id.split("-")[0]
    return {"collection": collection, "min_scenes": 2, "aoi": None, "max_cloud": None,
            "group_by": "overlap" if "-overlap-" in stack_id else "path-row"}  # fmt: skip


def refresh_crops(
    mirror: Mirror, changed: Iterable[str], executor: Executor, store_url: str | None = None
) -> list[CropRefresh]:
    """Re-crop (or drop) every crop stack that used one of the ``changed`` source items (in a store
    mirror, ``mirror`` is its cache: the catalog build that follows publishes the change)."""
    changed = set(changed)
    done = []
    for collection_file in mirror.crop_collections():
        stack_id = collection_file.parent.name
        state_path = mirror.crop_state_path(stack_id)
        if not state_path.exists():
            continue
        state = json.loads(state_path.read_text())
        members = list(state.get("members") or [])
        if not changed.intersection(members):
            continue
        request = dict(state.get("request") or default_request(stack_id))
        area = request.pop("aoi", None)
        aoi = shape(area) if area else None
        stacks, _ = find_stacks(mirror, aoi=aoi, only={stack_id}, store_url=store_url, **request)
        if not stacks:
            trash = mirror.trash_dir / f"crop-{stack_id}"
            if trash.exists():
                shutil.rmtree(trash)
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(mirror.crop_dir(stack_id), trash)
            shutil.rmtree(trash)
            if store_url is not None:
                delete_crop_objects(store_url, mirror, stack_id, whole=True)
            done.append(CropRefresh(stack_id, "dropped", "its scenes no longer make a stack"))
            continue
        assets = set(state["assets"]) if state.get("assets") else None
        virtual = bool(state.get("virtual"))  # a refresh keeps the mode (and level) it was cropped in
        result = crop_stack(
            mirror,
            stacks[0],
            assets=assets,
            executor=executor,
            virtual=virtual,
            store_url=store_url,
            level=state.get("level"),
        )
        if result.errors:
            done.append(CropRefresh(stack_id, "failed", "; ".join(result.errors)))
        else:
            done.append(CropRefresh(stack_id, "recropped", f"{result.cropped} item(s)"))
    return done
