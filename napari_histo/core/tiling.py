"""Tile grids at a chosen µm/px: where the patches of a slide are, and which to keep.

All coordinates are **level-0 pixels, (row, col)**; a tile of ``tile_px``
output pixels at ``target_mpp`` covers ``tile_px * target_mpp / slide_mpp``
level-0 pixels.  Tiles are read from the pyramid level nearest the target
(never finer than needed) and resized to ``tile_px``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from skimage.transform import resize

from napari_histo.core.memory import check_allocation
from napari_histo.errors import MissingMppError

__all__ = [
    "TileGrid",
    "grid_cells",
    "mpp_from_magnification",
    "plan_tile_grid",
    "resize_tile",
    "select_tiles",
    "tile_mask_fraction",
    "tile_windows",
    "window_sums",
]


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of square tiles over a slide.

    Attributes
    ----------
    origins_rc : ndarray, int64, shape (n, 2)
        Top-left corner of each tile in level-0 pixels (row, col).
    slide_shape_rc : (int, int)
        Level-0 (rows, cols) of the slide.
    slide_mpp, target_mpp : float
        µm/px of level 0 and of the patches.
    tile_px, overlap_px : int
        Patch edge and overlap between neighbours, in target pixels.
    level : int
        Pyramid level the tiles are read from.
    level_downsample : float
        Level-0 pixels per pixel of ``level``.
    """

    origins_rc: np.ndarray
    slide_shape_rc: tuple[int, int]
    slide_mpp: float
    target_mpp: float
    tile_px: int
    overlap_px: int
    level: int
    level_downsample: float

    def __len__(self) -> int:
        return int(self.origins_rc.shape[0])

    @property
    def tile_px_level0(self) -> float:
        """Tile edge in level-0 pixels."""
        return self.tile_px * self.target_mpp / self.slide_mpp

    @property
    def read_px(self) -> int:
        """Tile edge in pixels of ``level`` (what is read before resizing)."""
        return max(1, round(self.tile_px_level0 / self.level_downsample))

    @property
    def stride_px_level0(self) -> float:
        """Distance between neighbouring tile origins, in level-0 pixels."""
        return (self.tile_px - self.overlap_px) * self.target_mpp / self.slide_mpp

    def bounds_rc(self) -> np.ndarray:
        """(n, 4) float64 ``[row0, col0, row1, col1]`` of each tile in level-0 pixels."""
        size = self.tile_px_level0
        origins = self.origins_rc.astype(np.float64)
        return np.concatenate([origins, origins + size], axis=1)

    def centres_rc(self) -> np.ndarray:
        """(n, 2) float64 centre of each tile, level-0 (row, col) in the pixel-centre convention.

        Pixel ``(r, c)`` is centred at ``(r, c)`` (numpy, skimage, napari and
        ``qupath_bridge.xy_to_rc``), so a tile from pixel ``r`` spanning ``size``
        pixels covers ``[r - 0.5, r + size - 0.5)`` and is centred at ``r + size/2 - 0.5``.
        """
        return self.origins_rc.astype(np.float64) + (self.tile_px_level0 / 2 - 0.5)


def grid_cells(grid: TileGrid) -> tuple[tuple[int, int], np.ndarray]:
    """The grid's (rows, cols) of cells and each tile's (row, col) cell, from origins and stride.

    A class map or heatmap of a grid is an array of this shape, cell ``(i, j)``
    holding the tile whose origin is ``(i, j) * stride``.
    """
    stride = grid.stride_px_level0
    cells = np.rint(grid.origins_rc / stride).astype(np.int64).reshape(-1, 2)
    rows = int(np.floor((grid.slide_shape_rc[0] - grid.tile_px_level0) / stride + 1e-9)) + 1
    cols = int(np.floor((grid.slide_shape_rc[1] - grid.tile_px_level0) / stride + 1e-9)) + 1
    return (max(rows, 0), max(cols, 0)), cells


def mpp_from_magnification(magnification: float) -> float:
    """µm/px of an objective power by the usual convention (40× = 0.25, 20× = 0.5)."""
    if not magnification > 0:
        raise ValueError(f"magnification must be positive, got {magnification!r}")
    return 10.0 / magnification


def plan_tile_grid(
    slide_shape_rc: tuple[int, int],
    slide_mpp: float | None,
    target_mpp: float,
    tile_px: int,
    overlap_px: int = 0,
    level_downsamples: tuple[float, ...] | list[float] = (1.0,),
) -> TileGrid:
    """All whole tiles of a slide at ``target_mpp`` (partial tiles at the edges are left out).

    Parameters
    ----------
    slide_shape_rc : (int, int)
        Level-0 (rows, cols).
    slide_mpp : float or None
        Level-0 µm/px; ``None`` raises :class:`MissingMppError`.
    target_mpp : float
        µm/px of the patches (0.5 ≈ 20×).
    tile_px : int
        Patch edge in output pixels.
    overlap_px : int
        Overlap of neighbouring patches in output pixels (0 <= overlap < tile_px).
    level_downsamples : sequence of float
        The slide's level downsamples, level 0 first; the deepest level not
        coarser than the target is chosen for reading.
    """
    if slide_mpp is None:
        raise MissingMppError(
            "the slide has no µm/px in its metadata, so a tile size in µm cannot be placed; "
            "pass the slide's level-0 µm/px explicitly (e.g. --slide-mpp 0.25 on the command line, "
            "or slide_mpp=0.25)"
        )
    if not (slide_mpp > 0 and target_mpp > 0):
        raise ValueError(f"µm/px must be positive, got slide_mpp={slide_mpp!r}, target_mpp={target_mpp!r}")
    if tile_px < 1 or not 0 <= overlap_px < tile_px:
        raise ValueError(f"need tile_px >= 1 and 0 <= overlap_px < tile_px, got {tile_px=}, {overlap_px=}")
    scale = target_mpp / slide_mpp
    size = tile_px * scale
    stride = (tile_px - overlap_px) * scale
    rows, cols = (int(n) for n in slide_shape_rc[:2])
    n_r = _count(rows, size, stride)
    n_c = _count(cols, size, stride)
    check_allocation(  # meshgrid, stack and origins: about four float64 values per tile
        (n_r * n_c, 4),
        np.float64,
        f"a grid of {n_r:,} x {n_c:,} tiles ({tile_px} px at {target_mpp:g} µm/px on a "
        f"{cols:,} x {rows:,} px slide at {slide_mpp:g} µm/px, {size:.3g} level-0 px per tile)",
        "check the slide's µm/px (--slide-mpp) and the tiles' µm/px (--mpp): a tile should span at least "
        "a few level-0 pixels",
    )
    rr, cc = np.meshgrid(np.arange(n_r) * stride, np.arange(n_c) * stride, indexing="ij")
    origins = np.stack([rr.ravel(), cc.ravel()], axis=1).round().astype(np.int64)
    level = _best_level(list(level_downsamples), scale)
    return TileGrid(
        origins.reshape(-1, 2),
        (rows, cols),
        float(slide_mpp),
        float(target_mpp),
        int(tile_px),
        int(overlap_px),
        level,
        float(level_downsamples[level]),
    )


def tile_mask_fraction(
    grid: TileGrid, mask: np.ndarray, downsample_rc: tuple[float, float] | None = None
) -> np.ndarray:
    """Fraction of each tile covered by a low-resolution mask of the whole slide.

    Parameters
    ----------
    grid : TileGrid
    mask : ndarray, bool, shape (mask_rows, mask_cols)
        A mask of the slide, its pixel (0, 0) at level-0 (0, 0).
    downsample_rc : (float, float), optional
        Level-0 pixels per mask pixel along rows and cols; by default the mask
        is taken to cover exactly the slide.

    Returns
    -------
    ndarray, float32, shape (n,)
        In [0, 1].
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (rows, cols), got shape {mask.shape}")
    if downsample_rc is None:
        downsample_rc = (grid.slide_shape_rc[0] / mask.shape[0], grid.slide_shape_rc[1] / mask.shape[1])
    windows = tile_windows(grid, mask.shape, downsample_rc)
    area = np.maximum((windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1]), 1)
    return (window_sums(mask, windows) / area).astype(np.float32)


def tile_windows(grid: TileGrid, shape_rc: tuple[int, ...], downsample_rc: tuple[float, float]) -> np.ndarray:
    """(n, 4) int64 ``[row0, col0, row1, col1)`` of each tile in a raster of the slide.

    The windows cover every raster pixel the tile touches, at least one, clipped to ``shape_rc``.
    """
    b = grid.bounds_rc() / np.array([*downsample_rc, *downsample_rc])
    r0 = np.clip(np.floor(b[:, 0]), 0, shape_rc[0])
    c0 = np.clip(np.floor(b[:, 1]), 0, shape_rc[1])
    r1 = np.clip(np.maximum(np.ceil(b[:, 2]), r0 + 1), 0, shape_rc[0])
    c1 = np.clip(np.maximum(np.ceil(b[:, 3]), c0 + 1), 0, shape_rc[1])
    return np.stack([r0, c0, r1, c1], axis=1).astype(np.int64)


def window_sums(image: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Sum of a 2-D array over each (n, 4) window, by a summed-area table: O(pixels + windows)."""
    sat = np.zeros((image.shape[0] + 1, image.shape[1] + 1), np.int64)
    sat[1:, 1:] = image.cumsum(0, dtype=np.int64).cumsum(1)
    r0, c0, r1, c1 = windows.T
    return sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0]


def select_tiles(grid: TileGrid, keep: np.ndarray) -> TileGrid:
    """A grid with only the tiles where ``keep`` (bool (n,) or integer indices) selects."""
    return replace(grid, origins_rc=grid.origins_rc[np.asarray(keep)].reshape(-1, 2))


def resize_tile(pixels: np.ndarray, tile_px: int) -> np.ndarray:
    """Resize a (rows, cols, 3) uint8 read to (tile_px, tile_px, 3) uint8 (anti-aliased when shrinking)."""
    if pixels.shape[:2] == (tile_px, tile_px):
        return pixels
    shrink = pixels.shape[0] > tile_px
    out = resize(
        pixels,
        (tile_px, tile_px, pixels.shape[2]),
        order=1,
        anti_aliasing=shrink,
        preserve_range=True,
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _count(length: int, size: float, stride: float) -> int:
    if length < size - 1e-6:
        return 0
    return int(math.floor((length - size) / stride + 1e-9)) + 1


def _best_level(downsamples: list[float], scale: float) -> int:
    best = 0
    for i, ds in enumerate(downsamples):
        if ds <= scale * 1.01:
            best = i
    return best
