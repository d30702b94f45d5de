"""Read any GeoJSON that QuPath 0.2–0.7 writes or accepts into :class:`PathObject` lists.

Accepted containers: FeatureCollection, single Feature, bare array (QuPath's export
without the FeatureCollection option, possibly nested), bare geometries (become
annotations, as in QuPath).  Files: ``.geojson``, ``.json``, ``.gz`` and ``.zip`` (the
first ``.geojson``/``.json`` entry).  Plain RFC 7946 / DSA GeoJSON is read as
annotations with a warning.  Every repair (open rings closed, self-intersections fixed,
z dropped, empty geometries skipped) is counted and summarised: one warning line per kind.
"""

from __future__ import annotations

import dataclasses
import uuid
import warnings
from typing import Any

import shapely

from qupath_bridge._load import DUPLICATES, GeoJSONSource, load_json
from qupath_bridge._parse_geometry import GEOMETRY_TYPES, parse_geometry, parse_plane
from qupath_bridge._parse_properties import (
    LEGACY_IDS,
    parse_classification,
    parse_color,
    parse_measurements,
    parse_metadata,
    parse_object_type,
)
from qupath_bridge._perf import paused_gc
from qupath_bridge._report import ReadReport, Severity, json_short, short
from qupath_bridge.errors import GeoJSONError, GeoJSONWarning
from qupath_bridge.geometry import invalid_polygonal, repair_polygonal
from qupath_bridge.objects import ObjectType, PathObject

__all__ = ["load_json", "read_geojson", "read_geojson_report"]

_KNOWN_PROPERTIES = {
    "objectType", "object_type", "name", "color", "classification", "isLocked", "isMissing",
    "measurements", "metadata", "childObjects", "children",
}  # fmt: skip
_QUPATH_MARKERS = ("objectType", "object_type", "classification", "isLocked", "measurements")
_BARE = "\x00bare-geometry"  # marks a Feature made here around a bare geometry
_LARGE_TEXT = 1 << 20  # a text property longer than this (1 MB) is worth a word
_DEEP = "nested too deeply to read (child objects or arrays); the file is damaged or not GeoJSON"


def read_geojson(source: GeoJSONSource) -> list[PathObject]:
    """Read QuPath objects from GeoJSON.

    Parameters
    ----------
    source : path, str, bytes, dict or list
        A file path (``.geojson``, ``.json``, ``.gz``, ``.zip``), JSON text, or already
        parsed JSON.

    Returns
    -------
    list of PathObject
        In file order; geometries in level-0 pixels, valid (repaired where needed).

    Raises
    ------
    QuPathFileNotFoundError
        The path does not exist.
    GeoJSONError
        Invalid JSON, an unknown geometry type, non-finite or impossibly large
        coordinates; the message names the feature index and the value.

    Warns
    -----
    GeoJSONWarning
        One single-line warning per kind of change (repaired, converted or skipped), with
        counts and feature indices, after one saying how many features were skipped, if
        any (see :func:`read_geojson_report` for the details).
    """
    report = read_geojson_report(source)
    lines = report.summary_lines()
    skipped = report.n_features - len(report.objects)
    if skipped:
        lines.insert(0, f"read {len(report.objects)} of {report.n_features} features: {skipped} skipped")
    for line in lines:
        warnings.warn(f"{report.source}: {line}", GeoJSONWarning, stacklevel=2)
    return report.objects


def read_geojson_report(source: GeoJSONSource, *, strict: bool = True) -> ReadReport:
    """Like :func:`read_geojson`, but return a :class:`ReadReport` and never warn.

    With ``strict=False`` unreadable features are recorded as errors and skipped instead
    of raising (what ``histo qupath validate`` uses to list every problem at once).
    """
    report = ReadReport(strict=strict)
    with paused_gc():
        data = load_json(source, report)
        try:
            features = _features(data, report)
            report.n_features = len(features)
            layouts = [_layout(feature) for feature in features]
            for index, feature in enumerate(features):
                obj = _parse_feature(feature, index, report)
                if obj is not None:
                    report.objects.append(obj)
                    report.object_indices.append(index)
        except RecursionError as exc:  # parsed dicts/lists given directly skip the loader's depth scan
            raise GeoJSONError(f"{report.source}: {_DEEP}") from exc
    if not features:
        message = "holds no features (an empty export?): nothing was read"
        report.add(None, "no-features", Severity.WARNING, message)
    kinds = set(layouts)
    report.layout = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "empty"
    n_foreign = layouts.count("foreign")
    if n_foreign:
        message = f"{n_foreign} feature(s) carry no QuPath properties (plain GeoJSON): read as annotations"
        report.add(None, "foreign-geojson", Severity.WARNING, message)
    _repair_invalid(report)
    _unique_ids(report)
    return report


def _features(data: Any, report: ReadReport) -> list[dict]:
    if isinstance(data, list):
        report.container = "array"
        return [f for i, item in enumerate(data) for f in _flatten(item, report, f"array item {i}")]
    if isinstance(data, dict):
        kind = data.get("type")
        report.container = kind if kind in ("FeatureCollection", "Feature") else "geometry"
        return _flatten(data, report, "the top level")
    raise GeoJSONError(
        f"{report.source}: the top level is {_json_kind(data)} {json_short(data, 40)}, not GeoJSON; expected "
        "a FeatureCollection, a Feature, a geometry or an array of them"
    )


def _flatten(item: Any, report: ReadReport, where: str) -> list[dict]:
    kind = item.get("type") if isinstance(item, dict) else None
    if isinstance(item, list):
        return [f for i, sub in enumerate(item) for f in _flatten(sub, report, f"{where}, item {i}")]
    if kind == "FeatureCollection":
        features = item.get("features")
        if not isinstance(features, list):
            got = "no 'features' list" if "features" not in item else f"'features' = {short(features)}"
            raise GeoJSONError(
                f"{report.source}: {where} is a FeatureCollection with {got}; it needs a list of "
                "Features ('features': [] when empty)"
            )
        return features
    if kind == "Feature":
        return [item]
    if kind in GEOMETRY_TYPES:
        return [{"type": "Feature", "geometry": item, "properties": {}, _BARE: True}]
    if isinstance(item, dict) and ("pathClasses" in item or "names" in item or "colorRGB" in item):
        raise GeoJSONError(
            f"{report.source}: {where} is a QuPath class or class list (classes.json), not GeoJSON objects; "
            "export the objects in QuPath (File › Objects data › Export as GeoJSON)"
        )
    if isinstance(item, dict) and "type" not in item:
        keys = short(sorted(map(str, item))[:6], 80)
        found = f"a JSON object without a GeoJSON 'type' (keys {keys})"
    elif isinstance(item, dict):
        found = f"a JSON object of type {short(kind)}"
    else:
        found = f"{_json_kind(item)} {json_short(item, 40)}"
    raise GeoJSONError(
        f"{report.source}: {where} is {found}, not GeoJSON; expected FeatureCollection, "
        f"Feature, a geometry ({', '.join(GEOMETRY_TYPES)}) or an array of them"
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "JSON"
    return "a JSON array" if isinstance(value, list) else "a JSON object"


def _layout(feature: Any) -> str:
    if not isinstance(feature, dict):
        return "foreign"
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        return "foreign"
    if "objectType" in props:
        return "0.4+"
    if "object_type" in props:
        return "0.3"
    if isinstance(feature.get("id"), str) and feature["id"] in LEGACY_IDS:
        return "0.2"
    if feature.get(_BARE):
        return "geometry"  # a bare geometry: QuPath imports it as an annotation
    if any(k in props for k in _QUPATH_MARKERS):
        return "qupath"  # QuPath properties without a version marker
    return "foreign"


def _parse_feature(feature: Any, index: int, report: ReadReport) -> PathObject | None:
    if not isinstance(feature, dict):
        report.fail(index, "not-a-feature", f"expected a Feature object, got {short(feature)}")
        return None
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        report.add(index, "bad-properties", Severity.WARNING, f"properties {short(props)} ignored")
        props = {}
    if props.get(DUPLICATES):
        report.add(
            index,
            "duplicate-key",
            Severity.INFO,
            f"duplicated key(s) {props[DUPLICATES]} in properties (QuPath 0.5–0.7 writer quirk): merged",
        )
    for key, value in props.items():
        if isinstance(value, str) and len(value) > _LARGE_TEXT:
            message = (
                f"property {short(key, 40)} holds {len(value) / 2**20:,.1f} MB of text: kept as it is "
                "(QuPath keeps only the properties it knows)"
            )
            report.add(index, "large-property", Severity.WARNING, message)
    geometry = parse_geometry(feature.get("geometry"), index, report)
    if geometry is None:
        return None
    object_type = parse_object_type(feature, props, index, report)
    geom_dict = feature.get("geometry") or {}
    nucleus = None
    if feature.get("nucleusGeometry") is not None:
        if object_type is ObjectType.CELL:
            nucleus = parse_geometry(feature["nucleusGeometry"], index, report)
        else:
            message = f"nucleusGeometry on a {object_type.value} ignored (QuPath uses it for cells only)"
            report.add(index, "nucleus-not-cell", Severity.WARNING, message)
    children = tuple(
        obj for child in _children(props, index, report) if (obj := _parse_feature(child, index, report))
    )
    obj = PathObject(
        geometry=geometry,
        object_type=object_type,
        id=_parse_id(feature.get("id"), index, report),
        name=_parse_name(props.get("name"), index, report),
        color=_parse_object_color(props.get("color"), index, report),
        classification=parse_classification(props.get("classification"), index, report),
        measurements=parse_measurements(props.get("measurements"), index, report),
        metadata=parse_metadata(props.get("metadata"), index, report),
        is_locked=props.get("isLocked") is True,
        is_ellipse=geom_dict.get("isEllipse") is True,
        plane=parse_plane(geom_dict, index, report),
        nucleus_geometry=nucleus,
        is_missing=props["isMissing"] if isinstance(props.get("isMissing"), bool) else None,
        children=children,
        extra={k: v for k, v in props.items() if k not in _KNOWN_PROPERTIES and k != DUPLICATES},
    )
    return obj


def _children(props: dict, index: int, report: ReadReport) -> list:
    value = props.get("childObjects") or props.get("children") or []
    if isinstance(value, list):
        return value
    message = f"child objects {short(value)} are not a list: ignored"
    report.add(index, "bad-children", Severity.WARNING, message)
    return []


def _parse_name(value: Any, index: int, report: ReadReport) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # as QuPath's getAsString does
    report.add(index, "bad-name", Severity.WARNING, f"name {short(value)} is not text: ignored")
    return None


def _parse_object_color(value: Any, index: int, report: ReadReport) -> tuple[int, ...] | None:
    color = parse_color(value)
    if color is None and value is not None:
        message = f"object colour {short(value)} unreadable (QuPath reads [r, g, b] or an int): ignored"
        report.add(index, "bad-color", Severity.WARNING, message)
    return color


def _parse_id(value: Any, index: int, report: ReadReport) -> str | None:
    if value is None or (isinstance(value, str) and value in LEGACY_IDS):
        return None
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            return value
        except ValueError:
            pass
    message = f"id {short(value)} is not a UUID: QuPath (and write_geojson) give the object a new one"
    report.add(index, "non-uuid-id", Severity.WARNING, message)
    return None


def _repair_invalid(report: ReadReport) -> None:
    """Repair invalid polygons (ROIs and nuclei), drop empty geometries; validity checked in one call."""
    objects, indices = report.objects, report.object_indices
    if not objects:
        return
    invalid = invalid_polygonal([o.geometry for o in objects])
    invalid_nucleus = invalid_polygonal([o.nucleus_geometry for o in objects])
    kept, kept_indices = [], []
    for i, (obj, index) in enumerate(zip(objects, indices)):
        changes = {}
        if invalid[i]:
            changes["geometry"] = _repaired(obj.geometry, index, "polygon", report)
        if invalid_nucleus[i]:
            changes["nucleus_geometry"] = _repaired(obj.nucleus_geometry, index, "nucleus polygon", report)
        if changes.get("geometry", obj.geometry).is_empty:
            message = f"empty {obj.geometry.geom_type}: object skipped"
            report.add(index, "empty-geometry", Severity.WARNING, message)
            continue
        kept.append(dataclasses.replace(obj, **changes) if changes else obj)
        kept_indices.append(index)
    report.objects[:] = kept
    report.object_indices[:] = kept_indices


def _unique_ids(report: ReadReport) -> None:
    """A repeated id stays with its first object; later ones get a new id (None) with a warning."""
    first: dict[str, int] = {}
    for i, (obj, index) in enumerate(zip(report.objects, report.object_indices)):
        if obj.id is None:
            continue
        if obj.id not in first:
            first[obj.id] = index
            continue
        message = (
            f"id {obj.id} is also the id of feature {first[obj.id]}: this object gets a new id "
            "(QuPath 0.4+ would keep both until its refreshDuplicateIDs() command is run)"
        )
        report.add(index, "duplicate-id", Severity.WARNING, message)
        report.objects[i] = dataclasses.replace(obj, id=None)


def _repaired(geometry: shapely.Geometry, index: int, what: str, report: ReadReport) -> shapely.Geometry:
    message = f"invalid {what} ({shapely.is_valid_reason(geometry)}): repaired, keeping the area it encloses"
    report.add(index, "invalid-polygon", Severity.WARNING, message)
    return repair_polygonal(geometry)
