"""Whole-slide patch classification: a generator yielding progress and returning the result.

Pipeline (see ``../shared/PERFORMANCE.md``): tiles are read from the pyramid
level nearest the model's µm/px and decoded by a thread pool (imagecodecs
releases the GIL), stacked into (pinned, on CUDA) uint8 batches, copied
non-blocking, normalised on the device, and run with bf16 autocast and
channels_last on CUDA (optional ``torch.compile``).  Results stream into a
:class:`~napari_histo.io.prediction_store.PredictionStore`, so a killed run
resumes and the final store appears atomically.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.tiling import TileGrid, grid_cells
from napari_histo.errors import InvalidParameterError
from napari_histo.io.files import source_bytes
from napari_histo.io.prediction_store import PredictionStore
from napari_histo.io.regions import iter_tiles
from napari_histo.io.slide import Slide
from napari_histo.models.loading import resolve_device
from napari_histo.models.spec import ModelSpec, ModelSpecError, Task

__all__ = [
    "InferenceConfig",
    "InferenceProgress",
    "TilePredictions",
    "dihedral_views",
    "forward_logits",
    "load_tile_predictions",
    "predict_tiles",
]


@dataclass(frozen=True)
class InferenceConfig:
    """How to run: device, batch, readers, precision."""

    device: str = "auto"
    batch_size: int = 128
    workers: int = 4
    amp: bool = True
    channels_last: bool = True
    compile: bool = False


@dataclass(frozen=True)
class InferenceProgress(Progress):
    """Yielded after every batch, with that batch's tile indices and scores (for live views)."""

    stage: str = "predicting"
    elapsed_s: float = 0.0
    batch_indices: np.ndarray | None = None
    batch_probabilities: np.ndarray | None = None

    @property
    def tiles_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class TilePredictions:
    """What :func:`predict_tiles` returns: per-tile probabilities of the whole grid."""

    grid: TileGrid
    probabilities: np.ndarray  # (n, C) float32
    spec: ModelSpec
    store_path: Path | None
    elapsed_s: float

    @property
    def classes(self) -> np.ndarray:
        """Top class per tile (int64, (n,))."""
        return self.probabilities.argmax(axis=1) if len(self.probabilities) else np.zeros(0, np.int64)


def predict_tiles(
    slide: Slide,
    spec: ModelSpec,
    grid: TileGrid,
    model: Any,
    *,
    config: InferenceConfig | None = None,
    store_path: str | os.PathLike[str] | None = None,
    stain: Any = None,
) -> Generator[InferenceProgress, None, TilePredictions]:
    """Classify every tile of ``grid``: yields :class:`InferenceProgress`, returns :class:`TilePredictions`.

    Parameters
    ----------
    slide : Slide
    spec : ModelSpec
        Must be a classification spec; ``grid.tile_px`` must equal ``spec.patch_size_pixels``.
    grid : TileGrid
        Tiles at ``spec.spacing_um_px`` (e.g. from :func:`napari_histo.pipeline.model_tissue_grid`).
    model : torch.nn.Module
        From :func:`~napari_histo.models.load_model`; moved to ``config.device``.
    store_path : path, optional
        ``<name>.zarr`` to stream into (resumes ``<name>.zarr.partial``).
    stain : TorchStainNormalizer, optional
        Applied to each batch on the device before normalisation.
    """
    import torch

    config = config or InferenceConfig()
    _check_inputs(spec, grid)
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    model = model.to(device).eval()
    if config.channels_last and cuda:
        model = model.to(memory_format=torch.channels_last)
    if config.compile:
        model = torch.compile(model)
    store = None
    if store_path is not None:
        fingerprint = _fingerprint(slide, spec, grid)
        store = PredictionStore.open_or_create(
            store_path, grid.origins_rc, list(spec.class_names), fingerprint
        )
        todo = store.pending()
    else:
        todo = np.arange(len(grid))
    probabilities = np.full((len(grid), spec.num_classes), np.nan, np.float32)
    if store is not None:
        probabilities[:] = store.probabilities()
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255
    start = time.perf_counter()
    done = len(grid) - len(todo)
    batch_size = max(1, int(config.batch_size))
    for indices, batch in read_batches(slide, grid, todo, batch_size, config.workers):
        scores = forward_scores(model, batch, device, mean, std, spec, config, stain)
        probabilities[indices] = scores
        if store is not None:
            store.write(indices, scores)
        done += len(indices)
        yield InferenceProgress(done, len(grid), elapsed_s=time.perf_counter() - start,
                                batch_indices=indices, batch_probabilities=scores)  # fmt: skip
    final = None
    if store is not None:
        shape, cells = grid_cells(grid)
        final = store.finalize(shape, cells, {"grid": _grid_attrs(grid), "spec": spec.to_json_dict()})
    return TilePredictions(grid, probabilities, spec, final, time.perf_counter() - start)


def _check_inputs(spec: ModelSpec, grid: TileGrid) -> None:
    if spec.task is not Task.CLASSIFICATION:
        raise ModelSpecError(
            f"{spec.architecture!r} is a {spec.task.value} model; tile classification needs a classifier "
            "(task: classification in model.json)"
        )
    if grid.tile_px != spec.patch_size_pixels:
        raise InvalidParameterError(
            f"the grid has {grid.tile_px} px tiles but the model expects {spec.patch_size_pixels} px; "
            "plan the grid with the model's patch_size_pixels"
        )
    if abs(grid.target_mpp - spec.spacing_um_px) > 0.02 * spec.spacing_um_px:
        raise InvalidParameterError(
            f"the grid is at {grid.target_mpp} µm/px but the model was trained at "
            f"{spec.spacing_um_px} µm/px; plan the grid with the model's spacing_um_px "
            "(a wrong magnification gives wrong predictions)"
        )


def read_batches(
    slide: Slide, grid: TileGrid, todo: np.ndarray, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, uint8 (b, h, w, 3)) batches in grid order."""
    buffer = np.empty((batch_size, grid.tile_px, grid.tile_px, 3), np.uint8)
    indices: list[int] = []
    for index, pixels in iter_tiles(slide, grid, todo.tolist(), workers=workers):
        buffer[len(indices)] = pixels
        indices.append(index)
        if len(indices) == batch_size:
            yield np.asarray(indices), buffer.copy()
            indices = []
    if indices:
        yield np.asarray(indices), buffer[: len(indices)].copy()


def forward_scores(
    model: Any, batch: np.ndarray, device: Any, mean: Any, std: Any, spec: ModelSpec,
    config: InferenceConfig, stain: Any,
) -> np.ndarray:  # fmt: skip
    """Softmax scores (b, C) float32; on CUDA out-of-memory, halve the batch and go on."""
    import torch

    try:
        return _forward(model, batch, device, mean, std, spec, config, stain)
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        warnings.warn(
            f"CUDA out of memory with a batch of {len(batch)} tiles; going on with {half}. "
            f"Pass --batch-size {half} to start there next time.",
            RuntimeWarning,
            stacklevel=2,
        )
        first = forward_scores(model, batch[:half], device, mean, std, spec, config, stain)
        second = forward_scores(model, batch[half:], device, mean, std, spec, config, stain)
        return np.concatenate([first, second])


def _forward(
    model: Any, batch: np.ndarray, device: Any, mean: Any, std: Any, spec: ModelSpec,
    config: InferenceConfig, stain: Any,
) -> np.ndarray:  # fmt: skip
    import torch
    import torch.nn.functional as F

    views = _forward_views(model, batch, device, mean, std, spec, config, stain)
    scores = torch.softmax(views / spec.temperature, dim=2).mean(0)  # mean over the TTA views
    if scores.ndim == 4 and scores.shape[-1] != batch.shape[2]:  # segmentation at another input size
        scores = F.interpolate(scores, size=batch.shape[1:3], mode="bilinear", align_corners=False)
    return scores.cpu().numpy()


def forward_logits(
    model: Any, batch: np.ndarray, spec: ModelSpec, *, device: Any = "cpu",
    config: InferenceConfig | None = None, stain: Any = None,
) -> np.ndarray:  # fmt: skip
    """float32 logits (views, b, C) of a uint8 (b, h, w, 3) batch, one view per ``spec.tta`` transform.

    For fitting a temperature (evaluation): ``predict_tiles`` scores are
    ``softmax(logits / spec.temperature).mean(views)`` of exactly these.
    """
    import torch

    config = config or InferenceConfig(device=str(device))
    device = resolve_device(device)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255
    model = model.to(device).eval()
    return _forward_views(model, batch, device, mean, std, spec, config, stain).cpu().numpy()


def dihedral_views(x: Any, tta: str) -> list[tuple[int, bool]]:
    """The (quarter turns, flip) pairs of ``tta``: one identity view, or all 8 of the dihedral group."""
    if tta == "none":
        return [(0, False)]
    if x.shape[-1] != x.shape[-2]:
        raise InvalidParameterError(
            f"dihedral test-time augmentation needs square patches, got {x.shape[-2]} x {x.shape[-1]} px"
        )
    return [(k, flip) for flip in (False, True) for k in range(4)]


def _forward_views(
    model: Any, batch: np.ndarray, device: Any, mean: Any, std: Any, spec: ModelSpec,
    config: InferenceConfig, stain: Any,
) -> Any:  # fmt: skip
    """float32 logits (views, b, C[, h, w]) at the input size; segmentation maps turned back per view."""
    import torch
    import torch.nn.functional as F

    cuda = device.type == "cuda"
    if stain is None and spec.stain:  # the model was trained on normalised patches: normalise as training did
        from napari_histo.models.stain_torch import TorchStainNormalizer

        stain = TorchStainNormalizer.for_model(spec.stain, device=str(device))
    tensor = torch.from_numpy(batch)
    if cuda:
        tensor = tensor.pin_memory()
    x = tensor.to(device, non_blocking=cuda)
    if stain is not None:
        x = stain.transform(x)
        x = x if x.dtype == torch.uint8 else x.clamp(0, 255)
    x = x.permute(0, 3, 1, 2).float()
    if spec.input_size != x.shape[-1]:
        x = F.interpolate(x, size=(spec.input_size, spec.input_size), mode="bilinear", align_corners=False)
    x = (x - mean) / std
    outputs = []
    for turns, flip in dihedral_views(x, spec.tta):
        view = torch.rot90(x.flip(-1) if flip else x, turns, dims=(-2, -1))
        if cuda and config.channels_last:
            view = view.contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and config.amp),
        ):
            logits = model(view).float()
        if logits.ndim == 4:  # a segmentation map: back to the patch's orientation
            logits = torch.rot90(logits, -turns, dims=(-2, -1))
            logits = logits.flip(-1) if flip else logits
        outputs.append(logits)
    return torch.stack(outputs)


def _fingerprint(slide: Slide, spec: ModelSpec, grid: TileGrid) -> dict[str, Any]:
    return {
        "slide": slide.path.name,
        "slide_bytes": source_bytes(slide.source),
        "architecture": spec.architecture,
        "class_names": list(spec.class_names),
        "n_tiles": len(grid),
        "first_last": grid.origins_rc[[0, -1]].tolist() if len(grid) else [],
        **_grid_attrs(grid),
    }


def _grid_attrs(grid: TileGrid) -> dict[str, Any]:
    return {
        "target_mpp": grid.target_mpp,
        "slide_mpp": grid.slide_mpp,
        "tile_px": grid.tile_px,
        "overlap_px": grid.overlap_px,
        "tile_px_level0": grid.tile_px_level0,
        "stride_px_level0": grid.stride_px_level0,
        "level": grid.level,
        "level_downsample": grid.level_downsample,
        "slide_shape_rc": list(grid.slide_shape_rc),
    }


def load_tile_predictions(store_path: str | Path) -> TilePredictions:
    """A finished ``histo predict`` store back as :class:`TilePredictions` (for layers and exports)."""
    from napari_histo.models.spec import spec_from_dict

    store = PredictionStore.open(store_path)
    attrs = store.attrs
    g = attrs["grid"]
    grid = TileGrid(
        store.origins_rc(), tuple(g["slide_shape_rc"]), g["slide_mpp"], g["target_mpp"], g["tile_px"],
        g["overlap_px"], g["level"], g.get("level_downsample", 1.0),
    )  # fmt: skip
    return TilePredictions(grid, store.probabilities(), spec_from_dict(attrs["spec"]), Path(store_path), 0.0)
