"""Write :class:`PathObject` lists as the GeoJSON QuPath's reader accepts.

The default layout is canonical QuPath 0.4+ (what 0.4–0.7 write and read): a
FeatureCollection, a UUID ``id`` on every feature (made when absent), ``objectType``,
classification ``{name|names, color}`` always with a colour, measurements as a dict with
NaN/±inf as QuPath's ``"NaN"``/``"Infinity"``/``"-Infinity"`` strings, metadata written
once, valid polygons in level-0 pixels.  ``layout="0.3"`` writes QuPath 0.3's layout
(``object_type``, list measurements, ``{name, colorRGB}`` classes) for old installations.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
import os
import uuid
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from qupath_bridge._files import atomic_write
from qupath_bridge._perf import paused_gc
from qupath_bridge.errors import GeoJSONError, GeoJSONWarning
from qupath_bridge.geometry import invalid_polygonal, repair_polygonal
from qupath_bridge.objects import Classification, PathObject, packed_argb

__all__ = ["feature_from_object", "geometry_to_dict", "to_geojson", "write_geojson"]

LAYOUTS = ("0.4", "0.3")


def write_geojson(
    objects: Iterable[PathObject],
    path: str | os.PathLike,
    *,
    layout: str = "0.4",
    feature_collection: bool = True,
    pretty: bool = False,
    decimals: int = 2,
    include_measurements: bool = True,
) -> Path:
    """Write objects to a GeoJSON file QuPath can import, atomically.

    Parameters
    ----------
    objects : iterable of PathObject
        Geometries in level-0 pixels.
    path : str or path-like
        ``.geojson``/``.json`` (plain text), ``.gz`` (gzip) or ``.zip`` (one
        ``<stem>.geojson`` entry, as QuPath writes).  Written to a temporary file in the
        same folder, then renamed over ``path``: readers never see half a file.
    layout : {"0.4", "0.3"}
        ``"0.4"``: QuPath 0.4–0.7 layout (default).  ``"0.3"``: for QuPath 0.3.
    feature_collection : bool
        False writes a bare array (QuPath's export without the FeatureCollection option).
    pretty : bool
        Indent with 2 spaces.
    decimals : int
        Coordinate decimals; QuPath itself writes 2.
    include_measurements : bool
        False leaves measurements out (QuPath's EXCLUDE_MEASUREMENTS).

    Returns
    -------
    pathlib.Path
        The path written.

    Warns
    -----
    GeoJSONWarning
        When invalid polygons had to be repaired or empty geometries were skipped
        (counts and object indices in the message).
    """
    with paused_gc():
        data = to_geojson(
            objects,
            layout=layout,
            feature_collection=feature_collection,
            decimals=decimals,
            include_measurements=include_measurements,
        )
    separators = (",", ": ") if pretty else (",", ":")
    text = json.dumps(
        data, indent=2 if pretty else None, separators=separators, ensure_ascii=False, allow_nan=False
    )
    path = Path(path)
    payload = text.encode("utf-8")
    suffix = path.suffix.lower()
    if suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    elif suffix == ".zip":
        payload = _zip_bytes(payload, path.stem if path.stem.endswith(".geojson") else path.stem + ".geojson")
    atomic_write(path, payload)
    return path


def to_geojson(
    objects: Iterable[PathObject],
    *,
    layout: str = "0.4",
    feature_collection: bool = True,
    decimals: int = 2,
    include_measurements: bool = True,
) -> dict | list:
    """The JSON-ready GeoJSON of ``objects`` (see :func:`write_geojson` for the parameters)."""
    if layout not in LAYOUTS:
        raise GeoJSONError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    objects = list(objects)
    objects = _valid(objects)
    features = [
        feature_from_object(o, layout=layout, decimals=decimals, include_measurements=include_measurements)
        for o in objects
    ]
    return {"type": "FeatureCollection", "features": features} if feature_collection else features


def feature_from_object(
    obj: PathObject, *, layout: str = "0.4", decimals: int = 2, include_measurements: bool = True
) -> dict[str, Any]:
    """One GeoJSON Feature in QuPath's member order."""
    geometry = geometry_to_dict(obj.geometry, decimals)
    if not obj.plane.is_default:
        geometry["plane"] = {"c": obj.plane.c, "z": obj.plane.z, "t": obj.plane.t}
    if obj.is_ellipse:
        geometry["isEllipse"] = True
    feature: dict[str, Any] = {"type": "Feature"}
    if layout != "0.3":
        feature["id"] = obj.id if obj.id is not None else str(uuid.uuid4())
    feature["geometry"] = geometry
    if obj.nucleus_geometry is not None:  # cells; readers that predate it ignore the member
        feature["nucleusGeometry"] = geometry_to_dict(obj.nucleus_geometry, decimals)
    props: dict[str, Any] = {}
    if layout == "0.3":
        props["object_type"] = obj.object_type.legacy_name
    else:
        props["objectType"] = obj.object_type.value
    if obj.name is not None:
        props["name"] = obj.name
    if obj.color is not None:
        props["color"] = list(obj.color)
    if obj.classification is not None:
        props["classification"] = _classification(obj.classification, layout)
    if obj.is_locked or layout == "0.3":
        props["isLocked"] = obj.is_locked
    if obj.is_missing is not None:
        props["isMissing"] = obj.is_missing
    if include_measurements and obj.measurements:
        props["measurements"] = _measurements(obj.measurements, layout)
    if obj.metadata:
        props["metadata"] = dict(obj.metadata)
    if obj.children:
        props["childObjects"] = [
            feature_from_object(child, layout=layout, decimals=decimals) for child in obj.children
        ]
    for key, value in obj.extra.items():
        props.setdefault(key, _json_safe(value))
    feature["properties"] = props
    return feature


def geometry_to_dict(geometry: shapely.Geometry, decimals: int = 2) -> dict[str, Any]:
    """GeoJSON geometry of a shapely geometry, coordinates rounded, whole numbers as ints."""
    kind = geometry.geom_type
    if kind == "Polygon":
        return {"type": kind, "coordinates": _rings(geometry, decimals)}
    if kind == "MultiPolygon":
        parts = [_rings(p, decimals) for p in geometry.geoms]
        if len(parts) == 1:  # QuPath writes a single polygon as Polygon
            return {"type": "Polygon", "coordinates": parts[0]}
        return {"type": kind, "coordinates": parts}
    if kind in ("LineString", "LinearRing"):
        return {"type": "LineString", "coordinates": _coords(geometry, decimals)}
    if kind == "Point":
        return {"type": kind, "coordinates": _coords(geometry, decimals)[0]}
    if kind == "MultiPoint":
        return {"type": kind, "coordinates": _coords(geometry, decimals)}
    if kind == "MultiLineString":
        return {"type": kind, "coordinates": [_coords(g, decimals) for g in geometry.geoms]}
    if kind == "GeometryCollection":
        return {"type": kind, "geometries": [geometry_to_dict(g, decimals) for g in geometry.geoms]}
    raise GeoJSONError(f"cannot write a {kind} geometry to GeoJSON")


def _rings(polygon: shapely.Polygon, decimals: int) -> list:
    return [_coords(polygon.exterior, decimals)] + [_coords(r, decimals) for r in polygon.interiors]


def _coords(geometry: shapely.Geometry, decimals: int) -> list:
    xy = np.round(shapely.get_coordinates(geometry), decimals)
    whole = xy.astype(np.int64)
    if np.array_equal(whole, xy):
        return whole.tolist()
    return xy.tolist()


def _classification(cls: Classification, layout: str) -> dict[str, Any]:
    color = cls.resolved_color
    if layout == "0.3":
        out: dict[str, Any] = {}
        for depth in range(len(cls.names)):
            entry = {"name": cls.names[depth], "colorRGB": packed_argb(color)}
            if out:
                entry["parentClass"] = out
            out = entry
        return out
    key, names = ("name", cls.names[0]) if len(cls.names) == 1 else ("names", list(cls.names))
    return {key: names, "color": list(color)}


def _measurements(measurements: dict[str, float], layout: str) -> dict | list:
    values = {str(k): _qupath_number(v) for k, v in measurements.items()}
    if layout == "0.3":
        return [{"name": k, "value": v} for k, v in values.items()]
    return values


def _qupath_number(value: float) -> float | str:
    value = float(value)
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _json_safe(value: Any) -> Any:
    """An unknown property as strict JSON: non-finite numbers become QuPath's "NaN"/"Infinity" strings."""
    if isinstance(value, float):
        return _qupath_number(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**300:
        return "Infinity" if value > 0 else "-Infinity"  # beyond a double, as Gson reads it
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _valid(objects: list[PathObject]) -> list[PathObject]:
    """Repair invalid polygons, drop empty geometries; one warning with the object indices."""
    if not objects:
        return objects
    invalid = np.flatnonzero(invalid_polygonal([o.geometry for o in objects]))
    repaired = {int(i): repair_polygonal(objects[i].geometry) for i in invalid}
    out, empty = [], []
    for i, obj in enumerate(objects):
        geometry = repaired.get(i, obj.geometry)
        if geometry is None or geometry.is_empty:
            empty.append(i)
            continue
        out.append(obj if i not in repaired else _with_geometry(obj, geometry))
    if len(repaired) or empty:
        warnings.warn(
            f"write_geojson: {len(repaired)} invalid polygon(s) repaired with make_valid "
            f"(objects {_first(list(repaired))}); {len(empty)} empty geometr(ies) not written "
            f"(objects {_first(empty)})",
            GeoJSONWarning,
            stacklevel=4,
        )
    return out


def _with_geometry(obj: PathObject, geometry: shapely.Geometry) -> PathObject:
    return dataclasses.replace(obj, geometry=geometry)


def _first(indices: list[int], limit: int = 10) -> str:
    text = ", ".join(map(str, indices[:limit]))
    return (text + ", ...") if len(indices) > limit else (text or "none")


def _zip_bytes(payload: bytes, entry: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entry, payload)
    return buffer.getvalue()
