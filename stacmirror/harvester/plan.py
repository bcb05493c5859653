"""Choosing what to download for each scene from ``download-options``.

Products are chosen by ``productName``, ``downloadSystem`` and ``available`` —
never by product id, which USGS has changed before. Band files are the
secondaries' own entityId + productId pairs, deduplicated because the service
repeats them under every product of a scene.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath

from ..catalog.constants import asset_specs
from ..errors import InvalidInput
from ..landsat import COMMON_NAMES, is_product_id
from ..m2m import DownloadFile, DownloadOption

MODES = ("bands", "bundle", "band-group")
PREFERRED_SYSTEMS = ("ls_zip", "dds", "dds_ms")


@dataclass(frozen=True)
class Want:
    """One file to request and fetch for a scene."""

    display_id: str  # the scene's product id
    entity_id: str  # what download-request gets: scene entityId (bundle) or secondary entityId
    product_id: str
    name: str  # file name on disk
    size: int | None
    sha256: str | None
    kind: str  # "bundle" or "band"


def suffix_of(display_id: str) -> str | None:
    """``SR_B4.TIF`` from ``<40-char product id>_SR_B4.TIF``."""
    if len(display_id) > 41 and display_id[40] == "_" and is_product_id(display_id[:40]):
        return display_id[41:]
    return None


def common_names(sensors: Iterable[tuple[str, int]], level: int) -> dict[str, set[str]]:
    """Common band name -> file suffix stems (lower case) for the sensors at hand: ``red`` is SR_B4
    on OLI but SR_B3 on TM and ETM+, so the names come from each sensor's band table."""
    found: dict[str, set[str]] = {}
    for sensor, satellite in sensors:
        for suffix, spec in asset_specs(sensor, level, satellite).items():
            found.setdefault(spec.key.lower(), set()).add(PurePath(suffix).stem.lower())
    if not found:  # no scene to tell the sensor: the OLI/TIRS names
        found = {k: {v.lower()} for k, v in COMMON_NAMES.get(level, {}).items()}
    found.setdefault("ang", {"ang"})
    return found


def resolve_bands(
    tokens: Iterable[str], level: int, names: Iterable[str], sensors: Iterable[tuple[str, int]] = ()
) -> set[str]:
    """File suffixes for the user's ``--bands`` (suffix, stem like SR_B4/MTL, or common name like red),
    matched case-insensitively against the dataset's file names."""
    names = sorted(set(names))
    by_lower = {n.lower(): n for n in names}
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(PurePath(name).stem.lower(), []).append(name)
    common = common_names(sensors, level)
    chosen: set[str] = set()
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        key = token.lower()
        if key in by_lower:
            chosen.add(by_lower[key])
        elif key in by_stem:
            chosen.update(by_stem[key])
        elif key in common and any(stem in by_stem for stem in common[key]):
            for stem in common[key]:
                chosen.update(by_stem.get(stem, []))
        else:
            stems = ", ".join(sorted({PurePath(n).stem for n in names}))
            raise InvalidInput(
                "bands",
                f"the dataset has no band or file {token!r}; valid: {stems} "
                f"(or common names: {', '.join(sorted(common))})",
            )
    if not chosen:
        raise InvalidInput("bands", "is empty")
    return chosen


def _by_scene(options: list[DownloadOption]) -> dict[str, list[DownloadOption]]:
    scenes: dict[str, list[DownloadOption]] = {}
    for option in options:
        scenes.setdefault(option.product.display_id, []).append(option)
    return scenes


def _secondaries(options: list[DownloadOption]) -> list[DownloadFile]:
    seen: dict[tuple[str, str], DownloadFile] = {}
    for option in options:
        for file in option.secondaries:
            seen.setdefault((file.entity_id, file.product_id), file)
    return list(seen.values())


def _band_wants(
    scene: str, files: Iterable[DownloadFile], keep: Callable[[DownloadFile, str], bool]
) -> list[Want]:
    wants = []
    for file in files:
        suffix = suffix_of(file.display_id)
        if suffix is None or not file.available or not keep(file, suffix):
            continue
        wants.append(
            Want(scene, file.entity_id, file.product_id, file.display_id, file.filesize, file.sha256, "band")
        )
    return wants


def choose(
    options: list[DownloadOption],
    mode: str,
    *,
    suffixes: set[str] | None = None,
    groups: set[str] | None = None,
    notify: Callable[[str], None] = lambda message: None,
    missing: dict[str, list[str]] | None = None,
) -> dict[str, list[Want]]:
    """For each scene (by product id), the files to request. Requested band files a scene does not
    offer are added to ``missing`` (scene -> suffixes): the caller counts them as failures."""
    plan: dict[str, list[Want]] = {}
    for scene, scene_options in _by_scene(options).items():
        if mode == "bundle":
            bundles = [o for o in scene_options if o.is_bundle and o.product.available]
            bundles.sort(
                key=lambda o: (
                    PREFERRED_SYSTEMS.index(o.product.download_system)
                    if o.product.download_system in PREFERRED_SYSTEMS
                    else len(PREFERRED_SYSTEMS)
                )
            )
            if bundles:
                p = bundles[0].product
                plan[scene] = [
                    Want(scene, p.entity_id, p.product_id, f"{scene}.tar", p.filesize, p.sha256, "bundle")
                ]
                continue
            notify(f"{scene}: no product bundle is available; fetching its band files instead")
            plan[scene] = _band_wants(scene, _secondaries(scene_options), lambda f, s: True)
        elif mode == "bands":
            assert suffixes is not None
            wanted = {s.lower() for s in suffixes}
            plan[scene] = _band_wants(
                scene, _secondaries(scene_options), lambda f, s, wanted=wanted: s.lower() in wanted
            )
            offered = {str(suffix_of(w.name)).lower() for w in plan[scene]}
            absent = sorted(s for s in suffixes if s.lower() not in offered)
            if absent and missing is not None:
                missing[scene] = absent
        elif mode == "band-group":
            assert groups is not None
            plan[scene] = _band_wants(
                scene, _secondaries(scene_options), lambda f, s: bool(groups & set(f.file_groups))
            )
        else:
            raise ValueError(f"unknown mode {mode!r}")
    return plan
