"""Whole-slide segmentation: overlapping tiles, stitched in bands, streamed to zarr.

Output is a label image at the model's µm/px (``labels``, int16, -1 = not
predicted) and the winning class's probability (``confidence``, uint8 0-255),
chunked 1024², in ``<name>.zarr`` — written band by band, so memory stays
bounded and a killed run resumes from the last finished row.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.stitching import FinishedBand, OverlapStitcher
from napari_histo.core.tiling import TileGrid
from napari_histo.io.slide import Slide
from napari_histo.models.engine import (
    InferenceConfig,
    InferenceProgress,
    forward_scores,
    read_batches,
)
from napari_histo.models.loading import resolve_device
from napari_histo.models.spec import ModelSpec, ModelSpecError, Task

__all__ = ["SegmentationResult", "cover_edges", "output_shape", "predict_segmentation"]


@dataclass(frozen=True)
class SegmentationResult:
    """What :func:`predict_segmentation` returns: where the stitched labels are."""

    store_path: Path
    shape_rc: tuple[int, int]
    mpp: float
    class_pixels: np.ndarray  # (C,) int64 pixels per class
    elapsed_s: float


def output_shape(grid: TileGrid) -> tuple[int, int]:
    """(rows, cols) of the label image at the grid's µm/px."""
    scale = grid.target_mpp / grid.slide_mpp
    return (int(np.ceil(grid.slide_shape_rc[0] / scale)), int(np.ceil(grid.slide_shape_rc[1] / scale)))


def cover_edges(grid: TileGrid) -> tuple[TileGrid, np.ndarray]:
    """``grid`` with tiles added flush with the right and bottom slide edges, and every tile's output origin.

    A grid of whole tiles stops short of the edges when the slide is not a multiple of
    the stride; each tile of the last row (column) of the grid gets a copy moved down
    (right) to end at the edge, so the stitched labels cover the slide to its last pixel.
    Returns the grid to read and (n, 2) int64 (row, col) origins in output pixels, where
    the added tiles end exactly at :func:`output_shape` (a shift of under one pixel).
    """
    shape = output_shape(grid)
    scale = grid.target_mpp / grid.slide_mpp
    size, stride = grid.tile_px_level0, grid.stride_px_level0
    level0 = grid.origins_rc.astype(np.float64)
    out = np.rint(level0 / scale).astype(np.int64)
    added_level0, added_out = [level0], [out]
    last = [(level0[:, a] + stride + size > grid.slide_shape_rc[a] + 1e-6)  # no further grid tile fits
            & (out[:, a] + grid.tile_px < shape[a]) for a in (0, 1)]  # fmt: skip
    for move in ((True, False), (False, True), (True, True)):
        pick = np.ones(len(out), bool)
        for axis in (0, 1):
            if move[axis]:
                pick &= last[axis]
        if not pick.any():
            continue
        l0, o = level0[pick].copy(), out[pick].copy()
        for axis in (0, 1):
            if move[axis]:
                l0[:, axis] = max(0.0, np.floor(grid.slide_shape_rc[axis] - size))
                o[:, axis] = shape[axis] - grid.tile_px
        added_level0.append(l0)
        added_out.append(o)
    origins = np.concatenate(added_level0).round().astype(np.int64)
    return replace(grid, origins_rc=origins.reshape(-1, 2)), np.concatenate(added_out).reshape(-1, 2)


def predict_segmentation(
    slide: Slide,
    spec: ModelSpec,
    grid: TileGrid,
    model: Any,
    store_path: str | os.PathLike[str],
    *,
    config: InferenceConfig | None = None,
) -> Generator[InferenceProgress, None, SegmentationResult]:
    """Segment every tile of ``grid`` (use an overlap, e.g. 1/8 of the tile) and stitch.

    Tiles flush with the right and bottom edges are added (:func:`cover_edges`), so
    the labels reach the slide's edges wherever the grid's last row and column do.

    Yields :class:`InferenceProgress` per batch and returns :class:`SegmentationResult`.
    """
    import torch

    config = config or InferenceConfig()
    if spec.task is not Task.SEGMENTATION:
        raise ModelSpecError(
            f"{spec.architecture} is a {spec.task.value} model; segmentation needs task: segmentation "
            "(a classification model runs with predict_tiles)"
        )
    device = resolve_device(config.device)
    model = model.to(device).eval()
    shape = output_shape(grid)
    grid, origins = cover_edges(grid)
    order = np.lexsort((origins[:, 1], origins[:, 0]))
    final = Path(store_path)
    group, rows_done = _open_store(final, shape, spec, grid)
    todo = order[origins[order, 0] + grid.tile_px > rows_done]
    stitcher = OverlapStitcher(shape, spec.num_classes, grid.tile_px, grid.overlap_px, start_row=rows_done)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255
    counts = np.zeros(spec.num_classes, np.int64)
    start = time.perf_counter()
    done = len(grid) - len(todo)
    for indices, batch in read_batches(slide, grid, todo, max(1, config.batch_size), config.workers):
        scores = forward_scores(model, batch, device, mean, std, spec, config, None)
        for index, tile_scores in zip(indices, scores):
            for band in stitcher.add(tuple(origins[index]), tile_scores):
                _write_band(group, band, counts)
        done += len(indices)
        yield InferenceProgress(done, len(grid), elapsed_s=time.perf_counter() - start)
    for band in stitcher.finish():
        _write_band(group, band, counts)
    if rows_done:  # a resumed run counts the rows written before, too
        counts = _count_classes(group, spec.num_classes)
    group.attrs.update({"complete": True, "class_pixels": counts.tolist()})
    if final.exists():
        shutil.rmtree(final)
    os.replace(final.with_name(final.name + ".partial"), final)
    return SegmentationResult(final, shape, grid.target_mpp, counts, time.perf_counter() - start)


def _open_store(final: Path, shape: tuple[int, int], spec: ModelSpec, grid: TileGrid) -> tuple[Any, int]:
    import zarr

    partial = final.with_name(final.name + ".partial")
    stamp = json.loads(json.dumps({"architecture": spec.architecture, "classes": list(spec.class_names),
                                   "shape": list(shape), "n_tiles": len(grid), "tile_px": grid.tile_px,
                                   "overlap_px": grid.overlap_px, "mpp": grid.target_mpp}))  # fmt: skip
    if partial.exists():
        try:
            group = zarr.open_group(str(partial), mode="r+")
            if group.attrs.get("fingerprint") == stamp:
                rows_done = group.attrs.get("rows_done", 0)
                return group, int(rows_done) if isinstance(rows_done, (int, float)) else 0
        except Exception:  # noqa: BLE001 - an unreadable partial store is started again
            pass
        shutil.rmtree(partial)
    group = zarr.open_group(str(partial), mode="w")
    chunks = (min(1024, shape[0]), min(1024, shape[1]))
    group.create_array("labels", shape=shape, chunks=chunks, dtype="int16", fill_value=-1)
    group.create_array("confidence", shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
    group.attrs.update({"fingerprint": stamp, "rows_done": 0, "mpp": grid.target_mpp,
                        "class_names": list(spec.class_names), "spec": spec.to_json_dict()})  # fmt: skip
    return group, 0


def _write_band(group: Any, band: FinishedBand, counts: np.ndarray) -> None:
    rows = slice(band.row0, band.row0 + band.labels.shape[0])
    group["labels"][rows] = band.labels
    confidence = np.nan_to_num(np.nanmax(band.probabilities, axis=0, initial=0.0), nan=0.0)
    group["confidence"][rows] = np.rint(confidence * 255).astype(np.uint8)
    counts += np.bincount(band.labels[band.labels >= 0].ravel(), minlength=len(counts))
    group.attrs["rows_done"] = rows.stop


def _count_classes(group: Any, n_classes: int) -> np.ndarray:
    counts = np.zeros(n_classes, np.int64)
    labels = group["labels"]
    for r in range(0, labels.shape[0], 1024):
        block = np.asarray(labels[r : r + 1024])
        counts += np.bincount(block[block >= 0].ravel(), minlength=n_classes)
    return counts
