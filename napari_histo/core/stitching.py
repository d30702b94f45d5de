"""Overlap-tile stitching of segmentation outputs with bounded memory.

Tiles arrive in row-major order; their per-class scores are added into a sum
canvas and a weight canvas that cover only a *band* of rows (the rows a
future tile can still touch).  Rows above the band are final: they are
divided, reduced to labels by argmax and handed back, and their memory is
released.  A whole slide never lives in memory, and the work is O(pixels) —
unlike the O(n²) stitching some tools had.

Coordinates are (row, col) pixels of the output resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["FinishedBand", "OverlapStitcher", "tile_weights"]


def tile_weights(tile_px: int, overlap_px: int) -> np.ndarray:
    """(tile_px, tile_px) float32 weights that fade linearly over the overlap.

    Border pixels of a tile see less context, so in overlaps the neighbour
    whose centre is closer counts more; weights never reach 0 so a lone tile
    at the slide edge still counts.
    """
    ramp = np.ones(tile_px, np.float32)
    if overlap_px > 0:
        edge = (np.arange(overlap_px, dtype=np.float32) + 1) / (overlap_px + 1)
        ramp[:overlap_px] = edge
        ramp[-overlap_px:] = edge[::-1]
    return np.outer(ramp, ramp)


@dataclass(frozen=True)
class FinishedBand:
    """Final rows ``[row0, row0 + len(labels))`` of the stitched output."""

    row0: int
    labels: np.ndarray  # (rows, cols) int16, -1 where no tile covered
    probabilities: np.ndarray  # (C, rows, cols) float32, NaN where no tile covered


class OverlapStitcher:
    """Accumulate overlapping tile scores and release finished rows.

    Parameters
    ----------
    shape_rc : (int, int)
        Output (rows, cols).
    n_classes : int
    tile_px, overlap_px : int
        Tile edge and overlap in output pixels (the weights fade over the overlap).
    start_row : int
        Rows above this are already final (a resumed run): tiles' contributions
        to them are ignored and no band above it is released.
    """

    def __init__(
        self, shape_rc: tuple[int, int], n_classes: int, tile_px: int, overlap_px: int = 0, start_row: int = 0
    ):
        self.shape_rc = (int(shape_rc[0]), int(shape_rc[1]))
        self.n_classes = int(n_classes)
        self.tile_px = int(tile_px)
        self.weights = tile_weights(tile_px, overlap_px)
        self._top = int(start_row)  # first row not yet released
        self._sum = np.zeros((self.n_classes, 0, self.shape_rc[1]), np.float32)
        self._weight = np.zeros((0, self.shape_rc[1]), np.float32)
        self._last_row0 = 0

    @property
    def band_rows(self) -> int:
        """Rows held in memory now."""
        return self._weight.shape[0]

    def add(self, origin_rc: tuple[int, int], scores: np.ndarray) -> list[FinishedBand]:
        """Add a tile's (C, tile_px, tile_px) scores at ``origin_rc``; returns rows that became final.

        Tiles must come in non-decreasing ``origin_rc[0]`` (row-major grid order).
        """
        r0, c0 = int(origin_rc[0]), int(origin_rc[1])
        if r0 < self._last_row0:
            raise ValueError(f"tiles must arrive in row order: got row {r0} after row {self._last_row0}")
        if scores.shape != (self.n_classes, self.tile_px, self.tile_px):
            raise ValueError(
                f"scores must be ({self.n_classes}, {self.tile_px}, {self.tile_px}), got {scores.shape}"
            )
        finished = list(self._release(upto=r0)) if r0 > self._last_row0 else []
        self._last_row0 = r0
        self._grow(r0 + self.tile_px)
        rows, cols = self.shape_rc
        skip = max(0, self._top - r0)  # rows of this tile that are already final
        r1, c1 = min(rows, r0 + self.tile_px), min(cols, c0 + self.tile_px)
        if r1 <= r0 + skip or c1 <= c0 or c0 < 0:
            return finished
        h, w = r1 - r0, c1 - c0
        weights = self.weights[skip:h, :w]
        band = slice(r0 + skip - self._top, r1 - self._top)
        self._sum[:, band, c0:c1] += scores[:, skip:h, :w] * weights
        self._weight[band, c0:c1] += weights
        return finished

    def finish(self) -> list[FinishedBand]:
        """Release every remaining row (call once after the last tile)."""
        return list(self._release(upto=self.shape_rc[0]))

    def _grow(self, bottom: int) -> None:
        bottom = min(bottom, self.shape_rc[0])
        extra = bottom - (self._top + self.band_rows)
        if extra > 0:
            cols = self.shape_rc[1]
            self._sum = np.concatenate(
                [self._sum, np.zeros((self.n_classes, extra, cols), np.float32)], axis=1
            )
            self._weight = np.concatenate([self._weight, np.zeros((extra, cols), np.float32)], axis=0)

    def _release(self, upto: int) -> Iterator[FinishedBand]:
        """Rows above ``upto`` can no longer be touched: divide, argmax, drop them."""
        upto = min(upto, self.shape_rc[0])
        if upto <= self._top:
            return
        self._grow(upto)
        n = upto - self._top
        total, weight = self._sum[:, :n], self._weight[:n]
        covered = weight > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            probabilities = np.where(covered, total / np.where(covered, weight, 1), np.nan).astype(np.float32)
        labels = np.where(covered, np.nan_to_num(probabilities, nan=-np.inf).argmax(0), -1).astype(np.int16)
        yield FinishedBand(self._top, labels, probabilities)
        self._sum = self._sum[:, n:].copy()
        self._weight = self._weight[n:].copy()
        self._top = upto
