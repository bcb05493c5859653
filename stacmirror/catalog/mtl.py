"""One reader for Landsat Collection 2 ``MTL.txt``, ``MTL.xml`` and ``MTL.json``, and for ``ANG.txt``.

All three MTL encodings carry the same tree; each is read into
``{group: {key: value}}`` with every value a string, quotes stripped, so the
same lookups work whichever file a scene has. Types are converted by the
caller, per key (quoting is not consistent between products).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = "LANDSAT_METADATA_FILE"
Groups = dict[str, dict[str, str]]


class MTLError(ValueError):
    """The file is not a readable Collection 2 MTL."""


def _strip(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _from_tree(tree: dict[str, object], source: str) -> Groups:
    if "L1_METADATA_FILE" in tree:
        raise MTLError(f"{source}: a Collection 1 MTL (L1_METADATA_FILE); only Collection 2 is supported")
    root = tree.get(ROOT)
    if not isinstance(root, dict):
        raise MTLError(f"{source}: no {ROOT} group")
    groups: Groups = {}
    for name, group in root.items():
        if isinstance(group, dict):
            groups[name] = {k: _strip(str(v)) for k, v in group.items() if not isinstance(v, dict)}
    if "PRODUCT_CONTENTS" not in groups:
        raise MTLError(f"{source}: no PRODUCT_CONTENTS group")
    return groups


def parse_odl(text: str, source: str = "MTL.txt") -> dict[str, object]:
    """The nested tree of an ODL ("PVL") file; parenthesised arrays may span several lines."""
    root: dict[str, object] = {}
    stack: list[tuple[str, dict[str, object]]] = [("", root)]
    pending_key: str | None = None
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending_key is not None:
            pending.append(line)
            if line.endswith(")"):
                stack[-1][1][pending_key] = " ".join(pending)
                pending_key, pending = None, []
            continue
        if not line or line == "END":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise MTLError(f"{source}:{number}: expected KEY = VALUE, got {line[:60]!r}")
        key, value = key.strip(), value.strip()
        if key == "GROUP":
            group: dict[str, object] = {}
            stack[-1][1][value] = group
            stack.append((value, group))
        elif key == "END_GROUP":
            if len(stack) == 1 or stack[-1][0] != value:
                raise MTLError(f"{source}:{number}: END_GROUP = {value} closes no open group")
            stack.pop()
        elif value.startswith("(") and not value.endswith(")"):
            pending_key, pending = key, [value]
        else:
            stack[-1][1][key] = value
    if pending_key is not None:
        raise MTLError(f"{source}: unterminated array {pending_key}")
    return root


def parse_mtl_text(text: str, kind: str, source: str = "MTL") -> Groups:
    """Parse MTL content; ``kind`` is ``txt``, ``xml`` or ``json``."""
    try:
        if kind == "txt":
            return _from_tree(parse_odl(text, source), source)
        if kind == "json":
            return _from_tree(json.loads(text), source)
        if kind == "xml":
            element = ET.fromstring(text)

            def to_tree(node: ET.Element) -> object:
                children = list(node)
                if not children:
                    return node.text or ""
                return {child.tag: to_tree(child) for child in children}

            return _from_tree({element.tag: to_tree(element)}, source)
    except (ValueError, ET.ParseError) as exc:
        if isinstance(exc, MTLError):
            raise
        raise MTLError(f"{source}: not valid {kind.upper()}: {exc}") from None
    raise MTLError(f"{source}: unknown MTL format {kind!r}")


def parse_mtl(path: Path) -> Groups:
    """Parse an MTL file by its name (``…_MTL.txt``, ``.xml`` or ``.json``)."""
    return parse_mtl_bytes(Path(path).read_bytes(), Path(path).name)


def parse_mtl_bytes(data: bytes, name: str) -> Groups:
    """Parse an MTL file's bytes; ``name`` (``…_MTL.txt``, ``.xml`` or ``.json``) tells the format."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MTLError(f"{name}: not UTF-8 text") from None
    return parse_mtl_text(text, Path(name).suffix.lower().lstrip("."), name)


_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def parse_ang(path: Path) -> dict[str, dict[str, str]]:
    """ANG.txt groups; array values stay strings (see :func:`numbers`)."""
    return parse_ang_text(Path(path).read_text(encoding="utf-8"), Path(path).name)


def parse_ang_text(text: str, source: str = "ANG.txt") -> dict[str, dict[str, str]]:
    tree = parse_odl(text, source)
    return {k: {kk: str(vv) for kk, vv in v.items()} for k, v in tree.items() if isinstance(v, dict)}


def numbers(value: str) -> list[float]:
    return [float(n) for n in _NUMBER.findall(value)]
