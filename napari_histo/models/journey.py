"""The pathologist's journey, headless: slide → tissue and tiles → stain → model → QuPath.

``run_journey`` does each step with the same functions the napari docks and the
CLI use, writes its outputs and one PNG per step (an overview of what that
step produced) into ``out_dir``, and returns what it did.  ``histo demo`` runs
it on the built-in synthetic slide with the shipped default model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["REFERENCE_HE", "JourneyStep", "run_journey"]

#: Macenko et al.'s reference H&E stain vectors (rows: haematoxylin, eosin) and 99th-percentile
#: concentrations, as used by most Macenko implementations as the default target
REFERENCE_HE = {
    "stain_matrix": [[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]],
    "max_concentrations": [1.9705, 1.0308],
}


@dataclass(frozen=True)
class JourneyStep:
    """One step: its name, the PNG that shows it, and a line saying what happened."""

    name: str
    image: str | None
    detail: str


def run_journey(
    slide_path: str | os.PathLike[str],
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    say: Callable[[str], None] = print,
) -> list[JourneyStep]:
    """Run every step on ``slide_path`` with ``model`` (a model directory or built-in name)."""
    from napari_histo.io import open_slide

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps: list[JourneyStep] = []

    def record(step: JourneyStep) -> None:
        steps.append(step)
        say(f"{len(steps)}. {step.name}: {step.detail}")

    with open_slide(slide_path) as slide:
        record(_step_open(slide, out))
        record(_step_tissue(slide, model, out))
        record(_step_stain(slide, out))
    record(_step_predict(Path(slide_path), model, out, device))
    record(_step_qupath(Path(slide_path), model, out))
    _write(out / "journey.json", json.dumps([asdict(s) for s in steps], indent=2).encode())
    return steps


def _step_open(slide: Any, out: Path) -> JourneyStep:
    info = slide.info()
    _write(out / "slide-info.json", json.dumps(info, indent=2).encode())
    _png(out / "step1-slide.png", slide.thumbnail(1024))
    rows, cols = slide.dimensions
    mpp = f"{slide.mpp:.3f} µm/px" if slide.mpp else "no µm/px"
    return JourneyStep("open the slide", "step1-slide.png",
                       f"{cols:,} x {rows:,} px, {slide.level_count} levels, {mpp}")  # fmt: skip


def _step_tissue(slide: Any, model: Any, out: Path) -> JourneyStep:
    from napari_histo.core.overlay import blend_mask, outline_boxes
    from napari_histo.io.patches import plan_slide_grid, slide_tissue_mask, tissue_tiles
    from napari_histo.models.loading import resolve_model_dir
    from napari_histo.models.spec import load_spec

    spec = load_spec(resolve_model_dir(model))
    mask = slide_tissue_mask(slide)
    grid = plan_slide_grid(slide, spec.spacing_um_px, spec.patch_size_pixels)
    kept, _ = tissue_tiles(grid, mask, 0.5)
    thumb = slide.thumbnail(1024)[..., :3]
    rows, cols = slide.dimensions
    image = blend_mask(thumb, mask.mask, (0, 170, 0), alpha=0.3)
    image = outline_boxes(
        image, kept.bounds_rc(), (255, 200, 0), (thumb.shape[0] / rows, thumb.shape[1] / cols)
    )
    _png(out / "step2-tissue-tiles.png", image)
    return JourneyStep("detect tissue and tile", "step2-tissue-tiles.png",
                       f"tissue {mask.mask.mean():.0%} of the slide; {len(kept):,} of {len(grid):,} tiles of "
                       f"{spec.patch_size_pixels} px at {spec.spacing_um_px} µm/px kept")  # fmt: skip


def _step_stain(slide: Any, out: Path) -> JourneyStep:
    from napari_histo.core.stain import StainMethod, StainParams, normalize_stain
    from napari_histo.io.slide_stain import fit_stain_on_slide

    source = fit_stain_on_slide(slide, StainMethod.MACENKO)
    target = StainParams(StainMethod.MACENKO, np.asarray(REFERENCE_HE["stain_matrix"]),
                         np.asarray(REFERENCE_HE["max_concentrations"]))  # fmt: skip
    rows, cols = slide.dimensions
    region = slide.read_region((rows // 2 - 256, cols // 2 - 256), 0, (512, 512))[..., :3]
    normalised = normalize_stain(region, target, source=source)
    _png(
        out / "step3-stain.png", np.concatenate([region, np.full((512, 8, 3), 255, np.uint8), normalised], 1)
    )
    _write(out / "slide-stain.json", (source.to_json() + "\n").encode())
    return JourneyStep("normalise stain (Macenko, fitted once on the slide)", "step3-stain.png",
                       "left: as scanned; right: mapped to the reference H&E stain vectors")  # fmt: skip


def _step_predict(slide_path: Path, model: Any, out: Path, device: str) -> JourneyStep:
    from napari_histo.models.engine import InferenceConfig
    from napari_histo.models.loading import resolve_model_dir
    from napari_histo.models.slide_job import SlideJob, outputs_for, run_slide_job

    model_dir = resolve_model_dir(model)
    job = SlideJob(slide_path, model_dir, out / "predictions", InferenceConfig(device=device, batch_size=64))
    summary = run_slide_job(job)
    overlay = outputs_for(slide_path, job.out_dir)["overlay"]
    (out / "step4-predictions.png").write_bytes(overlay.read_bytes())
    classes = ", ".join(f"{name} {c['fraction']:.0%}" for name, c in summary["classes"].items())
    call = summary["slide_call"]["class"]
    detail = f"{summary['n_tiles']:,} tiles ({classes}); slide call {call}"
    return JourneyStep(f"run the model ({summary['model']})", "step4-predictions.png", detail)


def _step_qupath(slide_path: Path, model: Any, out: Path) -> JourneyStep:
    import qupath_bridge as qb
    from napari_histo.models.loading import resolve_model_dir
    from napari_histo.models.slide_job import outputs_for
    from napari_histo.models.spec import load_spec

    geojson = outputs_for(slide_path, out / "predictions")["geojson"]
    result = qb.validate_geojson(geojson)
    spec = load_spec(resolve_model_dir(model))
    classes = [qb.Classification.from_name(n, tuple(c)) for n, c in zip(spec.class_names, spec.class_colors)]
    qb.write_class_list(classes, out / "qupath-classes.json")
    objects = qb.read_geojson(geojson)
    verdict = "OK for QuPath" if result.is_valid else result.format(limit=2)
    return JourneyStep("export to QuPath", None,
                       f"{len(objects):,} tile objects in {geojson.name} ({verdict}); class colours in "
                       "qupath-classes.json")  # fmt: skip


def _png(path: Path, image: np.ndarray) -> None:
    import imagecodecs

    _write(path, imagecodecs.png_encode(np.ascontiguousarray(image)))


def _write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
