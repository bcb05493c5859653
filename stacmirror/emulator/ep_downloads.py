"""The emulated download-options, download-request, download-retrieve and the rest of the download
flow, and the signed file URLs it hands out.

A mixin of :class:`.service.Service`, which holds the state it uses."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from .catalogue import (
    BAND_FILE_PRODUCT,
    DATASETS,
    PRIMARY_OF,
    PRODUCTS,
    file_groups,
    product_suffixes,
    secondary_entity_id,
)
from .scenes import SceneRecord
from .state import DISABLED_MESSAGE, ApiError, ApiKey, QueueItem, User, _checksum


class DownloadEndpoints:
    def _requested_scenes(
        self, key: ApiKey, payload: dict[str, Any], level: int, alias: str
    ) -> list[SceneRecord]:
        if not DATASETS[alias].synthetic:
            return []
        if payload.get("listId"):
            ids = self._list(key.user, str(payload["listId"])).get(alias, [])
        else:
            raw = payload.get("entityIds") or []
            ids = raw.split(",") if isinstance(raw, str) else [str(i) for i in raw]
        scenes = [self.by_entity.get(i.strip()) for i in ids]
        return [s for s in scenes if s is not None and (level == 1 or s.l2_generated is not None)]

    def ep_download_options(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        info = self._dataset(payload)
        level = info.level
        if not level:
            raise ApiError("DATASET_ERROR", "This dataset does not support download-options by scene")
        with_groups = bool(payload.get("includeSecondaryFileGroups"))
        out = []
        for scene in self._requested_scenes(key, payload, level, info.alias):
            files = self.store.files(scene, level)
            pid = scene.display_id(level)
            secondaries = [
                self._secondary_json(scene, level, suffix, files[suffix], with_groups)
                for suffix in product_suffixes(level)
                if suffix != self.faults.withhold_suffix
            ]
            for product in PRODUCTS[level]:
                tar = files["tar"]
                out.append(
                    {
                        "id": self._pid(product.product_id),
                        "displayId": pid,
                        "entityId": scene.entity_id,
                        "datasetId": info.dataset_id,
                        "available": product.available,
                        "filesize": self._advertised_size(tar.size) if product.bundle else 0,
                        "productName": product.name,
                        "productCode": product.code,
                        "bulkAvailable": product.available,
                        "downloadSystem": product.system,
                        "downloadName": None if product.bundle else "C2L2 Tile Product Files",
                        "secondaryDownloads": secondaries,  # the same list under every product
                        "checksum": _checksum(tar) if product.bundle else None,
                    }
                )
        return out

    def _advertised_size(self, size: int) -> int:
        """M2M's filesize for a bundle; a host that builds bundles on request may serve other bytes."""
        return size + 4096 if self.variation.bundle_size_differs else size

    def _secondary_json(self, scene, level, suffix, pfile, with_groups) -> dict[str, Any]:
        product_id, product_name = BAND_FILE_PRODUCT[level]
        pid = scene.display_id(level)
        entry = {
            "id": self._pid(product_id),
            "displayId": f"{pid}_{suffix}",
            "entityId": secondary_entity_id(level, pid, suffix),
            "datasetId": DATASETS[DATASETS[f"landsat_ot_c2_l{level}"].secondary].dataset_id,
            "available": True,
            "filesize": pfile.size,
            "productName": product_name,
            "productCode": None,
            "bulkAvailable": True,
            "downloadSystem": "ls_s3",
            "secondaryDownloads": [],
            "displayOrder": product_suffixes(level).index(suffix),
            "checksum": _checksum(pfile),
        }
        if with_groups:
            entry["fileGroups"] = file_groups(level, suffix)
        return entry

    def _resolve_download(
        self, entity_id: str, product_id: str
    ) -> tuple[SceneRecord, int, str | None] | None:
        """A (scene entityId, bundle productId) or (secondary entityId, band-file productId) pair."""
        product_id = self._pid(product_id)  # back to the canonical id
        scene = self.by_entity.get(entity_id)
        if scene is not None:
            for level, products in PRODUCTS.items():
                for product in products:
                    if product.product_id == product_id and product.bundle:
                        if level == 2 and scene.l2_generated is None:
                            return None
                        return scene, level, None
            return None
        for level, (band_product, _) in BAND_FILE_PRODUCT.items():
            if product_id != band_product:
                continue
            prefix = "L1_" if level == 1 else ("L2SR_", "L2ST_")
            if not entity_id.startswith(prefix):
                return None
            pid = entity_id.split("_", 1)[1][:40]
            found = self.by_display.get(pid)
            if found is None or found[1] != level:
                return None
            for suffix in product_suffixes(level):
                if secondary_entity_id(level, pid, suffix) == entity_id:
                    return found[0], level, suffix
        return None

    def _count_download(self, user: User) -> None:
        now = self.clock()
        user.recent_downloads = [t for t in user.recent_downloads if now - t < 900]
        pending = sum(1 for q in self.queue.values() if q.user == user.name and q.status == "Preparing")
        unattempted = sum(
            1
            for q in self.queue.values()
            if q.user == user.name and not q.attempted and q.status in ("Available", "Proxied")
        )
        if (
            len(user.recent_downloads) >= self.faults.recent_download_limit
            or pending >= self.faults.pending_download_limit
            or unattempted >= self.faults.unattempted_download_limit
        ):
            raise ApiError("RATE_LIMIT_USER_DL", "User has reached download-related rate limits")
        user.recent_downloads.append(now)

    def ep_download_request(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        label = payload.get("label")
        if label is not None and len(str(label)) > 50:
            raise ApiError("INPUT_PARAMETER_INVALID", "label must be 50 characters or fewer", 500)
        wanted: list[tuple[str, str, str | None]] = []
        for item in payload.get("downloads") or []:
            wanted.append((str(item.get("entityId")), str(item.get("productId")), item.get("label")))
        for group in payload.get("dataGroups") or []:
            wanted += self._data_group_items(key, group)
        request_id = next(self._request_ids)
        default_label = label or f"m2m_{request_id}_{dt.datetime.now():%Y%m%d%H%M%S}"
        result: dict[str, Any] = {
            "availableDownloads": [],
            "preparingDownloads": [],
            "failed": [],
            "newRecords": {},
            "duplicateProducts": {},
            "numInvalidScenes": 0,
        }
        with self._lock:
            for entity_id, product_id, item_label in wanted:
                resolved = self._resolve_download(entity_id, product_id)
                if resolved is None:
                    result["numInvalidScenes"] += 1
                    continue
                scene, level, suffix = resolved
                if self.faults.downloads_disabled:
                    result["failed"].append(
                        {"entityId": entity_id, "productId": product_id, "errorMessage": DISABLED_MESSAGE}
                    )
                    continue
                existing = next(
                    (
                        q
                        for q in self.queue.values()
                        if q.user == key.user.name
                        and q.entity_id == entity_id
                        and q.product_id == product_id
                        and q.status not in ("Removed", "Complete")
                    ),
                    None,
                )
                if existing is not None:
                    result["duplicateProducts"][str(existing.download_id)] = existing.label
                    continue
                self._count_download(key.user)
                download_id = next(self._download_ids)
                never = (
                    bool(self.faults.never_ready_every) and download_id % self.faults.never_ready_every == 0
                )
                item = QueueItem(
                    download_id,
                    key.user.name,
                    str(label or item_label or default_label),
                    level,
                    scene,
                    suffix,
                    product_id,
                    entity_id,
                    scene.display_id(level) + (f"_{suffix}" if suffix else ""),
                    polls_left=self.faults.preparing_polls,
                    never_ready=never,
                    status="Preparing"
                    if self.faults.preparing_polls or never
                    else ("Proxied" if suffix else "Available"),
                )
                self.queue[download_id] = item
                result["newRecords"][str(download_id)] = item.label
                ready = item.status != "Preparing"
                entry = {
                    "downloadId": download_id,
                    "eulaCode": None,
                    "entityId": entity_id,
                    "url": self.url_for(item) if ready else self._staging_url(item),
                }
                if self.variation.bare_request_entries:
                    del entry["entityId"]  # as in the live captures: {downloadId, eulaCode, url}
                result["availableDownloads" if ready else "preparingDownloads"].append(entry)
            for name in ("newRecords", "duplicateProducts"):
                if not result[name]:
                    result[name] = []  # the PHP artefact: an empty object is sent as []
        result["remainingLimits"] = self._remaining(key.user)
        return result

    def _data_group_items(self, key: ApiKey, group: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        """``dataGroups``: file groups of the scenes in a list of the band-file dataset [inferred]."""
        secondary = str(group.get("datasetName") or "").lower()
        primary = PRIMARY_OF.get(secondary)
        if primary is None:
            raise ApiError("DATASET_INVALID", f"Invalid dataset: {group.get('datasetName')}")
        level = DATASETS[primary].level
        wanted_groups = set(group.get("fileGroups") or [])
        ids = key.user.lists.get(str(group.get("listId") or ""), {}).get(secondary, [])
        band_product = self._pid(BAND_FILE_PRODUCT[level][0])
        items = []
        for entity_id in ids:
            scene = self.by_entity.get(entity_id)
            if scene is None:
                continue
            pid = scene.display_id(level)
            for suffix in product_suffixes(level):
                if wanted_groups & set(file_groups(level, suffix)):
                    items.append((secondary_entity_id(level, pid, suffix), band_product, group.get("label")))
        return items

    def ep_download_retrieve(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        label = payload.get("label")
        available, requested, queued = [], [], 0
        with self._lock:
            for item in self.queue.values():
                if item.user != key.user.name or (label and item.label != label):
                    continue
                if label and label in self.faults.forgotten_labels:
                    continue
                if item.handed_over and self.variation.drop_after_handover:
                    continue  # "the API drops entries once it has handed them over"
                if item.status == "Preparing":
                    if not item.never_ready:
                        if item.polls_left <= 0:
                            item.status = "Proxied" if item.suffix else "Available"
                        item.polls_left -= 1
                    if item.status == "Preparing":
                        queued += 1
                        staging = (
                            self._staging_url(item) if self.variation.staging_urls_in_requested else None
                        )
                        requested.append(self._record(item, url=staging))
                        continue
                if item.status == "Available":
                    available.append(self._record(item, url=self.url_for(item)))
                    item.handed_over = True
                elif item.status == "Proxied":
                    requested.append(self._record(item, url=self.url_for(item)))
                    item.handed_over = True
        return {"available": available, "requested": requested, "queueSize": queued, "eulas": []}

    def _record(self, item: QueueItem, url: str | None) -> dict[str, Any]:
        pfile = self._file_of(item)
        codes = {"Available": "A", "Proxied": "P", "Preparing": "Q", "Complete": "C"}
        return {
            "downloadId": item.download_id,
            "label": item.label,
            "entityId": item.entity_id,
            "displayId": item.display_id,
            "datasetId": DATASETS[f"landsat_ot_c2_l{item.level}"].dataset_id,
            "collectionName": DATASETS[f"landsat_ot_c2_l{item.level}"].collection_name,
            "productCode": None,
            "productName": None,
            "filesize": pfile.size,
            "eulaCode": None,
            "statusCode": codes.get(item.status, "X"),
            "statusText": item.status,
            "url": url,
            "checksum": _checksum(pfile),
        }

    def _file_of(self, item: QueueItem):
        files = self.store.files(item.scene, item.level)
        return files[item.suffix or "tar"]

    def ep_download_search(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        label = payload.get("label")
        active = bool(payload.get("activeOnly"))
        return [
            self._record(q, url=None)
            for q in self.queue.values()
            if q.user == key.user.name
            and (not label or q.label == label)
            and q.status != "Removed"
            and not (active and q.status in ("Complete", "Proxied"))
        ]

    def ep_download_labels(self, key: ApiKey, payload: dict[str, Any]) -> list[dict[str, Any]]:
        labels: dict[str, list[QueueItem]] = {}
        for q in self.queue.values():
            if q.user == key.user.name and q.status != "Removed":
                labels.setdefault(q.label, []).append(q)
        return [
            {
                "label": name,
                "dateEntered": int(self.clock() * 1000),
                "downloadCount": len(items),
                "downloadSize": sum(self._file_of(q).size for q in items),
                "totalComplete": sum(q.status == "Complete" for q in items),
            }
            for name, items in labels.items()
        ]

    def ep_download_remove(self, key: ApiKey, payload: dict[str, Any]) -> bool:
        item = self.queue.get(int(payload.get("downloadId") or 0))
        if item is not None and item.user == key.user.name:
            item.status = "Removed"
        return True  # the same answer for unknown ids, as live

    def ep_download_order_remove(self, key: ApiKey, payload: dict[str, Any]) -> int:
        label = payload.get("label")
        if not label:
            raise ApiError(
                "INPUT_PARAMETER_REQUIRED", "The parameter label is required and was not supplied", 500
            )
        removed = 0
        for item in self.queue.values():
            if item.user == key.user.name and item.label == label and item.status != "Removed":
                item.status = "Removed"
                removed += 1
        return removed

    def ep_download_complete_proxied(self, key: ApiKey, payload: dict[str, Any]) -> dict[str, Any]:
        updated = 0
        for entry in payload.get("proxiedDownloads") or []:
            item = self.queue.get(int(entry.get("downloadId") or 0))
            if item is not None and item.user == key.user.name:
                item.status = "Complete"
                updated += 1
        return {"failed": [], "updatedDownloadsCount": updated}

    def _sign(self, download_id: int, product: str, generated: str) -> str:
        mac = hmac.new(self._signing_key, f"{download_id}|{product}|{generated}".encode(), hashlib.sha256)
        return "$5$$" + mac.hexdigest()

    def url_for(self, item: QueueItem) -> str:
        generated = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).isoformat(timespec="seconds")
        user = self.users[item.user]
        signature = {
            "downloadApp": "M2M",
            "contactId": user.contact_id,
            "downloadId": item.download_id,
            "dateGenerated": generated,
            "id": item.display_id,
            "signature": self._sign(item.download_id, item.display_id, generated),
        }
        token = base64.urlsafe_b64encode(json.dumps(signature).encode()).decode()
        pid = item.scene.display_id(item.level)
        if item.suffix is None:
            return f"{self.base_url}/gen-bundle?landsat_product_id={pid}&requestSignature={token}"
        s = item.scene
        return (
            f"{self.base_url}/data/collection02/level-{item.level}/standard/oli-tirs/{s.acquired.year}/"
            f"{s.path:03d}/{s.row:03d}/{pid}/{pid}_{item.suffix}?requestSignature={token}"
        )

    def _staging_url(self, item: QueueItem) -> str:
        token = base64.urlsafe_b64encode(json.dumps({"id": item.download_id}).encode()).decode()
        return f"{self.base_url}/download-staging/{token}"

    def check_signature(self, token: str, display_id: str) -> QueueItem:
        """The queue item a signed URL grants; raises PermissionError (403) when invalid or expired."""
        try:
            signature = json.loads(base64.urlsafe_b64decode(token.encode()))
            download_id = int(signature["downloadId"])
            generated = str(signature["dateGenerated"])
        except (ValueError, KeyError, TypeError):
            raise PermissionError("malformed signature") from None
        expected = self._sign(download_id, str(signature.get("id")), generated)
        if (
            not hmac.compare_digest(expected, str(signature.get("signature")))
            or signature.get("id") != display_id
        ):
            raise PermissionError("bad signature")
        age = self.clock() - dt.datetime.fromisoformat(generated).timestamp()
        with self._lock:
            self.stats["file_requests"] += 1
            forced = self.stats["file_requests"] <= self.faults.expired_urls_first
            if forced:
                self.stats["expired_urls"] += 1
        if forced or age > self.faults.url_ttl:
            raise PermissionError("signature expired")
        item = self.queue.get(download_id)
        if item is None or item.status in ("Removed", "Preparing"):
            raise PermissionError("no such download")
        item.attempted = True
        return item
