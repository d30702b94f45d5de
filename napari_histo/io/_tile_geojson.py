"""Tile grids as QuPath (0.4+) GeoJSON tile objects, written by ``qupath_bridge``.

Each tile becomes an ``objectType: "tile"`` object: a square in level-0 (x, y)
pixels, its measurements (e.g. tissue fraction) and, when labelled, its class.
Ids are UUID5 of slide and position, so a resumed export writes the same file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_histo.core.tiling import TileGrid

__all__ = ["tile_objects", "write_tile_geojson"]

_NAMESPACE = uuid.UUID("6f1c8a52-3f0e-4d3c-9a57-8d0f6a1b2c3d")


def tile_objects(
    grid: TileGrid,
    slide_name: str,
    labels: Sequence[str | None],
    measurements: dict[str, np.ndarray],
) -> list:
    """``qupath_bridge.PathObject`` tiles of ``grid`` (classified where ``labels`` has a name)."""
    import shapely

    from qupath_bridge import Classification, ObjectType, PathObject

    size = grid.tile_px_level0
    rows, cols = grid.origins_rc[:, 0].astype(np.float64), grid.origins_rc[:, 1].astype(np.float64)
    boxes = shapely.box(cols, rows, cols + size, rows + size)  # (x0, y0, x1, y1): QuPath's x is the column
    objects = []
    for i, (row, col) in enumerate(grid.origins_rc.tolist()):
        objects.append(
            PathObject(
                geometry=boxes[i],
                object_type=ObjectType.TILE,
                id=str(uuid.uuid5(_NAMESPACE, f"{slide_name}:{row}:{col}:{size:.3f}")),
                classification=Classification((labels[i],)) if labels[i] else None,
                measurements={key: float(values[i]) for key, values in measurements.items()},
            )
        )
    return objects


def write_tile_geojson(
    path: str | os.PathLike[str],
    grid: TileGrid,
    slide_name: str,
    labels: Sequence[str | None],
    measurements: dict[str, np.ndarray],
) -> Path:
    """Write the grid as a QuPath FeatureCollection (atomically, by ``qupath_bridge.write_geojson``)."""
    from qupath_bridge import write_geojson

    return write_geojson(tile_objects(grid, slide_name, labels, measurements), path)
