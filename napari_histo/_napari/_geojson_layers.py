"""QuPath objects ⇄ napari layer data (Shapes, Points, Labels), without touching a viewer.

Every layer made here keeps the objects it shows in ``metadata["qupath_bridge"]["objects"]``
and the position of each shape's or point's object in the feature ``object_index``, so
saving writes back unchanged objects exactly as read (holes, ids, measurements) and
edited ones as drawn.  Vertices are ``(row, col)`` in level-0 pixels (napari's
pixel-centre convention, via :func:`qupath_bridge.xy_to_rc`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np
import shapely

from qupath_bridge import Classification, ObjectType, PathObject, objects_to_labels, rc_to_xy, xy_to_rc
from qupath_bridge.geometry import polygonal_parts

__all__ = [
    "MAX_SHAPES",
    "centroids_layer",
    "holes_layer",
    "points_layer",
    "points_to_objects",
    "shapes_layer",
    "shapes_to_objects",
]

MAX_SHAPES = 5_000  # napari Shapes needs ~2 s per 1,000 polygons; above this, detections show as centroids
HOLES_MAX_PX = 4096  # longest side of the Labels layer that shows objects with holes
LayerData = tuple[Any, dict[str, Any], str]
_DEFAULTS = {"object_index": -1, "name": "", "class": "", "object_type": "annotation", "id": ""}


def shapes_layer(objects: list[PathObject], name: str, scale: tuple, mpp: float | None) -> LayerData:
    """A Shapes layer: one polygon per polygon part, one path per line; holes not drawable."""
    data, types, rows, faces, edges = [], [], [], [], []
    for index, obj in enumerate(objects):
        color = _rgb(obj)
        holed = _has_holes(obj)
        for part in _parts(obj.geometry):
            line = part.geom_type == "LineString"
            rc = xy_to_rc(np.asarray(part.coords if line else part.exterior.coords))
            data.append(rc if line else rc[:-1])  # napari closes polygons itself
            types.append("path" if line else "polygon")
            rows.append(_feature_row(obj, index))
            # a holed object is filled by the "(holes kept)" Labels layer: an outline here
            faces.append([*color, 0.0 if line or holed else 0.35])
            edges.append([*color, 1.0])
    kwargs = {
        "name": name,
        "shape_type": types,
        **_features(rows),
        "face_color": np.array(faces),
        "edge_color": np.array(edges),
        "edge_width": 2 if objects and objects[0].object_type is ObjectType.ANNOTATION else 1,
        "opacity": 0.9,
        "scale": scale,
        "metadata": {"qupath_bridge": {"mpp": mpp, "kind": "shapes", "objects": list(objects)}},
    }
    return data, kwargs, "shapes"


def points_layer(objects: list[PathObject], name: str, scale: tuple, mpp: float | None) -> LayerData:
    """A Points layer of point objects (Point and MultiPoint), one napari point per vertex."""
    coords = [xy_to_rc(shapely.get_coordinates(o.geometry)) for o in objects]
    rows = [_feature_row(o, i) for i, (o, c) in enumerate(zip(objects, coords)) for _ in c]
    colors = [[*_rgb(o), 1.0] for o, c in zip(objects, coords) for _ in c]
    return _points(np.concatenate(coords), rows, colors, name, scale, mpp, objects, "points", size=10)


def centroids_layer(objects: list[PathObject], name: str, scale: tuple, mpp: float | None) -> LayerData:
    """A Points layer with one point per object at its centroid, sized like the object."""
    geoms = np.array([o.geometry for o in objects], dtype=object)
    coords = xy_to_rc(shapely.get_coordinates(shapely.centroid(geoms)))
    diameter = float(np.median(2 * np.sqrt(shapely.area(geoms) / np.pi))) or 10.0
    rows = [_feature_row(o, i) for i, o in enumerate(objects)]
    colors = [[*_rgb(o), 1.0] for o in objects]
    return _points(coords, rows, colors, name, scale, mpp, objects, "centroids", size=diameter)


def _points(
    coords: np.ndarray,
    rows: list[dict],
    colors: list[list[float]],
    name: str,
    scale: tuple,
    mpp: float | None,
    objects: list[PathObject],
    kind: str,
    size: float,
) -> LayerData:
    kwargs = {
        "name": name,
        **_features(rows),
        "face_color": np.array(colors),
        "size": size,
        "scale": scale,
        "metadata": {"qupath_bridge": {"mpp": mpp, "kind": kind, "objects": list(objects)}},
    }
    return coords, kwargs, "points"


def holes_layer(objects: list[PathObject], name: str, scale: tuple) -> LayerData:
    """A Labels layer drawing objects with their holes (label i = ``objects[i - 1]``)."""
    minx, miny, maxx, maxy = shapely.total_bounds([o.geometry for o in objects])
    downsample = max(1.0, float(np.ceil(max(maxx - minx, maxy - miny) / HOLES_MAX_PX)))
    origin = (float(np.floor(minx)), float(np.floor(miny)))
    shape = (int(np.ceil((maxy - origin[1]) / downsample)), int(np.ceil((maxx - origin[0]) / downsample)))
    labels = objects_to_labels(objects, shape, downsample=downsample, origin_xy=origin)
    # where label pixel (0, 0) is centred, in level-0 pixel-centre units
    translate = xy_to_rc(rc_to_xy([0.0, 0.0], downsample=downsample, origin_xy=origin))
    kwargs = {
        "name": name,
        "scale": (downsample * scale[0], downsample * scale[1]),
        "translate": tuple(translate * scale[0]),
        "opacity": 0.5,
        "colormap": {None: (0, 0, 0, 0), **{i + 1: (*_rgb(o), 1.0) for i, o in enumerate(objects)}},
        "metadata": {"qupath_bridge": {"kind": "holes", "downsample": downsample, "origin_xy": origin}},
    }
    return labels, kwargs, "labels"


# ---------------------------------------------------------------- layer data → objects


def shapes_to_objects(
    world_rc: list[np.ndarray], shape_types: list[str], features: Any, originals: list[PathObject]
) -> list[PathObject]:
    """Objects from Shapes vertices in level-0 pixel-centre ``(row, col)`` (world units / µm/px).

    Shapes with the same ``object_index`` form one object; an object whose outlines are
    unchanged is returned as read (holes and all) with the name and class of the table.
    """
    table = _table(features, len(world_rc))
    objects = []
    for index, members in _by_object(table, len(originals)).items():
        parts = [_shape_geometry(world_rc[i], shape_types[i]) for i in members]
        original = originals[index] if index >= 0 else None
        row = {k: v[members[0]] for k, v in table.items()}
        if original is not None and _same_outlines(original, parts):
            objects.append(_relabel(original, row))
            continue
        geometry = parts[0] if len(parts) == 1 else _combine(parts)
        base = original or PathObject(geometry, _object_type(row["object_type"]), id=row["id"] or None)
        is_ellipse = len(parts) == 1 and shape_types[members[0]] == "ellipse"
        objects.append(_relabel(dataclasses.replace(base, geometry=geometry, is_ellipse=is_ellipse), row))
    return objects


def points_to_objects(
    world_rc: np.ndarray, features: Any, originals: list[PathObject], kind: str
) -> list[PathObject]:
    """Objects from Points in level-0 pixel-centre ``(row, col)``.

    Points of a point object give its (Multi)Point; a centroid (``kind="centroids"``) gives
    its object back, moved by as much as the point was moved; new points are point annotations.
    """
    xy = rc_to_xy(np.asarray(world_rc, dtype=float).reshape(-1, 2))
    table = _table(features, len(xy))
    objects = []
    for index, members in _by_object(table, len(originals)).items():
        row = {k: v[members[0]] for k, v in table.items()}
        if index < 0:
            objects.append(_relabel(PathObject(shapely.Point(xy[members[0]])), row))
            continue
        original = originals[index]
        if kind == "centroids":
            dx, dy = xy[members[0]] - shapely.get_coordinates(original.geometry.centroid)[0]
            moved = abs(dx) > 1e-6 or abs(dy) > 1e-6
            geometry = shapely.transform(original.geometry, lambda c, d=(dx, dy): c + d) if moved else None
        else:
            before = shapely.get_coordinates(original.geometry)
            same = len(before) == len(members) and np.allclose(before, xy[members], atol=1e-6)
            geometry = None
            if not same:
                geometry = (
                    shapely.MultiPoint(xy[members]) if len(members) > 1 else shapely.Point(xy[members[0]])
                )
        changed = original if geometry is None else dataclasses.replace(original, geometry=geometry)
        objects.append(_relabel(changed, row))
    return objects


def _by_object(table: dict[str, list], n_originals: int) -> dict[int, list[int]]:
    """Rows per original object index; a row of no known object gets its own negative key."""
    groups: dict[int, list[int]] = defaultdict(list)
    for row, index in enumerate(table["object_index"]):
        groups[index if 0 <= index < n_originals else -1 - row].append(row)
    return groups


def _shape_geometry(world_rc: np.ndarray, shape_type: str) -> shapely.Geometry:
    xy = rc_to_xy(np.asarray(world_rc, dtype=float)[:, -2:])
    if shape_type in ("path", "line"):
        return shapely.LineString(xy)
    if shape_type == "ellipse":  # napari keeps the 4 corners of the bounding box
        centre, radii = xy.mean(axis=0), (xy.max(axis=0) - xy.min(axis=0)) / 2
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        xy = centre + radii * np.column_stack([np.cos(angles), np.sin(angles)])
    return shapely.Polygon(xy)


def _same_outlines(original: PathObject, parts: list[shapely.Geometry]) -> bool:
    originals = _parts(original.geometry)
    if len(originals) != len(parts):
        return False
    for before, after in zip(originals, parts):
        shell = before if before.geom_type == "LineString" else shapely.Polygon(before.exterior)
        if before.geom_type != after.geom_type or not shapely.equals_exact(shell, after, 1e-6):
            return False
    return True


def _relabel(obj: PathObject, row: dict[str, Any]) -> PathObject:
    """``obj`` with the name and class now in the feature table."""
    name, cls = row["name"] or None, row["class"] or None
    if (name, cls) == (obj.name, obj.class_name):
        return obj
    keep = obj.classification if cls == obj.class_name else None
    classification = keep or (Classification.from_name(cls) if cls else None)
    return dataclasses.replace(obj, name=name, classification=classification)


def _combine(parts: list[shapely.Geometry]) -> shapely.Geometry:
    if all(p.geom_type == "Polygon" for p in parts):
        return shapely.MultiPolygon(parts)
    if all(p.geom_type == "LineString" for p in parts):
        return shapely.MultiLineString(parts)
    return shapely.GeometryCollection(parts)


def _parts(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    if geometry.geom_type in ("Polygon", "LineString"):
        return [geometry]
    return [p for g in getattr(geometry, "geoms", []) for p in _parts(g)]


def _has_holes(obj: PathObject) -> bool:
    return any(p.interiors for p in polygonal_parts(obj.geometry))


def _feature_row(obj: PathObject, index: int) -> dict[str, Any]:
    return {
        "object_index": index,
        "name": obj.name or "",
        "class": obj.class_name or "",
        "object_type": obj.object_type.value,
        "id": obj.id or "",
        "has_holes": _has_holes(obj),
        **obj.measurements,
    }


def _features(rows: list[dict]) -> dict[str, dict]:
    """``features`` and ``feature_defaults`` for a layer: a shape drawn later is a new object."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    defaults = {k: _DEFAULTS.get(k, False if k == "has_holes" else np.nan) for k in keys}
    return {"features": {k: [row.get(k, np.nan) for row in rows] for k in keys}, "feature_defaults": defaults}


def _table(features: Any, n: int) -> dict[str, list]:
    """The feature columns the writers need, with defaults for layers drawn from scratch."""
    columns = {}
    for key, default in _DEFAULTS.items():
        values = list(features[key]) if features is not None and key in features else [default] * n
        columns[key] = [_clean(v, default) for v in values]
    return columns


def _clean(value: Any, default: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return int(value) if isinstance(default, int) else str(value)


def _object_type(value: str) -> ObjectType:
    try:
        return ObjectType(value)
    except ValueError:
        return ObjectType.ANNOTATION


def _rgb(obj: PathObject) -> list[float]:
    if obj.classification is not None:
        color = obj.classification.resolved_color[:3]
    else:
        color = obj.color[:3] if obj.color is not None else (255, 0, 0)  # QuPath's default object colour
    return [c / 255 for c in color]
