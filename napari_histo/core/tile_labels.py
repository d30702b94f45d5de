"""Labels for tiles from annotated regions (e.g. QuPath annotations), for training sets.

A tile takes the class of the region under its centre (``centre``) or of the
class covering most of it (``majority``); tiles outside every region get
code -1 and are usually dropped ("restrict to annotations").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from skimage.draw import polygon as fill_polygon
from skimage.measure import points_in_poly

from napari_histo.core.tiling import TileGrid, tile_windows, window_sums

__all__ = ["AnnotationRegion", "TileLabelRule", "label_tiles"]

# the raster for "majority" gives each tile about this many pixels along an edge
_RASTER_PX_PER_TILE = 16
_RASTER_MAX_PX = 8192


class TileLabelRule(str, Enum):
    """How a tile gets its class from annotated regions (``qupath_bridge.LabelMode`` is another thing)."""

    CENTRE = "centre"
    MAJORITY = "majority"


@dataclass(frozen=True)
class AnnotationRegion:
    """One annotated polygon.

    Attributes
    ----------
    class_name : str
    exterior_rc : ndarray, float, shape (k, 2)
        Outline in level-0 pixels (row, col).
    holes_rc : tuple of ndarray (k, 2)
        Holes in the same coordinates.
    """

    class_name: str
    exterior_rc: np.ndarray
    holes_rc: tuple[np.ndarray, ...] = field(default=())


def label_tiles(
    grid: TileGrid,
    regions: list[AnnotationRegion],
    mode: TileLabelRule | str = TileLabelRule.CENTRE,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class of each tile from annotated regions.

    Parameters
    ----------
    grid : TileGrid
    regions : list of AnnotationRegion
        Where regions overlap, the later one wins.
    mode : TileLabelRule or {"centre", "majority"}

    Returns
    -------
    codes : ndarray, int32, shape (n,)
        Index into ``class_names``; -1 where the tile is outside every region
        (for ``majority``: where the part outside all regions is at least as
        large as the largest class's part).
    class_names : tuple of str
        Sorted, unique.
    """
    mode = TileLabelRule(mode)
    class_names = tuple(sorted({r.class_name for r in regions}))
    codes = np.full(len(grid), -1, np.int32)
    if not regions or len(grid) == 0:
        return codes, class_names
    index = {name: i for i, name in enumerate(class_names)}
    if mode is TileLabelRule.CENTRE:
        centres = grid.centres_rc()
        for region in regions:
            codes[_inside(region, centres)] = index[region.class_name]
        return codes, class_names
    return _majority(grid, regions, index), class_names


def _inside(region: AnnotationRegion, points_rc: np.ndarray) -> np.ndarray:
    inside = points_in_poly(points_rc, region.exterior_rc)
    for hole in region.holes_rc:
        inside &= ~points_in_poly(points_rc, hole)
    return inside


def _majority(grid: TileGrid, regions: list[AnnotationRegion], index: dict[str, int]) -> np.ndarray:
    rows, cols = grid.slide_shape_rc
    ds = max(grid.tile_px_level0 / _RASTER_PX_PER_TILE, max(rows, cols) / _RASTER_MAX_PX, 1.0)
    shape = (max(1, round(rows / ds)), max(1, round(cols / ds)))
    raster = np.zeros(shape, np.int32)  # 0 = no region, else code + 1
    for region in regions:
        _paint(raster, region.exterior_rc / ds, index[region.class_name] + 1)
        for hole in region.holes_rc:
            _paint(raster, hole / ds, 0)
    windows = tile_windows(grid, shape, (ds, ds))
    counts = np.stack([window_sums(raster == code + 1, windows) for code in range(len(index))], axis=1)
    codes = counts.argmax(axis=1).astype(np.int32)
    area = (windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1])
    # "no region" competes too: a tile mostly outside the annotations gets no label
    codes[counts.max(axis=1) <= area - counts.sum(axis=1)] = -1
    return codes


def _paint(raster: np.ndarray, vertices_rc: np.ndarray, value: int) -> None:
    rr, cc = fill_polygon(vertices_rc[:, 0], vertices_rc[:, 1], shape=raster.shape)
    raster[rr, cc] = value
