"""One slide, one idempotent job: grid → tissue → inference → zarr, GeoJSON, summary, overlay.

A job whose ``<name>.summary.json`` exists is skipped, so cohorts can be re-run,
split over a SLURM array (``--shard i/n``) or a Dask cluster without
bookkeeping.  Every output is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.io import open_slide
from napari_histo.io.patches import tissue_tile_grid
from napari_histo.models.engine import InferenceConfig, InferenceProgress, TilePredictions, predict_tiles
from napari_histo.models.spec import ModelSpec

__all__ = [
    "SlideJob",
    "outputs_for",
    "prediction_overview",
    "run_slide_job",
    "summarize",
    "write_tile_geojson",
]


@dataclass(frozen=True)
class SlideJob:
    """What to run on one slide."""

    slide_path: Path
    model_dir: Path
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


def run_slide_job(
    job: SlideJob, progress: Callable[[InferenceProgress], None] | None = None, model: Any = None
) -> dict[str, Any]:
    """Run ``job`` (or skip it when its summary exists); returns the summary dict."""
    from napari_histo.models.loading import load_model
    from napari_histo.models.spec import load_spec

    outputs = outputs_for(job.slide_path, job.out_dir)
    if outputs["summary"].exists():
        return {**json.loads(outputs["summary"].read_text()), "skipped": True}
    job.out_dir.mkdir(parents=True, exist_ok=True)
    spec = load_spec(job.model_dir)
    model = model if model is not None else load_model(job.model_dir, device=job.config.device)
    with open_slide(job.slide_path, mpp=job.slide_mpp, on_error="fill") as slide:
        grid, fractions = tissue_tile_grid(slide, spec.spacing_um_px, spec.patch_size_pixels, job.min_tissue)
        if len(grid) == 0:
            raise ValueError(
                f"{job.slide_path.name}: no tile has at least {job.min_tissue:.0%} tissue. The slide may be "
                "blank or the tissue faint; lower --min-tissue (e.g. 0.1) or check the slide."
            )
        stain = _stain_normalizer(job, spec)
        result = None
        for item in predict_tiles(slide, spec, grid, model, config=job.config, store_path=outputs["zarr"],
                                  stain=stain):  # fmt: skip
            if isinstance(item, TilePredictions):
                result = item
            elif progress is not None:
                progress(item)
        assert result is not None
        write_tile_geojson(result, outputs["geojson"])
        _write_overlay(slide, result, outputs["overlay"])
    summary = summarize(result, job, fractions)
    _write_text(outputs["summary"], json.dumps(summary, indent=2))
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


def _stain_normalizer(job: SlideJob, spec: ModelSpec) -> Any:
    if job.stain_method is None:
        return None
    from napari_histo.models.loading import resolve_device
    from napari_histo.models.stain_torch import TorchStainNormalizer

    if job.stain_reference is None:
        raise ValueError("--stain needs --stain-ref IMAGE: the reference whose colours patches are mapped to")
    with open_slide(job.stain_reference) as ref:  # the smallest level: the whole reference, bounded
        pixels = ref.read_region((0, 0), ref.level_count - 1, ref.level_info[-1].shape[:2])
    device = str(resolve_device(job.config.device))
    return TorchStainNormalizer(job.stain_method, device=device).fit(pixels[..., :3])


def write_tile_geojson(result: TilePredictions, path: Path) -> int:
    """Write the predictions as QuPath tile objects (one measurement per class); returns the count."""
    from qupath_bridge import rc_to_xy, tiles_to_objects, write_geojson

    spec, grid = result.spec, result.grid
    # tile corners are pixel edges: (r - 0.5, c - 0.5) in the pixel-centre convention
    corners_xy = rc_to_xy(grid.origins_rc.astype(np.float64) - 0.5)
    colors = dict(zip(spec.class_names, spec.class_colors))
    objects = tiles_to_objects(corners_xy, grid.tile_px_level0, result.probabilities, spec.class_names,
                               class_colors=colors)  # fmt: skip
    write_geojson(objects, path)
    return len(objects)


def _write_overlay(slide: Any, result: TilePredictions, path: Path, max_px: int = 1024) -> None:
    import imagecodecs

    _write_bytes(path, imagecodecs.png_encode(prediction_overview(slide, result, max_px)))


def prediction_overview(slide: Any, result: TilePredictions, max_px: int = 1024) -> np.ndarray:
    """Thumbnail (uint8 RGB) with each predicted tile tinted in its class colour."""
    from napari_histo.core.overlay import fill_boxes

    thumb = slide.thumbnail(max_px)[..., :3]
    rows, cols = slide.dimensions
    colors = np.asarray(result.spec.class_colors)[result.classes]
    return fill_boxes(thumb, result.grid.bounds_rc(), colors, (thumb.shape[0] / rows, thumb.shape[1] / cols))


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode())


def _write_bytes(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
