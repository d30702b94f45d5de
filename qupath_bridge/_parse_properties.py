"""GeoJSON ``properties`` of every QuPath version → PathObject fields.

Handles QuPath 0.2 (``id`` class names, ``colorRGB``, ``parentClass``, list
measurements), 0.3 (``object_type``) and 0.4–0.7 (``objectType``, ``{name|names, color}``,
dict measurements with ``"NaN"``/``"Infinity"`` strings).  Each oddity is recorded in
the :class:`~qupath_bridge._report.ReadReport`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from qupath_bridge._report import ReadReport, Severity, short
from qupath_bridge.objects import Classification, ObjectType, class_color

__all__ = [
    "LEGACY_IDS",
    "parse_classification",
    "parse_color",
    "parse_measurements",
    "parse_metadata",
    "parse_object_type",
]

LEGACY_IDS = {
    "PathAnnotationObject": ObjectType.ANNOTATION,
    "PathDetectionObject": ObjectType.DETECTION,
    "PathTileObject": ObjectType.TILE,
    "PathCellObject": ObjectType.CELL,
    "TMACoreObject": ObjectType.TMA_CORE,
    "PathRootObject": ObjectType.ROOT,
}
_TYPES = {t.value: t for t in ObjectType} | {"tma_core": ObjectType.TMA_CORE}


def parse_object_type(feature: dict, props: dict, index: int, report: ReadReport) -> ObjectType:
    """The object type, read in QuPath's order: objectType, object_type, legacy id, type."""
    for key in ("objectType", "object_type"):
        if key in props:
            value = props[key]
            if isinstance(value, str) and value in _TYPES:
                return _TYPES[value]
            report.add(
                index,
                "unknown-object-type",
                Severity.WARNING,
                f"{key} {_short(value)} is not one of {sorted(_TYPES)} (QuPath matches case-sensitively): "
                "read as an annotation",
            )
            return ObjectType.ANNOTATION
    legacy = feature.get("id")
    if isinstance(legacy, str) and legacy in LEGACY_IDS:
        return LEGACY_IDS[legacy]
    # plain GeoJSON often has its own "type" property (DSA: "polyline"): QuPath falls back to annotation
    fallback = props.get("type")
    return _TYPES.get(fallback, ObjectType.ANNOTATION) if isinstance(fallback, str) else ObjectType.ANNOTATION


def parse_color(value: Any) -> tuple[int, ...] | None:
    """``[r, g, b(, a)]`` or a packed (A)RGB int → ``(r, g, b)`` or ``(r, g, b, a)``.

    Alpha is kept only when it is neither 0 nor 255, as QuPath writes it.  Returns None
    for anything else.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not -(2**31) <= value < 2**32:  # neither a Java int nor an unsigned 32-bit ARGB
            return None
        packed = value & 0xFFFFFFFF
        alpha = packed >> 24
        rgb = ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)
        return rgb if alpha in (0, 255) else (*rgb, alpha)
    if isinstance(value, list) and len(value) in (3, 4):
        if all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
            color = tuple(int(round(v)) for v in value)
            return color[:3] if len(color) == 4 and color[3] in (0, 255) else color
    return None


def parse_classification(value: Any, index: int, report: ReadReport) -> Classification | None:
    """Any QuPath classification form → :class:`Classification` (always with a colour)."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        names = _nonempty(tuple(value.split(": ")), value, index, report)
        return Classification(names, class_color(names)) if names else None
    if not isinstance(value, dict):
        message = f"classification {_short(value)} ignored"
        report.add(index, "bad-classification", Severity.WARNING, message)
        return None
    found = _class_names(value)
    names = _nonempty(found, value, index, report) if found else ()
    if not names:
        report.add(
            index,
            "bad-classification",
            Severity.WARNING,
            f"classification {_short(value)} has no usable 'name' or 'names': read as unclassified",
        )
        return None
    raw = value.get("color", value.get("colorRGB"))
    color = parse_color(raw)
    if color is None:
        color = class_color(names)
        if raw is None:
            report.add(
                index,
                "class-without-color",
                Severity.ERROR,
                f"classification {_short(': '.join(names))} has no 'color' (QuPath 0.4–0.7 rejects this with "
                f"a JsonParseException): gave it {color}",
            )
        else:
            message = f"class colour {_short(raw)} unreadable: used {color}"
            report.add(index, "bad-color", Severity.WARNING, message)
    return Classification(names, color)


def _nonempty(names: tuple[str, ...], value: Any, index: int, report: ReadReport) -> tuple[str, ...]:
    """Class name parts without empty ones (``"Tumor: "``), reported when any were dropped."""
    kept = tuple(n for n in names if n.strip())
    if len(kept) != len(names):
        message = f"classification {_short(value)} has an empty name part: read as {_short(': '.join(kept))}"
        report.add(index, "bad-classification", Severity.WARNING, message)
    return kept


def _class_names(value: dict) -> tuple[str, ...] | None:
    names = value.get("names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return tuple(names)
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return None
    parent = value.get("parentClass")
    prefix = _class_names(parent) if isinstance(parent, dict) else None
    return (*(prefix or ()), *name.split(": "))


def parse_measurements(value: Any, index: int, report: ReadReport) -> dict[str, float]:
    """List ``[{name, value}]`` (≤0.3) or dict (≥0.4) → ``{name: float}``; "NaN"/"Infinity" understood."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        try:
            items = [(m["name"], m.get("value")) for m in value]
        except (TypeError, KeyError):
            report.add(index, "bad-measurements", Severity.WARNING, "measurement list entries need 'name'")
            items = [(m["name"], m.get("value")) for m in value if isinstance(m, dict) and "name" in m]
    else:
        report.add(index, "bad-measurements", Severity.WARNING, f"measurements {_short(value)} ignored")
        return {}
    out: dict[str, float] = {}
    for name, raw in items:
        number = _number(raw)
        if number is None:
            report.add(
                index,
                "bad-measurement-value",
                Severity.WARNING,
                f"measurement {_short(name, 40)} = {_short(raw)} is not a number a double can hold: "
                "dropped (QuPath accepts numbers and 'NaN'/'Infinity' strings)",
            )
            continue
        out[name if isinstance(name, str) else _short(name, 200)] = number
    return out


def _number(raw: Any) -> float | None:
    if raw is None:
        return math.nan
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:  # an integer of 309+ digits
            return None
    if isinstance(raw, str) and len(raw) < 400:
        try:
            return float(raw)  # also reads "NaN", "nan", "Infinity", "-inf"
        except ValueError:
            return None
    return None


def parse_metadata(value: Any, index: int, report: ReadReport) -> dict[str, str]:
    """QuPath metadata: object of primitives, stored as strings (as Java's toString writes them)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(index, "bad-metadata", Severity.WARNING, f"metadata {_short(value)} ignored")
        return {}
    out = {}
    for key, raw in value.items():
        if isinstance(raw, bool):
            out[str(key)] = "true" if raw else "false"
        elif isinstance(raw, str):
            out[str(key)] = raw
        elif isinstance(raw, int | float):
            out[str(key)] = _short(raw, 400)
        elif raw is None:
            out[str(key)] = "null"
        else:
            try:
                out[str(key)] = json.dumps(raw)
            except (ValueError, TypeError, RecursionError):  # 5,000-digit ints, absurd nesting
                out[str(key)] = _short(raw, 400)
            message = f"metadata {_short(key, 40)} is not a primitive: kept as JSON"
            report.add(index, "bad-metadata", Severity.WARNING, message)
    return out


def _short(value: Any, limit: int = 60) -> str:
    return short(value, limit)
