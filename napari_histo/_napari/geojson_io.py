"""napari reader and writers for QuPath GeoJSON (``.geojson``, ``.geojson.gz``, ``.geojson.zip``).

Reading: annotations (and TMA cores) become one Shapes layer, detections/cells/tiles a
second one, point objects a Points layer; ``name``, ``class``, ``object_type`` and ``id``
are layer features, face colours come from the class colour.  Shapes are placed in
level-0 pixels; when the viewer already shows a slide with a known µm/px, the layers take
its scale so they lie on top of it.

Holes: a napari Shapes layer cannot draw a polygon with holes.  Such objects are shown
by their outline, *and* (1) the complete objects are kept in ``layer.metadata
["qupath_bridge"]["objects"]`` and written back unchanged when their outline was not
edited, and (2) a Labels layer ``"<file> (holes kept)"`` shows them rasterised with their
holes.  A notification says so; nothing is lost silently.

Writing: a Shapes layer (polygons, rectangles, ellipses, paths, lines) or a Labels layer
(traced like QuPath's ``ContourTracing.labelsToDetections``) becomes a QuPath 0.4+ GeoJSON
FeatureCollection.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from qupath_bridge import (
    Classification,
    ObjectType,
    PathObject,
    QuPathBridgeError,
    labels_to_objects,
    objects_to_labels,
    rc_to_xy,
    read_geojson,
    write_geojson,
    xy_to_rc,
)
from qupath_bridge.geometry import polygonal_parts

__all__ = [
    "get_geojson_reader",
    "layer_data_from_objects",
    "shapes_to_objects",
    "write_labels_geojson",
    "write_shapes_geojson",
]

log = logging.getLogger(__name__)
GEOJSON_SUFFIXES = (".geojson", ".geojson.gz", ".geojson.zip")
_AREA_TYPES = (ObjectType.ANNOTATION, ObjectType.TMA_CORE, ObjectType.ROOT)
_HOLES_MAX_PX = 4096  # side of the Labels layer that shows objects with holes
LayerData = tuple[Any, dict[str, Any], str]


def get_geojson_reader(path: str | list[str]) -> Any:
    """A reader function for a QuPath GeoJSON path, or ``None`` (never raises)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str) or not path.lower().endswith(GEOJSON_SUFFIXES):
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            objects = read_geojson(path)
    except QuPathBridgeError as exc:
        _notify(str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a reader must never crash napari
        _notify(f"{path}: napari-histo could not read this GeoJSON ({type(exc).__name__}: {exc}).")
        return None
    for warning in caught:
        _notify(str(warning.message))
    name = Path(path).name

    def read(_path: Any) -> list[LayerData]:
        return layer_data_from_objects(objects, name, mpp=_viewer_slide_mpp())

    return read


def layer_data_from_objects(
    objects: list[PathObject], name: str, *, mpp: float | None = None
) -> list[LayerData]:
    """napari layer-data tuples for QuPath objects (see the module docstring)."""
    scale = (mpp, mpp) if mpp else (1.0, 1.0)
    groups: dict[str, list[PathObject]] = defaultdict(list)
    for obj in objects:
        kind = obj.geometry.geom_type
        if kind in ("Point", "MultiPoint"):
            groups["points"].append(obj)
        else:
            groups["annotations" if obj.object_type in _AREA_TYPES else "detections"].append(obj)
    layers = []
    units = {"units": ("µm", "µm")} if mpp else {}  # match the slide layer, or napari drops units
    for group in ("annotations", "detections"):
        if groups[group]:
            layers.append(_shapes_layer(groups[group], f"{name} {group}", scale, mpp))
    if groups["points"]:
        layers.append(_points_layer(groups["points"], f"{name} points", scale, mpp))
    holed = [o for o in objects if any(p.interiors for p in polygonal_parts(o.geometry))]
    if holed:
        layers.append(_holes_layer(holed, f"{name} (holes kept)", scale))
    for _, kwargs, _ in layers:
        kwargs.update(units)
        _notify(
            f"{name}: {len(holed)} object(s) have holes, which napari Shapes cannot draw. Their outlines "
            "are in the Shapes layer; the full objects are kept in its metadata and written back unchanged "
            "if the outline is not edited, and the Labels layer '(holes kept)' shows them with holes.",
            level="info",
        )
    return layers


def _shapes_layer(objects: list[PathObject], name: str, scale: tuple, mpp: float | None) -> LayerData:
    data, types, rows, faces, edges = [], [], [], [], []
    for obj in objects:
        color = np.array(_object_color(obj), dtype=float) / 255
        for part in _parts(obj.geometry):
            rc = xy_to_rc(np.asarray(part.coords if part.geom_type == "LineString" else part.exterior.coords))
            if part.geom_type == "Polygon":
                rc = rc[:-1]  # napari closes polygons itself
            data.append(rc)
            types.append("path" if part.geom_type == "LineString" else "polygon")
            rows.append(_feature_row(obj))
            # a holed object is filled by the "(holes kept)" Labels layer: an outline-only shape here
            filled = types[-1] == "polygon" and not rows[-1]["has_holes"]
            faces.append([*color, 0.35 if filled else 0.0])
            edges.append([*color, 1.0])
    kwargs = {
        "name": name,
        "shape_type": types,
        "features": _features(rows),
        "face_color": np.array(faces),
        "edge_color": np.array(edges),
        "edge_width": 2 if "annotations" in name else 1,
        "opacity": 0.9,
        "scale": scale,
        "metadata": {"qupath_bridge": {"mpp": mpp, "objects": {o.id: o for o in objects if o.id}}},
    }
    return data, kwargs, "shapes"


def _points_layer(objects: list[PathObject], name: str, scale: tuple, mpp: float | None) -> LayerData:
    coords, rows, colors = [], [], []
    for obj in objects:
        points = xy_to_rc(shapely.get_coordinates(obj.geometry))
        coords.append(points)
        rows += [_feature_row(obj)] * len(points)
        colors += [np.array(_object_color(obj)) / 255] * len(points)
    kwargs = {
        "name": name,
        "features": _features(rows),
        "face_color": np.array(colors),
        "size": 10,
        "scale": scale,
        "metadata": {"qupath_bridge": {"mpp": mpp}},
    }
    return np.concatenate(coords), kwargs, "points"


def _holes_layer(objects: list[PathObject], name: str, scale: tuple) -> LayerData:
    minx, miny, maxx, maxy = shapely.total_bounds([o.geometry for o in objects])
    downsample = max(1.0, float(np.ceil(max(maxx - minx, maxy - miny) / _HOLES_MAX_PX)))
    origin = (float(np.floor(minx)), float(np.floor(miny)))
    shape = (int(np.ceil((maxy - origin[1]) / downsample)), int(np.ceil((maxx - origin[0]) / downsample)))
    labels = objects_to_labels(objects, shape, downsample=downsample, origin_xy=origin)
    # pixel (0, 0) of the labels sits where xy_to_rc puts its centre, in level-0 pixel units
    translate = xy_to_rc(rc_to_xy([0.0, 0.0], downsample=downsample, origin_xy=origin))
    kwargs = {
        "name": name,
        "scale": (downsample * scale[0], downsample * scale[1]),
        "translate": tuple(translate * scale[0]),
        "opacity": 0.5,
        # label i is objects[i - 1]: paint it in the object's class colour, as the Shapes are
        "colormap": {None: (0, 0, 0, 0), **{i + 1: _rgba(o) for i, o in enumerate(objects)}},
        "metadata": {"qupath_bridge": {"downsample": downsample, "origin_xy": origin}},
    }
    return labels, kwargs, "labels"


def _parts(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    if geometry.geom_type in ("Polygon", "LineString"):
        return [geometry]
    return [p for g in getattr(geometry, "geoms", []) for p in _parts(g)]


def _feature_row(obj: PathObject) -> dict[str, Any]:
    return {
        "name": obj.name or "",
        "class": obj.class_name or "",
        "object_type": obj.object_type.value,
        "id": obj.id or "",
        "has_holes": any(p.interiors for p in polygonal_parts(obj.geometry)),
        **obj.measurements,
    }


def _features(rows: list[dict]) -> dict[str, list]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k, np.nan) for row in rows] for k in keys}


def _rgba(obj: PathObject) -> tuple[float, ...]:
    return (*(np.array(_object_color(obj)) / 255).tolist(), 1.0)


def _object_color(obj: PathObject) -> tuple[int, ...]:
    if obj.classification is not None:
        return obj.classification.resolved_color[:3]
    return obj.color[:3] if obj.color is not None else (255, 0, 0)  # QuPath's default object colour


# ---------------------------------------------------------------- writers


def write_shapes_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """napari writer: a Shapes layer → QuPath GeoJSON (objects in level-0 pixels)."""
    objects = shapes_to_objects(
        data,
        attributes.get("shape_type") or ["polygon"] * len(data),
        features=attributes.get("features"),
        metadata=attributes.get("metadata") or {},
        scale=attributes.get("scale"),
        translate=attributes.get("translate"),
    )
    return [str(write_geojson(objects, path))]


def write_labels_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """napari writer: a Labels layer → traced QuPath detections (one per label)."""
    labels = np.asarray(data[0] if isinstance(data, list) else data)
    if labels.ndim != 2:
        raise ValueError(f"only 2-D label layers can be written as QuPath objects, got shape {labels.shape}")
    mpp = _layer_mpp(attributes.get("metadata") or {}) or 1.0
    scale = np.asarray(attributes.get("scale") or (1.0, 1.0), dtype=float)[-2:] / mpp
    translate = np.asarray(attributes.get("translate") or (0.0, 0.0), dtype=float)[-2:] / mpp
    if not np.isclose(scale[0], scale[1]):
        raise ValueError(f"label pixels must be square to export to QuPath, got scale {tuple(scale)}")
    # corner of pixel (0, 0): its centre minus half a pixel, in level-0 pixel-centre units, then to x, y
    corner_rc = translate - 0.5 * scale
    origin_xy = tuple(rc_to_xy(corner_rc, downsample=1.0))
    objects = labels_to_objects(labels, downsample=float(scale[0]), origin_xy=origin_xy)
    return [str(write_geojson(objects, path))]


def shapes_to_objects(
    data: list[np.ndarray],
    shape_types: list[str],
    *,
    features: Any = None,
    metadata: dict | None = None,
    scale: Any = None,
    translate: Any = None,
) -> list[PathObject]:
    """QuPath objects from Shapes layer data (vertices ``(row, col)`` in layer data units).

    Shapes sharing a non-empty ``id`` feature form one object (a MultiPolygon).  An object
    read from GeoJSON whose outline was not edited is written back exactly as read (holes,
    measurements and all), with the name and class from the features table.
    """
    metadata = metadata or {}
    mpp = _layer_mpp(metadata) or 1.0
    scale = np.asarray(scale if scale is not None else (1.0, 1.0), dtype=float)[-2:]
    translate = np.asarray(translate if translate is not None else (0.0, 0.0), dtype=float)[-2:]
    table = _table(features, len(data))
    originals = (metadata.get("qupath_bridge") or {}).get("objects") or {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(len(data)):
        groups[table["id"][i] or f"\0{i}"].append(i)
    objects = []
    for key, members in groups.items():
        parts = [
            _shape_geometry(np.asarray(data[i])[:, -2:] * scale + translate, shape_types[i], mpp)
            for i in members
        ]
        first = members[0]
        original = originals.get(key)
        name = table["name"][first] or None
        cls = table["class"][first] or None
        if original is not None and _same_outline(original, parts):
            objects.append(_with_labels(original, name, cls))
            continue
        geometry = parts[0] if len(parts) == 1 else _combine(parts)
        objects.append(
            PathObject(
                geometry,
                _object_type(table["object_type"][first]),
                id=None if key.startswith("\0") else key,
                name=name,
                classification=None if cls is None else _class(cls, original),
                is_ellipse=shape_types[first] == "ellipse" and len(parts) == 1,
            )
        )
    return objects


def _shape_geometry(world_rc: np.ndarray, shape_type: str, mpp: float) -> shapely.Geometry:
    xy = rc_to_xy(world_rc / mpp)
    if shape_type in ("path", "line"):
        return shapely.LineString(xy)
    if shape_type == "ellipse":  # napari stores the 4 corners of the bounding box
        centre = xy.mean(axis=0)
        radii = (xy.max(axis=0) - xy.min(axis=0)) / 2
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        xy = centre + radii * np.column_stack([np.cos(angles), np.sin(angles)])
    return shapely.Polygon(xy)


def _same_outline(original: PathObject, parts: list[shapely.Geometry]) -> bool:
    shells = [shapely.Polygon(p.exterior) for p in polygonal_parts(original.geometry)]
    if len(shells) != len(parts) or original.geometry.geom_type not in ("Polygon", "MultiPolygon"):
        return False
    return all(shapely.equals_exact(shapely.Polygon(a.exterior), b, 1e-6) for a, b in zip(parts, shells))


def _combine(parts: list[shapely.Geometry]) -> shapely.Geometry:
    if all(p.geom_type == "Polygon" for p in parts):
        return shapely.MultiPolygon(parts)
    if all(p.geom_type == "LineString" for p in parts):
        return shapely.MultiLineString(parts)
    return shapely.GeometryCollection(parts)


def _with_labels(original: PathObject, name: str | None, cls: str | None) -> PathObject:
    if cls == original.class_name and name == original.name:
        return original
    return dataclasses.replace(
        original, name=name, classification=None if cls is None else _class(cls, original)
    )


def _class(name: str, original: PathObject | None) -> Classification:
    if original is not None and original.class_name == name:
        return original.classification
    return Classification.from_name(name)


def _object_type(value: str) -> ObjectType:
    try:
        return ObjectType(value)
    except ValueError:
        return ObjectType.ANNOTATION


def _table(features: Any, n: int) -> dict[str, list]:
    columns = {}
    for key in ("id", "name", "class", "object_type"):
        values = None
        if features is not None and key in getattr(features, "columns", features):
            values = list(features[key])
        columns[key] = [_text(v) for v in (values or [""] * n)]
    return columns


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _layer_mpp(metadata: dict) -> float | None:
    """µm/px that turns the layer's world units into level-0 pixels (None: world units are pixels)."""
    if "qupath_bridge" in metadata:  # a layer this reader made: its own choice, even None
        value = metadata["qupath_bridge"].get("mpp")
        return float(value) if value else None
    value = (metadata.get("napari_histo") or {}).get("mpp")
    return float(value) if value else _viewer_slide_mpp()


def _viewer_slide_mpp() -> float | None:
    """µm/px of the slide shown in the current viewer (None if none, or several disagree)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no viewer (headless use): pixels
        return None
    if viewer is None:
        return None
    values = {layer.metadata.get("napari_histo", {}).get("mpp") for layer in viewer.layers}
    values.discard(None)
    return values.pop() if len(values) == 1 else None


def _notify(message: str, level: str = "warning") -> None:
    try:
        from napari.utils.notifications import show_info, show_warning

        (show_info if level == "info" else show_warning)(message)
    except Exception:  # noqa: BLE001 - without napari's notification manager, log instead
        log.warning(message)
