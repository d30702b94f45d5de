"""The QuPath side of slide work: tiles → QuPath GeoJSON (one path), QuPath annotations → tile labels.

Coordinates cross between numpy's ``(row, col)`` and QuPath's ``(x, y)`` only
through ``qupath_bridge.rc_to_xy`` / ``xy_to_rc`` (pixel-centre convention on
our side, corner-origin on QuPath's), so tiles written here and annotations
read here sit where QuPath shows them, to the half pixel.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import qupath_bridge as qb
from napari_histo.core.tile_labels import AnnotationRegion
from napari_histo.core.tiling import TileGrid
from napari_histo.models.engine import TilePredictions

__all__ = [
    "annotation_regions",
    "read_annotation_regions",
    "tile_objects",
    "write_prediction_geojson",
    "write_tiles_geojson",
]

_NAMESPACE = uuid.UUID("6f1c8a52-3f0e-4d3c-9a57-8d0f6a1b2c3d")
_NOT_REGIONS = {qb.ObjectType.DETECTION, qb.ObjectType.TILE, qb.ObjectType.CELL, qb.ObjectType.TMA_CORE}
_NOT_REGIONS.add(qb.ObjectType.ROOT)


def tile_objects(
    grid: TileGrid,
    slide_name: str,
    *,
    probabilities: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    class_colors: Sequence[tuple[int, int, int]] | None = None,
    labels: Sequence[str | None] | None = None,
    measurements: dict[str, np.ndarray] | None = None,
) -> list[Any]:
    """QuPath ``tile`` objects of ``grid``, as QuPath's WSInfer extension makes them.

    With ``probabilities`` (n, C) each tile has one measurement per class and
    the top class as its classification; with ``labels`` a tile takes the named
    class.  ``measurements`` adds columns (e.g. ``tissue_fraction``).  Ids are
    UUID5 of slide and position, so a re-run writes the same file.
    """
    n = len(grid)
    # a tile from pixel r covers [r - 0.5, r + size - 0.5) in the pixel-centre convention
    corners_xy = qb.rc_to_xy(grid.origins_rc.astype(np.float64) - 0.5)
    scores = np.full((n, 0), np.nan) if probabilities is None else np.asarray(probabilities)
    colors = dict(zip(class_names, class_colors)) if class_colors is not None else None
    objects = qb.tiles_to_objects(corners_xy, grid.tile_px_level0, scores, list(class_names) if
                                  probabilities is not None else [], class_colors=colors)  # fmt: skip
    extra = measurements or {}
    size = grid.tile_px_level0
    out = []
    for i, (obj, (row, col)) in enumerate(zip(objects, grid.origins_rc.tolist())):
        changes: dict[str, Any] = {"id": str(uuid.uuid5(_NAMESPACE, f"{slide_name}:{row}:{col}:{size:.3f}"))}
        label = labels[i] if labels is not None else None
        if label:
            changes["classification"] = qb.Classification.from_name(label)
        if extra:
            changes["measurements"] = {**obj.measurements, **{k: float(v[i]) for k, v in extra.items()}}
        out.append(replace(obj, **changes))
    return out


def write_tiles_geojson(path: str | os.PathLike[str], grid: TileGrid, slide_name: str, **kwargs: Any) -> int:
    """Write :func:`tile_objects` (same keyword arguments) as a QuPath FeatureCollection, atomically.

    Returns the number of tiles written.
    """
    objects = tile_objects(grid, slide_name, **kwargs)
    qb.write_geojson(objects, path)
    return len(objects)


def write_prediction_geojson(result: TilePredictions, path: str | os.PathLike[str], slide_name: str) -> int:
    """Tile predictions as QuPath tiles (a probability per class, the top class); returns the count."""
    spec = result.spec
    return write_tiles_geojson(path, result.grid, slide_name, probabilities=result.probabilities,
                               class_names=spec.class_names, class_colors=spec.class_colors)  # fmt: skip


def read_annotation_regions(path: str | os.PathLike[str]) -> list[AnnotationRegion]:
    """Polygons and class names of the annotations in a QuPath GeoJSON export (level-0 row, col)."""
    return annotation_regions(qb.read_geojson(Path(path)))


def annotation_regions(objects: Sequence[Any]) -> list[AnnotationRegion]:
    """Regions of annotation objects; unclassified ones get the class ``"Region*"`` as in QuPath."""
    regions: list[AnnotationRegion] = []
    for obj in objects:
        if obj.object_type in _NOT_REGIONS:
            continue
        name = ": ".join(obj.classification.names) if obj.classification is not None else "Region*"
        for polygon in _polygons(obj.geometry):
            exterior = qb.xy_to_rc(np.asarray(polygon.exterior.coords)[:, :2])
            holes = tuple(qb.xy_to_rc(np.asarray(h.coords)[:, :2]) for h in polygon.interiors)
            regions.append(AnnotationRegion(name, exterior, holes))
    return regions


def _polygons(geometry: Any) -> list[Any]:
    if geometry is None:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    if geometry.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [p for g in geometry.geoms for p in _polygons(g)]
    return []
