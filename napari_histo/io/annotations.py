"""Annotated regions from a QuPath GeoJSON file, for tile labels.

Reading GeoJSON is ``qupath_bridge``'s job; this module only turns what
``qupath_bridge.read_geojson`` returns into
:class:`~napari_histo.core.tile_labels.AnnotationRegion` (level-0 row, col).
It accepts the shapes that reader may return: objects with ``geometry``
(shapely or a GeoJSON dict) and ``classification`` / ``class_name``
attributes, or plain GeoJSON feature dicts.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from napari_histo.core.tile_labels import AnnotationRegion
from napari_histo.errors import MissingDependencyError

__all__ = ["read_annotation_regions", "regions_from_objects"]

_NOT_REGIONS = {"detection", "tile", "cell", "tmaCore", "tma_core", "root"}


def read_annotation_regions(path: str | os.PathLike[str]) -> list[AnnotationRegion]:
    """Polygons and class names of the annotations in a QuPath GeoJSON export.

    Raises
    ------
    MissingDependencyError
        When ``qupath_bridge.read_geojson`` is not available in this installation.
    """
    try:
        bridge = importlib.import_module("qupath_bridge")
        read_geojson = bridge.read_geojson
    except (ImportError, AttributeError) as exc:
        raise MissingDependencyError(
            "--annotations needs qupath_bridge.read_geojson, which this installation does not have yet; "
            "update napari-histo (pip install -U napari-histo) or run without --annotations"
        ) from exc
    return regions_from_objects(read_geojson(os.fspath(path)))


def regions_from_objects(objects: Any) -> list[AnnotationRegion]:
    """Regions of annotation objects (unclassified ones get the class ``"Region*"`` like QuPath)."""
    if isinstance(objects, dict):  # a FeatureCollection as a dict
        objects = objects.get("features", [])
    regions: list[AnnotationRegion] = []
    for obj in objects:
        if _object_type(obj) in _NOT_REGIONS:
            continue
        name = _class_name(obj) or "Region*"
        for exterior, holes in _polygons(_get(obj, "geometry")):
            regions.append(AnnotationRegion(name, _rc(exterior), tuple(_rc(h) for h in holes)))
    return regions


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _object_type(obj: Any) -> str | None:
    kind = _get(obj, "object_type") or _get(obj, "objectType")
    props = _get(obj, "properties")
    if kind is None and isinstance(props, dict):
        kind = props.get("objectType") or props.get("object_type")
    return getattr(kind, "value", kind)


def _class_name(obj: Any) -> str | None:
    cls = _get(obj, "classification") or _get(obj, "class_name") or _get(obj, "path_class")
    props = _get(obj, "properties")
    if cls is None and isinstance(props, dict):
        cls = props.get("classification")
    if cls is None or isinstance(cls, str):
        return cls or None
    names = _get(cls, "names")
    if names:
        return ": ".join(names)
    return _get(cls, "name")


def _polygons(geometry: Any) -> list[tuple[Any, list[Any]]]:
    if geometry is None:
        return []
    if hasattr(geometry, "geom_type"):  # shapely
        if geometry.geom_type == "Polygon":
            return [(geometry.exterior.coords, [h.coords for h in geometry.interiors])]
        if geometry.geom_type in ("MultiPolygon", "GeometryCollection"):
            return [p for g in geometry.geoms for p in _polygons(g)]
        return []
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        return [(coords[0], coords[1:])]
    if kind == "MultiPolygon":
        return [(poly[0], poly[1:]) for poly in coords]
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries", []) for p in _polygons(g)]
    return []


def _rc(coords: Any) -> np.ndarray:
    xy = np.asarray(list(coords), dtype=np.float64)[:, :2]
    return xy[:, ::-1].copy()  # GeoJSON (x, y) -> (row, col)
