"""napari reader and writers for QuPath GeoJSON (``.geojson``, ``.geojson.gz``, ``.geojson.zip``).

Reading: annotations (and TMA cores) become a Shapes layer, detections/cells/tiles a
second Shapes layer (or, above 5,000 of them, a Points layer of their centroids, since
napari Shapes needs minutes for 100,000 polygons), point objects a Points layer; ``name``,
``class``, ``object_type``, ``id`` and the measurements are layer features, and colours
come from the class.  Objects lie in level-0 pixels; when the viewer already shows a
slide with a known µm/px, the layers take its scale and units so they lie on top of it.

Holes: napari Shapes cannot draw a polygon with holes.  Such objects are drawn as an
outline, a Labels layer ``"<file> (holes kept)"`` shows them filled with their holes,
and every layer keeps the objects it was made from: saving writes unedited objects back
exactly as read, holes included.  A notification says so.

Writing: Shapes (polygons, rectangles, ellipses, paths, lines), Points and Labels layers
(traced as QuPath's ``ContourTracing.labelsToDetections`` does) become a QuPath 0.4+
GeoJSON FeatureCollection.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo._napari._geojson_layers import (
    MAX_SHAPES,
    centroids_layer,
    holes_layer,
    points_layer,
    points_to_objects,
    shapes_layer,
    shapes_to_objects,
)
from napari_histo._napari.reader import _notify  # one notification helper for all readers
from qupath_bridge import (
    ObjectType,
    PathObject,
    QuPathBridgeError,
    labels_to_objects,
    rc_to_xy,
    read_geojson,
    write_geojson,
)
from qupath_bridge.geometry import polygonal_parts

__all__ = [
    "get_geojson_reader",
    "layer_data_from_objects",
    "write_labels_geojson",
    "write_points_geojson",
    "write_shapes_geojson",
]

GEOJSON_SUFFIXES = (".geojson", ".geojson.gz", ".geojson.zip")
_AREA_TYPES = (ObjectType.ANNOTATION, ObjectType.TMA_CORE, ObjectType.ROOT)
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
        if obj.geometry.geom_type in ("Point", "MultiPoint"):
            groups["points"].append(obj)
        else:
            groups["annotations" if obj.object_type in _AREA_TYPES else "detections"].append(obj)
    layers = []
    if groups["annotations"]:
        layers.append(shapes_layer(groups["annotations"], f"{name} annotations", scale, mpp))
    detections = groups["detections"]
    if len(detections) > MAX_SHAPES:
        layers.append(centroids_layer(detections, f"{name} detections (centroids)", scale, mpp))
        _notify(
            f"{name}: {len(detections):,} detections are shown as centroids (napari Shapes would take "
            f"minutes above {MAX_SHAPES:,} polygons); saving the layer writes the full objects back.",
            level="info",
        )
    elif detections:
        layers.append(shapes_layer(detections, f"{name} detections", scale, mpp))
    if groups["points"]:
        layers.append(points_layer(groups["points"], f"{name} points", scale, mpp))
    holed = [o for o in objects if any(p.interiors for p in polygonal_parts(o.geometry))]
    if holed:
        layers.append(holes_layer(holed, f"{name} (holes kept)", scale))
        _notify(
            f"{name}: {len(holed)} object(s) have holes, which napari Shapes cannot draw: they are outlined "
            "in the Shapes layer, shown with their holes in the Labels layer '(holes kept)', and written "
            "back with their holes when saved unless their outline was edited.",
            level="info",
        )
    for _, kwargs, _ in layers:
        if mpp:
            kwargs["units"] = ("µm", "µm")  # as the slide layer has; napari ignores units that disagree
    return layers


# ---------------------------------------------------------------- writers


def write_shapes_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """napari writer: a Shapes layer → QuPath GeoJSON (objects in level-0 pixels)."""
    world = [_to_pixels(np.asarray(d, dtype=float)[:, -2:], attributes) for d in data]
    types = attributes.get("shape_type") or ["polygon"] * len(data)
    objects = shapes_to_objects(world, list(types), attributes.get("features"), _originals(attributes))
    return [str(write_geojson(objects, path))]


def write_points_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """napari writer: a Points layer → QuPath point annotations (or the objects of its centroids)."""
    world = _to_pixels(np.asarray(data, dtype=float).reshape(len(data), -1)[:, -2:], attributes)
    kind = ((attributes.get("metadata") or {}).get("qupath_bridge") or {}).get("kind", "points")
    objects = points_to_objects(world, attributes.get("features"), _originals(attributes), kind)
    return [str(write_geojson(objects, path))]


def write_labels_geojson(path: str, data: Any, attributes: dict) -> list[str]:
    """napari writer: a Labels layer → traced QuPath detections (one per label value)."""
    labels = np.asarray(data[0] if isinstance(data, list) else data)
    if labels.ndim != 2:
        raise ValueError(f"only 2-D label layers can be written as QuPath objects, got shape {labels.shape}")
    mpp = _world_units_per_px(attributes.get("metadata") or {})
    scale = _vector(attributes, "scale", 1.0) / mpp
    translate = _vector(attributes, "translate", 0.0) / mpp
    if not np.isclose(scale[0], scale[1]):
        raise ValueError(f"label pixels must be square to export to QuPath, got scale {tuple(scale)}")
    # top-left corner of pixel (0, 0): half a pixel before its centre, in level-0 pixel-centre units
    origin_xy = tuple(rc_to_xy(translate - 0.5 * scale))
    objects = labels_to_objects(labels, downsample=float(scale[0]), origin_xy=origin_xy)
    return [str(write_geojson(objects, path))]


def _to_pixels(data_rc: np.ndarray, attributes: dict) -> np.ndarray:
    """Layer data → world (scale, translate) → level-0 pixel-centre ``(row, col)``."""
    mpp = _world_units_per_px(attributes.get("metadata") or {})
    return (data_rc * _vector(attributes, "scale", 1.0) + _vector(attributes, "translate", 0.0)) / mpp


def _vector(attributes: dict, key: str, default: float) -> np.ndarray:
    """The last two (row, col) entries of a layer's ``scale`` or ``translate``."""
    value = attributes.get(key)
    return np.asarray(value if value is not None else (default, default), dtype=float)[-2:]


def _originals(attributes: dict) -> list[PathObject]:
    return list(((attributes.get("metadata") or {}).get("qupath_bridge") or {}).get("objects") or [])


def _world_units_per_px(metadata: dict) -> float:
    """World units per level-0 pixel: the slide's µm/px when the layers are in µm, else 1 (in pixels)."""
    mpp = _layer_mpp(metadata)
    return 1.0 if mpp is None else mpp


def _layer_mpp(metadata: dict) -> float | None:
    """µm/px turning the layer's world units into level-0 pixels (None: world units are pixels)."""
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
