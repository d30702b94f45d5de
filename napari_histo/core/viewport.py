"""Which tiles a viewer shows, and in which order to predict them (centre first).

Pure functions on :class:`~napari_histo.core.tiling.TileGrid`; bounds are
level-0 (row0, col0, row1, col1) pixels.
"""

from __future__ import annotations

import numpy as np

from napari_histo.core.tiling import TileGrid

__all__ = ["tile_at", "tiles_in_polygons", "tiles_in_view", "view_order"]


def tiles_in_view(grid: TileGrid, bounds_rc: tuple[float, float, float, float]) -> np.ndarray:
    """Indices (int64) of the tiles that overlap ``bounds_rc``."""
    r0, c0, r1, c1 = bounds_rc
    b = grid.bounds_rc()
    return np.flatnonzero((b[:, 2] > r0) & (b[:, 0] < r1) & (b[:, 3] > c0) & (b[:, 1] < c1))


def view_order(
    grid: TileGrid, bounds_rc: tuple[float, float, float, float], done: np.ndarray | None = None
) -> np.ndarray:
    """Tiles in view not yet ``done`` (bool (n,)), nearest the view's centre first."""
    indices = tiles_in_view(grid, bounds_rc)
    if done is not None:
        indices = indices[~done[indices]]
    centre = np.array([(bounds_rc[0] + bounds_rc[2]) / 2, (bounds_rc[1] + bounds_rc[3]) / 2])
    tile_centres = grid.centres_rc()[indices]
    distance = np.hypot(*(tile_centres - centre).T) if len(indices) else np.zeros(0)
    return indices[np.argsort(distance, kind="stable")]


def tiles_in_polygons(grid: TileGrid, polygons_rc: list[np.ndarray]) -> np.ndarray:
    """Indices (int64) of the tiles whose centre lies inside any polygon ((k, 2) level-0 row, col)."""
    from skimage.measure import points_in_poly

    centres = grid.centres_rc()
    inside = np.zeros(len(grid), bool)
    for polygon in polygons_rc:
        if len(polygon) >= 3:
            inside |= points_in_poly(centres, np.asarray(polygon, float))
    return np.flatnonzero(inside)


def tile_at(grid: TileGrid, point_rc: np.ndarray) -> int | None:
    """Index of the first tile containing a level-0 (row, col) point, or ``None``."""
    b = grid.bounds_rc()
    r, c = point_rc
    hits = np.flatnonzero((b[:, 0] <= r) & (r < b[:, 2]) & (b[:, 1] <= c) & (c < b[:, 3]))
    return int(hits[0]) if hits.size else None
