"""Typed views of M2M responses.

Each ``from_json`` absorbs one of the service's quirks so the rest of the code
never sees them: ``[]`` standing for an empty object, numbers sent as strings
(``cloudCover``, path/row with leading spaces), secondaries repeated under
every product of a scene, checksums given as a list of ``{id, value}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..landsat import ProductId


def as_mapping(value: Any) -> dict[str, Any]:
    """The service sends ``[]`` for an empty JSON object (a PHP artefact)."""
    if isinstance(value, Mapping):
        return dict(value)
    if value in (None, [], ""):
        return {}
    raise ValueError(f"expected an object, got {type(value).__name__}")


def as_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


def parse_date(value: Any) -> dt.date | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("/", "-")
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def sha256_of(checksums: Any) -> str | None:
    """Pick the sha256 value out of ``[{"id": "sha256sum", "value": ...}]``."""
    for entry in checksums or []:
        if isinstance(entry, Mapping) and str(entry.get("id", "")).startswith("sha256"):
            value = entry.get("value")
            return str(value).lower() if value else None
    return None


@dataclass(frozen=True)
class Dataset:
    alias: str
    dataset_id: str
    collection_name: str
    acquisition_start: dt.date | None
    acquisition_end: dt.date | None
    scene_count: int | None
    supports_cloud_cover: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dataset:
        return cls(
            alias=str(data.get("datasetAlias") or ""),
            dataset_id=str(data.get("datasetId") or ""),
            collection_name=str(data.get("collectionName") or ""),
            acquisition_start=parse_date(data.get("acquisitionStart")),
            acquisition_end=parse_date(data.get("acquisitionEnd")),
            scene_count=as_int(data.get("sceneCount")),
            supports_cloud_cover=bool(data.get("supportCloudCover")),
        )


@dataclass(frozen=True)
class DatasetFilter:
    filter_id: str
    label: str
    search_sql: str
    kind: str  # "Text", "Range" or "Select"
    values: dict[str, str] = field(default_factory=dict)  # Select: key -> label

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetFilter:
        config = data.get("fieldConfig") or {}
        values = {str(k): str(v) for k, v in as_mapping(data.get("valueList")).items() if k != ""}
        return cls(
            filter_id=str(data.get("id")),
            label=str(data.get("fieldLabel") or "").strip(),
            search_sql=str(data.get("searchSql") or ""),
            kind=str(config.get("type") or "Text"),
            values=values,
        )


@dataclass(frozen=True)
class BrowseImage:
    name: str
    url: str
    thumbnail_url: str | None


@dataclass(frozen=True)
class Scene:
    entity_id: str
    display_id: str
    cloud_cover: float | None  # None when the service has no score (-1)
    acquisition_date: dt.date | None
    publish_date: str | None
    footprint: dict[str, Any] | None  # GeoJSON geometry
    browse: tuple[BrowseImage, ...]
    metadata: dict[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scene:
        cloud = as_float(data.get("cloudCover"))
        temporal = data.get("temporalCoverage") or {}
        metadata = {
            str(m.get("fieldName")): str(m.get("value")).strip()
            for m in data.get("metadata") or []
            if isinstance(m, Mapping) and m.get("fieldName")
        }
        browse = tuple(
            BrowseImage(str(b.get("browseName") or ""), str(b["browsePath"]), b.get("thumbnailPath"))
            for b in data.get("browse") or []
            if isinstance(b, Mapping) and b.get("browsePath")
        )
        display_id = str(data.get("displayId") or "")
        acquired = parse_date(temporal.get("startDate") if isinstance(temporal, Mapping) else None)
        if acquired is None:
            parsed = ProductId.maybe(display_id)
            if parsed:
                acquired = parsed.acquired_date
        return cls(
            entity_id=str(data.get("entityId") or ""),
            display_id=display_id,
            cloud_cover=None if cloud is None or cloud < 0 else cloud,
            acquisition_date=acquired,
            publish_date=data.get("publishDate"),
            footprint=data.get("spatialCoverage") or data.get("spatialBounds"),
            browse=browse,
            metadata=metadata,
        )

    @property
    def wrs_path(self) -> int | None:
        parsed = ProductId.maybe(self.display_id)
        return parsed.path if parsed else as_int(self.metadata.get("WRS Path"))

    @property
    def wrs_row(self) -> int | None:
        parsed = ProductId.maybe(self.display_id)
        return parsed.row if parsed else as_int(self.metadata.get("WRS Row"))

    def natural_colour_browse(self) -> BrowseImage | None:
        """The reflective natural-colour browse, as EarthExplorer shows it."""
        for image in self.browse:
            name = image.name.lower()
            if "reflective" in name or "natural" in name or "type=refl" in image.url:
                return image
        return self.browse[0] if self.browse else None


@dataclass(frozen=True)
class SearchPage:
    scenes: list[Scene]
    records_returned: int
    total_hits: int
    starting_number: int
    next_record: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchPage:
        scenes = [Scene.from_json(s) for s in data.get("results") or []]
        return cls(
            scenes=scenes,
            records_returned=as_int(data.get("recordsReturned")) or len(scenes),
            total_hits=as_int(data.get("totalHits")) or 0,
            starting_number=as_int(data.get("startingNumber")) or 1,
            next_record=as_int(data.get("nextRecord")),
        )


@dataclass(frozen=True)
class DownloadFile:
    """One downloadable thing: a product bundle or a single band file (a secondary)."""

    entity_id: str
    display_id: str
    product_id: str
    product_name: str
    dataset_id: str | None
    download_system: str
    available: bool
    filesize: int | None
    sha256: str | None
    file_groups: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DownloadFile:
        available = data.get("available")
        if isinstance(available, str):  # historically "Y"/"N"
            available = available.upper() == "Y"
        size = as_int(data.get("filesize"))
        return cls(
            entity_id=str(data.get("entityId") or ""),
            display_id=str(data.get("displayId") or ""),
            product_id=str(data.get("id") or data.get("productId") or ""),
            product_name=str(data.get("productName") or ""),
            dataset_id=data.get("datasetId"),
            download_system=str(data.get("downloadSystem") or ""),
            available=bool(available),
            filesize=size if size else None,
            sha256=sha256_of(data.get("checksum")),
            file_groups=tuple(data.get("fileGroups") or ()),
        )


@dataclass(frozen=True)
class DownloadOption:
    """A product of a scene, with the band files listed under it."""

    product: DownloadFile
    bulk_available: bool
    product_code: str
    secondaries: tuple[DownloadFile, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DownloadOption:
        return cls(
            product=DownloadFile.from_json(data),
            bulk_available=bool(data.get("bulkAvailable")),
            product_code=str(data.get("productCode") or ""),
            secondaries=tuple(DownloadFile.from_json(s) for s in data.get("secondaryDownloads") or []),
        )

    @property
    def is_bundle(self) -> bool:
        return "bundle" in self.product.product_name.lower() and self.product.download_system != "folder"


@dataclass(frozen=True)
class ReadyDownload:
    """A download the service has accepted, with its URL when one is usable."""

    download_id: int
    url: str | None
    entity_id: str | None
    display_id: str | None
    label: str | None
    status: str | None
    filesize: int | None
    sha256: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadyDownload:
        return cls(
            download_id=int(data["downloadId"]),
            url=data.get("url") or None,
            entity_id=data.get("entityId"),
            display_id=data.get("displayId"),
            label=data.get("label"),
            status=data.get("statusText") or data.get("statusCode"),
            filesize=as_int(data.get("filesize")) or None,
            sha256=sha256_of(data.get("checksum")),
        )


@dataclass(frozen=True)
class DownloadRequestResult:
    available: list[ReadyDownload]
    preparing: list[ReadyDownload]
    failed: list[dict[str, Any]]
    new_records: dict[int, str]
    duplicate_products: dict[int, str]  # downloadId -> the label it was first requested under
    num_invalid_scenes: int
    remaining_limits: list[dict[str, Any]]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DownloadRequestResult:
        return cls(
            available=[ReadyDownload.from_json(d) for d in data.get("availableDownloads") or []],
            preparing=[ReadyDownload.from_json(d) for d in data.get("preparingDownloads") or []],
            failed=list(data.get("failed") or []),
            new_records={int(k): str(v) for k, v in as_mapping(data.get("newRecords")).items()},
            duplicate_products={int(k): str(v) for k, v in as_mapping(data.get("duplicateProducts")).items()},
            num_invalid_scenes=as_int(data.get("numInvalidScenes")) or 0,
            remaining_limits=list(data.get("remainingLimits") or []),
        )


@dataclass(frozen=True)
class RetrieveResult:
    available: list[ReadyDownload]
    requested: list[ReadyDownload]
    queue_size: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrieveResult:
        return cls(
            available=[ReadyDownload.from_json(d) for d in data.get("available") or []],
            requested=[ReadyDownload.from_json(d) for d in data.get("requested") or []],
            queue_size=as_int(data.get("queueSize")) or 0,
        )

    def with_urls(self) -> list[ReadyDownload]:
        """Everything that has a URL; proxied items sit in ``requested`` with a working one."""
        return [d for d in self.available + self.requested if d.url]
