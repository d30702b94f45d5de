"""The QuPath side of slide work: tiles → QuPath GeoJSON (one path), QuPath annotations → tile labels.

Coordinates cross between numpy's ``(row, col)`` and QuPath's ``(x, y)`` only
through ``qupath_bridge.rc_to_xy`` / ``xy_to_rc`` (pixel-centre convention on
our side, corner-origin on QuPath's), so tiles written here and annotations
read here sit where QuPath shows them, to the half pixel.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections import Counter
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
    "check_regions_on_slide",
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


def read_annotation_regions(
    path: str | os.PathLike[str],
    *,
    slide_shape: tuple[int, int] | None = None,
    slide_name: str = "the slide",
) -> list[AnnotationRegion]:
    """Polygons and class names of the annotations in a QuPath GeoJSON export (level-0 row, col).

    The file goes through ``qupath_bridge.read_geojson``, as ``histo qupath convert``
    does, so a bad file is the same one-line ``GeoJSONError`` everywhere.  Raises
    :class:`qupath_bridge.GeoJSONError` (a bad input, like any bad GeoJSON) when the
    file holds no annotation area or a class name that cannot be a folder name; with
    ``slide_shape`` (level-0 rows, cols), see :func:`check_regions_on_slide`.
    """
    path = Path(path)
    objects = qb.read_geojson(path)
    regions = annotation_regions(objects)
    if not regions:
        raise qb.GeoJSONError(
            f"{path.name} has no annotation areas to keep tiles in ({_holding(objects)}); draw or export "
            "annotations (polygons, rectangles, brush areas) in QuPath"
        )
    for name in sorted({r.class_name for r in regions}):
        _check_folder_name(name, path.name)
    if slide_shape is not None:
        check_regions_on_slide(regions, slide_shape, annotations_name=path.name, slide_name=slide_name)
    return regions


def check_regions_on_slide(
    regions: Sequence[AnnotationRegion],
    slide_shape: tuple[int, int],
    *,
    annotations_name: str = "the annotations",
    slide_name: str = "the slide",
) -> None:
    """Refuse annotations that all lie off the slide; warn when some reach beyond its edge.

    Both messages give the annotations' and the slide's bounds in QuPath's level-0
    ``x, y`` pixels, so a file exported from another image (or a crop) is recognised.

    Raises
    ------
    qupath_bridge.GeoJSONError
        No region overlaps the slide's ``slide_shape`` (level-0 rows, cols).

    Warns
    -----
    qupath_bridge.GeoJSONWarning
        Some regions lie wholly or partly outside the slide.
    """
    if not regions:
        return
    rows, cols = slide_shape
    # (row, col) pixel centres -> QuPath x, y: col + 0.5, row + 0.5
    lows = np.array([r.exterior_rc.min(axis=0) for r in regions]) + 0.5
    highs = np.array([r.exterior_rc.max(axis=0) for r in regions]) + 0.5
    away = (highs[:, 0] <= 0) | (lows[:, 0] >= rows) | (highs[:, 1] <= 0) | (lows[:, 1] >= cols)
    beyond = (lows[:, 0] < 0) | (highs[:, 0] > rows) | (lows[:, 1] < 0) | (highs[:, 1] > cols)
    span = (
        f"the annotations span x {lows[:, 1].min():,.0f}..{highs[:, 1].max():,.0f}, "
        f"y {lows[:, 0].min():,.0f}..{highs[:, 0].max():,.0f} and {slide_name} is x 0..{cols:,}, "
        f"y 0..{rows:,} (level-0 px)"
    )
    if away.all():
        raise qb.GeoJSONError(
            f"none of the {len(regions):,} annotation areas in {annotations_name} lies on {slide_name}: "
            f"{span}; were they exported from another image (or from a crop of it)?"
        )
    if beyond.any():
        warnings.warn(
            f"{int(beyond.sum()):,} of {len(regions):,} annotation areas in {annotations_name} reach beyond "
            f"{slide_name}; only tiles on the slide are kept: {span}",
            qb.GeoJSONWarning,
            stacklevel=2,
        )


def _holding(objects: Sequence[Any]) -> str:
    if not objects:
        return "it holds no objects"
    kinds = Counter(
        f"{o.object_type.value} {o.geometry.geom_type}" if o.object_type not in _NOT_REGIONS
        else o.object_type.value
        for o in objects
    )  # fmt: skip
    listed = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common(4))
    return f"it holds {len(objects):,} objects: {listed}"


def _check_folder_name(name: str, source: str) -> None:
    """Tiles go in one folder per class: refuse names that cannot be one folder."""
    bad = (
        name in (".", "..")
        or any(c in name for c in "/\\\x00")
        or len(name.encode("utf-8", "surrogatepass")) > 200
    )
    if bad:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise qb.GeoJSONError(
            f"{source}: class {shown!r} cannot be a folder name for its tiles (no '/', '\\' or NUL, not "
            "'..', at most 200 bytes); rename the class in QuPath and export again"
        )


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
