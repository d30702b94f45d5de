"""Tissue masks, tile grids and tile pixels of an open :class:`~napari_histo.io.Slide`.

The arithmetic lives in :mod:`napari_histo.core` (tissue, tiling); this module
only decides which pyramid level to read and reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from napari_histo.core.tiling import TileGrid, plan_tile_grid, resize_tile, select_tiles, tile_mask_fraction
from napari_histo.core.tissue import TissueConfig, TissueMethod, detect_tissue
from napari_histo.errors import MissingMppError
from napari_histo.io.slide import Slide

__all__ = [
    "DEFAULT_MASK_MPP",
    "SlideTissueMask",
    "iter_tiles",
    "plan_slide_grid",
    "read_slide_view",
    "read_tile",
    "slide_tissue_mask",
    "tissue_tile_grid",
    "tissue_tiles",
]

#: µm/px of tissue masks: the ~32x level of a 40x scan, as most pipelines use
DEFAULT_MASK_MPP = 8.0
_MASK_PX_WITHOUT_MPP = 2048


@dataclass(frozen=True)
class SlideTissueMask:
    """A low-resolution tissue mask of a whole slide.

    Attributes
    ----------
    mask : ndarray, bool, shape (rows, cols)
    downsample_rc : (float, float)
        Level-0 pixels per mask pixel along rows and cols.
    level : int
        Pyramid level the mask was computed from.
    """

    mask: np.ndarray
    downsample_rc: tuple[float, float]
    level: int


def slide_tissue_mask(
    slide: Slide,
    method: TissueMethod | str = TissueMethod.HSV,
    config: TissueConfig | None = None,
    *,
    mask_mpp: float = DEFAULT_MASK_MPP,
    max_px: int = 8192,
) -> SlideTissueMask:
    """Detect tissue on a low-resolution view of ``slide`` (about ``mask_mpp`` µm/px).

    The view comes from :func:`read_slide_view`; without µm/px the mask is
    about 2048 px wide.  The longer side stays within ``max_px`` unless no
    level is that small.
    """
    rows, cols = slide.dimensions
    wanted = mask_mpp / slide.mpp if slide.mpp else max(rows, cols) / _MASK_PX_WITHOUT_MPP
    pixels, downsample_rc, level = read_slide_view(slide, max(wanted, max(rows, cols) / max_px))
    return SlideTissueMask(detect_tissue(pixels, method, config), downsample_rc, level)


def read_slide_view(slide: Slide, downsample: float) -> tuple[np.ndarray, tuple[float, float], int]:
    """The whole slide at about ``downsample`` (level-0 px per pixel), as uint8 RGB.

    Reads the stored level nearest ``downsample`` (in log scale, ties to the
    coarser: never decode 4x the pixels to gain 2x resolution) and block-averages
    it down when it is finer.  Returns the pixels, the actual level-0 pixels per
    pixel along (rows, cols), and the level read.
    """
    rows, cols = slide.dimensions
    level = _nearest_level(slide.level_downsamples, max(downsample, 1.0))
    level_rows, level_cols = slide.level_info[level].shape[:2]
    pixels = slide.read_region((0, 0), level, (level_rows, level_cols))[..., :3]
    factor = max(1, int(downsample / slide.level_downsamples[level] + 1e-6))
    pixels = _block_mean(pixels, factor)
    return pixels, (rows / level_rows * factor, cols / level_cols * factor), level


def plan_slide_grid(
    slide: Slide,
    target_mpp: float,
    tile_px: int,
    overlap_px: int = 0,
    *,
    slide_mpp: float | None = None,
) -> TileGrid:
    """All whole tiles of ``slide`` at ``target_mpp`` (see :func:`~napari_histo.core.tiling.plan_tile_grid`).

    ``slide_mpp`` overrides the file's level-0 µm/px and is required when the file has none.
    """
    mpp = slide_mpp if slide_mpp is not None else slide.mpp
    if mpp is None:
        raise MissingMppError(
            f"{slide.path.name} has no µm/px in its metadata, so tiles of {target_mpp} µm/px cannot be "
            "placed; pass the slide's level-0 µm/px: --slide-mpp 0.25 (CLI), slide_mpp=0.25 (Python) "
            "or set it in the widget"
        )
    return plan_tile_grid(slide.dimensions, mpp, target_mpp, tile_px, overlap_px, slide.level_downsamples)


def tissue_tiles(grid: TileGrid, mask: SlideTissueMask, min_tissue: float) -> tuple[TileGrid, np.ndarray]:
    """The tiles whose tissue fraction is at least ``min_tissue``, and those fractions (float32)."""
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue is a fraction in [0, 1], got {min_tissue!r}")
    fractions = tile_mask_fraction(grid, mask.mask, mask.downsample_rc)
    keep = fractions >= min_tissue if min_tissue > 0 else np.ones(len(grid), bool)
    return select_tiles(grid, keep), fractions[keep]


def tissue_tile_grid(
    slide: Slide, target_mpp: float, tile_px: int, min_tissue: float
) -> tuple[TileGrid, np.ndarray]:
    """The tissue tiles a model reads, ready for inference, and their tissue fractions.

    Plans the grid at ``target_mpp``, keeps tiles with at least ``min_tissue``
    tissue, and lets the slide's tile cache hold two tile rows of the level read,
    so that each compressed tile is decoded once however patches and file tiles align.
    """
    grid = plan_slide_grid(slide, target_mpp, tile_px)
    slide.reserve_tile_rows(grid.level)
    return tissue_tiles(grid, slide_tissue_mask(slide), min_tissue)


def read_tile(slide: Slide, grid: TileGrid, index: int) -> np.ndarray:
    """Pixels of tile ``index``: uint8 (tile_px, tile_px, 3), read from ``grid.level`` and resized."""
    origin = grid.origins_rc[index]
    size = grid.read_px
    pixels = slide.read_region((int(origin[0]), int(origin[1])), grid.level, (size, size))[..., :3]
    return resize_tile(pixels, grid.tile_px)


def iter_tiles(
    slide: Slide,
    grid: TileGrid,
    indices: Sequence[int] | None = None,
    *,
    workers: int = 4,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, pixels)`` in order, decoding in ``workers`` threads (the codecs release the GIL)."""
    order = range(len(grid)) if indices is None else indices
    if workers <= 1:
        for i in order:
            yield i, read_tile(slide, grid, i)
        return
    with ThreadPoolExecutor(workers) as pool:
        window = max(4 * workers, 16)
        pending = []
        for i in order:
            pending.append((i, pool.submit(read_tile, slide, grid, i)))
            if len(pending) >= window:
                j, future = pending.pop(0)
                yield j, future.result()
        for j, future in pending:
            yield j, future.result()


def _nearest_level(downsamples: Sequence[float], wanted: float) -> int:
    # distances within 1 % count as ties (downsamples like 64.02), which go to the coarser level
    return min(range(len(downsamples)), key=lambda i: (round(abs(math.log(downsamples[i] / wanted)), 2), -i))


def _block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return pixels
    rows, cols = pixels.shape[0] // factor, pixels.shape[1] // factor
    if rows == 0 or cols == 0:
        return pixels
    block = pixels[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, -1)
    return block.mean(axis=(1, 3), dtype=np.float32).round().astype(np.uint8)
