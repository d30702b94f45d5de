"""A minimal writer of tile grids as QuPath (0.4+) GeoJSON.

Stands in until ``qupath_bridge.write_geojson`` exists; it writes exactly the
canonical shape QuPath 0.4-0.7 reads: a FeatureCollection of ``objectType:
"tile"`` features with a UUID ``id``, a closed Polygon in level-0 (x, y)
pixels, a ``measurements`` dict and, when labelled, a ``classification``
with a colour (QuPath rejects a class name without one).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.tiling import TileGrid

__all__ = ["class_color", "tile_features", "write_tile_geojson"]

_PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
)  # fmt: skip
_NAMESPACE = uuid.UUID("6f1c8a52-3f0e-4d3c-9a57-8d0f6a1b2c3d")


def class_color(name: str, class_names: Sequence[str]) -> list[int]:
    """A stable [r, g, b] for a class name (by its position in ``class_names``)."""
    index = list(class_names).index(name) if name in class_names else 0
    return list(_PALETTE[index % len(_PALETTE)])


def tile_features(
    grid: TileGrid,
    slide_name: str,
    labels: Sequence[str | None],
    measurements: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """One GeoJSON feature per tile; ids are UUID5 of slide and position (stable across runs)."""
    size = grid.tile_px_level0
    names = sorted({label for label in labels if label})
    features = []
    for i, (row, col) in enumerate(grid.origins_rc.tolist()):
        x0, y0, x1, y1 = float(col), float(row), col + size, row + size
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        props: dict[str, Any] = {"objectType": "tile"}
        if labels[i]:
            props["classification"] = {"name": labels[i], "color": class_color(labels[i], names)}
        props["measurements"] = {key: _number(values[i]) for key, values in measurements.items()}
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_NAMESPACE, f"{slide_name}:{row}:{col}:{size:.3f}")),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": props,
            }
        )
    return features


def write_tile_geojson(
    path: str | os.PathLike[str],
    grid: TileGrid,
    slide_name: str,
    labels: Sequence[str | None],
    measurements: dict[str, np.ndarray],
) -> Path:
    """Write the grid as a QuPath FeatureCollection (atomically: temporary file, then rename)."""
    path = Path(path)
    collection = {
        "type": "FeatureCollection",
        "features": tile_features(grid, slide_name, labels, measurements),
    }
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(collection), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _number(value: Any) -> float | str:
    value = float(value)
    if np.isnan(value):
        return "NaN"  # QuPath >= 0.5 reads these strings; bare NaN is not JSON
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return round(value, 6)
