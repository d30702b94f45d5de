"""One slide, one idempotent job: tissue grid → inference → zarr, GeoJSON, summary, overlay.

A job whose ``<name>.summary.json`` exists is skipped, so cohorts can be re-run,
split over a SLURM array (``--shard i/n``) or a Dask cluster without
bookkeeping.  Every output is written to a temporary name and renamed, and the
prediction store resumes a killed run.  ``<name>.settings.json`` records what
made the outputs (model files, tissue fraction, µm/px, stain): a re-run with
other settings is refused (or, with ``overwrite``, replaces them) instead of
silently skipping or mixing results.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.overlay import add_legend, fill_boxes
from napari_histo.core.tiling import TileGrid
from napari_histo.errors import InvalidParameterError
from napari_histo.io.files import (
    file_digest,
    read_settings,
    settings_changes,
    source_bytes,
    source_name,
    write_bytes_atomic,
    write_png,
    write_settings,
)
from napari_histo.io.ome_zarr import NgffVersion, ome_zarr_from_mask_store, ome_zarr_from_prediction_store
from napari_histo.models.engine import InferenceConfig, InferenceProgress, TilePredictions
from napari_histo.models.segmentation import SegmentationResult
from napari_histo.models.spec import SPEC_FILE, WEIGHTS_FILE, Task
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.predict import predict_grid, segment_slide, warn_if_not_brightfield
from napari_histo.pipeline.qupath import write_prediction_geojson
from napari_histo.pipeline.session import SlideSession, open_session
from napari_histo.pipeline.stain import stain_normalizer
from napari_histo.pipeline.tiles import EarlierOutputsWarning
from napari_histo.pipeline.tissue import model_tissue_grid

__all__ = [
    "SlideJob",
    "check_earlier_outputs",
    "job_settings",
    "outputs_for",
    "prediction_overview",
    "run_slide_job",
    "summarize",
    "write_ome_zarr_output",
]


@dataclass(frozen=True)
class SlideJob:
    """What to run on one slide (a cohort task is one of these)."""

    slide_path: Path | str  # a local file or folder, or a URL (kept as given: Path would mangle it)
    out_dir: Path
    config: InferenceConfig = field(default_factory=InferenceConfig)
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    stain_method: str | None = None
    stain_reference: Path | None = None
    overwrite: bool = False  # outputs made with other settings: replace them instead of refusing
    ome_zarr: bool = False  # also write NAME.ome.zarr (OME-NGFF) beside the zarr store
    backend: str = "auto"  # what reads the slide (open_slide's backend=)


def outputs_for(slide_path: Path | str, out_dir: Path) -> dict[str, Path]:
    """The files a job writes for ``slide_path`` (``settings``: what made the others).

    A classifier writes ``zarr`` and ``geojson``; a segmentation model writes ``mask`` instead.
    ``ome_zarr`` (OME-NGFF) is written on request (``SlideJob.ome_zarr``, ``histo predict --ome-zarr``).
    """
    stem = source_name(slide_path).split(".")[0]
    return {
        "zarr": out_dir / f"{stem}.zarr",
        "mask": out_dir / f"{stem}.mask.zarr",  # a segmentation model's stitched class map
        "ome_zarr": out_dir / f"{stem}.ome.zarr",  # the maps as OME-NGFF, on request
        "geojson": out_dir / f"{stem}.geojson",
        "summary": out_dir / f"{stem}.summary.json",
        "overlay": out_dir / f"{stem}.overlay.png",
        "settings": out_dir / f"{stem}.settings.json",
    }


def run_slide_job(job: SlideJob, model: ModelHandle) -> Generator[InferenceProgress, None, dict[str, Any]]:
    """Run ``job`` with ``model`` (or skip it when its summary exists); returns the summary dict.

    The summary of a skipped job has ``"skipped": True``.  A job whose earlier outputs
    were made with other settings (model, weights, tissue fraction, µm/px, stain) is not
    skipped: see :func:`check_earlier_outputs`.
    """
    outputs = outputs_for(job.slide_path, job.out_dir)
    settings = job_settings(job, model)
    if check_earlier_outputs(job, model, settings):
        if job.ome_zarr:  # asked for now, after a run without it: made from the finished store
            write_ome_zarr_output(
                job.slide_path, job.out_dir, model.spec.class_names, model.spec.class_colors
            )
        return {**json.loads(outputs["summary"].read_text()), "skipped": True}
    if model.spec.task is Task.SEGMENTATION and job.stain_method is not None:
        raise InvalidParameterError("--stain is not supported with a segmentation model yet; leave it out")
    stain = stain_normalizer(job.stain_method, job.stain_reference, job.config.device)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    write_settings(outputs["settings"], settings)
    if model.spec.task is Task.SEGMENTATION:
        return (yield from _run_segmentation_job(job, model, outputs))
    with open_session(job.slide_path, job.slide_mpp, backend=job.backend) as session:
        warn_if_not_brightfield(session)  # before the tissue grid: a fluorescence slide has no "tissue"
        grid, fractions = model_tissue_grid(session, model, job.min_tissue)
        result = yield from predict_grid(session, model, grid, config=job.config,
                                         store_path=outputs["zarr"], stain=stain)  # fmt: skip
        write_prediction_geojson(result, outputs["geojson"], session.name)
        spec = result.spec
        write_png(
            outputs["overlay"],
            add_legend(prediction_overview(session, result), spec.class_names, spec.class_colors),
        )
    summary = summarize(result, job, fractions)
    if job.ome_zarr:
        write_ome_zarr_output(job.slide_path, job.out_dir, spec.class_names, spec.class_colors)
    write_bytes_atomic(outputs["summary"], json.dumps(summary, indent=2).encode())
    return summary


def _run_segmentation_job(
    job: SlideJob, model: ModelHandle, outputs: dict[str, Path]
) -> Generator[InferenceProgress, None, dict[str, Any]]:
    """Stitched segmentation: ``mask`` (labels and confidence at the model's µm/px), overlay, summary."""
    with open_session(job.slide_path, job.slide_mpp, backend=job.backend) as session:
        work = segment_slide(session, model, outputs["mask"], min_tissue=job.min_tissue, config=job.config)
        result, grid, fractions = yield from work
        spec = model.spec
        overview = segmentation_overview(session, outputs["mask"], spec.class_colors)
        write_png(outputs["overlay"], add_legend(overview, spec.class_names, spec.class_colors))
    summary = summarize_segmentation(
        result, job, grid, fractions, spec.class_names, spec.name or spec.architecture
    )
    if job.ome_zarr:
        write_ome_zarr_output(job.slide_path, job.out_dir, spec.class_names, spec.class_colors)
    write_bytes_atomic(outputs["summary"], json.dumps(summary, indent=2).encode())
    return summary


def write_ome_zarr_output(
    slide_path: Path | str,
    out_dir: Path,
    class_names: Sequence[str],
    class_colors: Sequence[Any],
    version: NgffVersion = "0.4",
) -> Path | None:
    """Write ``NAME.ome.zarr`` from the finished ``NAME.zarr`` (or ``NAME.mask.zarr``) store.

    Idempotent: an ``.ome.zarr`` newer than its store is kept.  Returns its path,
    or ``None`` when no finished store exists.  See :mod:`napari_histo.io.ome_zarr`
    for the layout (classifiers: class probabilities + top class as labels;
    segmentation: confidence + labels, at the model's µm/px).
    """
    outputs = outputs_for(slide_path, out_dir)
    dest = outputs["ome_zarr"]
    stores = [outputs[k] for k in ("zarr", "mask") if outputs[k].is_dir()]
    if not stores:
        return None
    store = max(stores, key=lambda p: p.stat().st_mtime)  # the latest run's, should both be there
    if dest.is_dir() and dest.stat().st_mtime >= store.stat().st_mtime:
        return dest
    colors = [tuple(c) for c in class_colors]
    if store == outputs["zarr"]:
        return ome_zarr_from_prediction_store(store, dest, class_colors=colors, version=version)
    return ome_zarr_from_mask_store(store, dest, class_names=list(class_names), class_colors=colors,
                                    version=version)  # fmt: skip


def summarize_segmentation(
    result: SegmentationResult, job: SlideJob, grid: TileGrid, tissue_fractions: np.ndarray,
    class_names: Sequence[str], model_name: str,
) -> dict[str, Any]:  # fmt: skip
    """Class areas (mm²) and fractions of the segmented pixels."""
    counts = np.asarray(result.class_pixels, np.int64)
    pixel_mm2 = (result.mpp / 1000) ** 2
    total = int(counts.sum())
    return {
        "slide": source_name(job.slide_path),
        "model": model_name,
        "task": "segmentation",
        "class_names": list(class_names),
        "n_tiles": len(grid),
        "tile_px": grid.tile_px,
        "overlap_px": grid.overlap_px,
        "mpp": result.mpp,
        "mask_shape": list(result.shape_rc),
        "min_tissue": job.min_tissue,
        "mean_tissue_fraction": float(np.mean(tissue_fractions)) if len(tissue_fractions) else 0.0,
        "segmented_area_mm2": round(total * pixel_mm2, 4),
        "classes": {
            name: {
                "pixels": int(counts[i]),
                "area_mm2": round(float(counts[i] * pixel_mm2), 4),
                "fraction": round(float(counts[i] / max(1, total)), 4),
            }
            for i, name in enumerate(class_names)
        },
        "elapsed_s": round(result.elapsed_s, 2),
        "tiles_per_s": round(len(grid) / result.elapsed_s, 1) if result.elapsed_s > 0 else None,
    }


def segmentation_overview(
    session: SlideSession,
    mask_path: Path,
    class_colors: Sequence[Any],
    max_px: int = 1024,
    alpha: float = 0.5,
) -> np.ndarray:
    """Thumbnail (uint8 RGB) with the stitched labels blended in their class colours (read in bands)."""
    import zarr

    thumb = session.slide.thumbnail(max_px)[..., :3].copy()
    labels: Any = zarr.open_group(str(mask_path), mode="r")["labels"]
    rows, cols = labels.shape
    r_idx = np.minimum((np.arange(thumb.shape[0]) + 0.5) * rows / thumb.shape[0], rows - 1).astype(np.int64)
    c_idx = np.minimum((np.arange(thumb.shape[1]) + 0.5) * cols / thumb.shape[1], cols - 1).astype(np.int64)
    small = np.full(thumb.shape[:2], -1, np.int16)
    step = 1024
    for r0 in range(0, rows, step):
        hit = (r_idx >= r0) & (r_idx < r0 + step)
        if hit.any():
            block = np.asarray(labels[r0 : min(rows, r0 + step)])
            small[hit] = block[r_idx[hit] - r0][:, c_idx]
    colors = np.asarray([np.asarray(c, float)[:3] for c in class_colors])  # 0-255, as in the spec
    shown = small >= 0
    tint = colors[np.clip(small, 0, len(colors) - 1)]
    out = thumb.astype(np.float32)
    out[shown] = (1 - alpha) * out[shown] + alpha * tint[shown]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


#: how each recorded setting is named to the user
_SETTING_NAMES = {
    "model": "--model", "model_files": "model files (model.json, weights)", "min_tissue": "--min-tissue",
    "slide_mpp": "--slide-mpp", "slide_bytes": "slide file size", "stain": "--stain",
    "stain_reference": "--stain-ref (file content)", "backend": "--backend",
}  # fmt: skip


def job_settings(job: SlideJob, model: ModelHandle) -> dict[str, Any]:
    """What decides a job's outputs (not the device, batch size or workers): recorded beside them."""
    files = {
        name: file_digest(model.directory / name)
        for name in (SPEC_FILE, WEIGHTS_FILE)
        if (model.directory / name).is_file()
    }
    return {
        "slide": source_name(job.slide_path),
        "slide_bytes": source_bytes(job.slide_path),
        "model": model.spec.name or model.spec.architecture,
        "model_files": files,
        "min_tissue": float(job.min_tissue),
        "slide_mpp": job.slide_mpp,
        "stain": job.stain_method,
        "stain_reference": None if job.stain_reference is None else file_digest(job.stain_reference),
        "backend": job.backend,  # as asked (auto, or forced); records without it compare on the rest
    }


def check_earlier_outputs(job: SlideJob, model: ModelHandle, settings: dict[str, Any] | None = None) -> bool:
    """``True`` when the job is already done with these settings (skip it).

    Earlier outputs made with other settings raise :class:`InvalidParameterError` naming
    what changed — or, with ``job.overwrite``, are deleted (with a warning).  A run
    interrupted under other settings is started afresh, with a warning.
    """
    outputs = outputs_for(job.slide_path, job.out_dir)
    settings = job_settings(job, model) if settings is None else settings
    done = outputs["summary"].exists()
    recorded = read_settings(outputs["settings"])
    keys = None
    if recorded is None and done:  # outputs from before settings were recorded: the summary has some
        summary = read_settings(outputs["summary"]) or {}
        recorded, keys = {k: summary.get(k) for k in ("model", "min_tissue")}, ["model", "min_tissue"]
    changes = settings_changes(recorded, settings, _SETTING_NAMES, keys) if recorded is not None else []
    partials = [outputs[k].with_name(outputs[k].name + ".partial") for k in ("zarr", "mask")]
    if not changes:
        return done
    changed = "; ".join(changes)
    name = source_name(job.slide_path)
    if done and not job.overwrite:
        raise InvalidParameterError(
            f"{outputs['summary']} was made with other settings ({changed}): write to another folder "
            f"(--out), or add --overwrite to predict {name} again and replace its outputs"
        )
    if done:
        for key in ("summary", "geojson", "overlay", "settings"):
            outputs[key].unlink(missing_ok=True)
        shutil.rmtree(outputs["zarr"], ignore_errors=True)
        shutil.rmtree(outputs["mask"], ignore_errors=True)
        shutil.rmtree(outputs["ome_zarr"], ignore_errors=True)
        warnings.warn(
            f"--overwrite: replacing the outputs of {name} in {job.out_dir}, made with other settings "
            f"({changed})",
            EarlierOutputsWarning,
            stacklevel=2,
        )
    if any(partial.exists() for partial in partials):
        for partial in partials:
            shutil.rmtree(partial, ignore_errors=True)
        warnings.warn(
            f"{name}: the interrupted run in {job.out_dir} used other settings ({changed}); starting afresh",
            EarlierOutputsWarning,
            stacklevel=2,
        )
    return False


def summarize(result: TilePredictions, job: SlideJob, tissue_fractions: np.ndarray) -> dict[str, Any]:
    """Class areas and fractions, and a slide-level call from the patch predictions."""
    spec, grid = result.spec, result.grid
    classes = result.classes
    tile_area_mm2 = (grid.stride_px_level0 * grid.slide_mpp / 1000) ** 2
    counts = np.bincount(classes, minlength=spec.num_classes)
    mean_probability = result.probabilities.mean(axis=0)
    call = int(mean_probability.argmax())
    return {
        "slide": source_name(job.slide_path),
        "model": spec.name or spec.architecture,
        "class_names": list(spec.class_names),
        "n_tiles": len(grid),
        "tile_px": grid.tile_px,
        "mpp": grid.target_mpp,
        "min_tissue": job.min_tissue,
        "mean_tissue_fraction": float(np.mean(tissue_fractions)) if len(tissue_fractions) else 0.0,
        "classes": {
            name: {
                "tiles": int(counts[i]),
                "area_mm2": round(float(counts[i] * tile_area_mm2), 4),
                "fraction": round(float(counts[i] / max(1, len(grid))), 4),
                "mean_probability": round(float(mean_probability[i]), 4),
            }
            for i, name in enumerate(spec.class_names)
        },
        "slide_call": {
            "class": spec.class_names[call],
            "rule": "highest mean probability over tissue tiles",
            "mean_probability": round(float(mean_probability[call]), 4),
        },
        "elapsed_s": round(result.elapsed_s, 2),
        "tiles_per_s": round(len(grid) / result.elapsed_s, 1) if result.elapsed_s > 0 else None,
    }


def prediction_overview(session: SlideSession, result: TilePredictions, max_px: int = 1024) -> np.ndarray:
    """Thumbnail (uint8 RGB) with each predicted tile tinted in its class colour."""
    thumb = session.slide.thumbnail(max_px)[..., :3]
    rows, cols = session.slide.dimensions
    colors = np.asarray(result.spec.class_colors)[result.classes]
    return fill_boxes(thumb, result.grid.bounds_rc(), colors, (thumb.shape[0] / rows, thumb.shape[1] / cols))
