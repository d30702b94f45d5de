"""One slide, one idempotent job: tissue grid → inference → zarr, GeoJSON, summary, overlay.

A job whose ``<name>.summary.json`` exists is skipped, so cohorts can be re-run,
split over a SLURM array (``--shard i/n``) or a Dask cluster without
bookkeeping.  Every output is written to a temporary name and renamed, and the
prediction store resumes a killed run.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core.overlay import fill_boxes
from napari_histo.io.files import write_bytes_atomic, write_png
from napari_histo.models.engine import InferenceConfig, InferenceProgress, TilePredictions
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.predict import predict_grid
from napari_histo.pipeline.qupath import write_prediction_geojson
from napari_histo.pipeline.session import SlideSession, open_session
from napari_histo.pipeline.stain import stain_normalizer
from napari_histo.pipeline.tissue import model_tissue_grid

__all__ = ["SlideJob", "outputs_for", "prediction_overview", "run_slide_job", "summarize"]


@dataclass(frozen=True)
class SlideJob:
    """What to run on one slide (a cohort task is one of these)."""

    slide_path: Path
    out_dir: Path
    config: InferenceConfig = field(default_factory=InferenceConfig)
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    stain_method: str | None = None
    stain_reference: Path | None = None


def outputs_for(slide_path: Path, out_dir: Path) -> dict[str, Path]:
    """The files a job writes for ``slide_path``."""
    stem = slide_path.name.split(".")[0]
    return {
        "zarr": out_dir / f"{stem}.zarr",
        "geojson": out_dir / f"{stem}.geojson",
        "summary": out_dir / f"{stem}.summary.json",
        "overlay": out_dir / f"{stem}.overlay.png",
    }


def run_slide_job(job: SlideJob, model: ModelHandle) -> Generator[InferenceProgress, None, dict[str, Any]]:
    """Run ``job`` with ``model`` (or skip it when its summary exists); returns the summary dict.

    The summary of a skipped job has ``"skipped": True``.
    """
    outputs = outputs_for(job.slide_path, job.out_dir)
    if outputs["summary"].exists():
        return {**json.loads(outputs["summary"].read_text()), "skipped": True}
    stain = stain_normalizer(job.stain_method, job.stain_reference, job.config.device)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    with open_session(job.slide_path, job.slide_mpp) as session:
        grid, fractions = model_tissue_grid(session, model, job.min_tissue)
        result = yield from predict_grid(session, model, grid, config=job.config,
                                         store_path=outputs["zarr"], stain=stain)  # fmt: skip
        write_prediction_geojson(result, outputs["geojson"], session.name)
        write_png(outputs["overlay"], prediction_overview(session, result))
    summary = summarize(result, job, fractions)
    write_bytes_atomic(outputs["summary"], json.dumps(summary, indent=2).encode())
    return summary


def summarize(result: TilePredictions, job: SlideJob, tissue_fractions: np.ndarray) -> dict[str, Any]:
    """Class areas and fractions, and a slide-level call from the patch predictions."""
    spec, grid = result.spec, result.grid
    classes = result.classes
    tile_area_mm2 = (grid.stride_px_level0 * grid.slide_mpp / 1000) ** 2
    counts = np.bincount(classes, minlength=spec.num_classes)
    mean_probability = result.probabilities.mean(axis=0)
    call = int(mean_probability.argmax())
    return {
        "slide": job.slide_path.name,
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
