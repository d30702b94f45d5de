"""Pixels of an open :class:`~napari_histo.io.Slide`: whole-slide views and the tiles of a grid.

Which tiles to read is planned elsewhere (:mod:`napari_histo.core.tiling`,
:mod:`napari_histo.pipeline.tissue`); this module reads them from the stored
level the grid names, decoding in threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from napari_histo.core.tiling import TileGrid, resize_tile
from napari_histo.io.slide import Slide

__all__ = ["iter_tiles", "read_slide_view", "read_tile"]


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
