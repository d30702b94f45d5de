"""The pathologist's journey, headless: slide → tissue and tiles → stain → model → QuPath.

``run_journey`` does each step with the same pipeline verbs the napari docks
and the CLI use, writes its outputs and one PNG per step (an overview of what
that step produced) into ``out_dir``, and returns what it did.  ``histo demo``
runs it on CMU-1-Small-Region (real H&E) with the shipped default model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import qupath_bridge as qb
from napari_histo.core.overlay import blend_mask, outline_boxes
from napari_histo.core.progress import run_to_end
from napari_histo.core.stain import StainMethod, macenko_reference, normalize_stain
from napari_histo.io.files import write_bytes_atomic, write_png
from napari_histo.models.engine import InferenceConfig
from napari_histo.pipeline.model import ModelHandle, resolve_model
from napari_histo.pipeline.session import SlideSession, open_session
from napari_histo.pipeline.slide_job import SlideJob, outputs_for, run_slide_job
from napari_histo.pipeline.stain import fit_stain_on_slide
from napari_histo.pipeline.tissue import tissue_grid

__all__ = ["JourneyStep", "run_journey"]


@dataclass(frozen=True)
class JourneyStep:
    """One step: its name, the PNG that shows it, and a line saying what happened."""

    name: str
    image: str | None
    detail: str


def run_journey(
    slide_path: str | os.PathLike[str],
    model: str | os.PathLike[str] | ModelHandle,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    say: Callable[[str], None] = print,
) -> list[JourneyStep]:
    """Run every step on ``slide_path`` with ``model`` (a model directory, built-in name or handle)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handle = resolve_model(model, device)
    steps: list[JourneyStep] = []

    def record(step: JourneyStep) -> None:
        steps.append(step)
        say(f"{len(steps)}. {step.name}: {step.detail}")

    with open_session(slide_path) as session:
        record(_step_open(session, out))
        record(_step_tissue(session, handle, out))
        record(_step_stain(session, out))
    record(_step_predict(Path(slide_path), handle, out, device))
    record(_step_qupath(Path(slide_path), handle, out))
    write_bytes_atomic(out / "journey.json", json.dumps([asdict(s) for s in steps], indent=2).encode())
    return steps


def _step_open(session: SlideSession, out: Path) -> JourneyStep:
    slide = session.slide
    write_bytes_atomic(out / "slide-info.json", json.dumps(slide.info(), indent=2).encode())
    write_png(out / "step1-slide.png", slide.thumbnail(1024))
    rows, cols = slide.dimensions
    mpp = f"{session.mpp:.3f} µm/px" if session.mpp else "no µm/px"
    return JourneyStep("open the slide", "step1-slide.png",
                       f"{cols:,} x {rows:,} px, {slide.level_count} levels, {mpp}")  # fmt: skip


def _step_tissue(session: SlideSession, model: ModelHandle, out: Path) -> JourneyStep:
    spec = model.spec
    found = run_to_end(tissue_grid(session, target_mpp=spec.spacing_um_px, tile_px=spec.patch_size_pixels))
    thumb = session.slide.thumbnail(1024)[..., :3]
    rows, cols = session.slide.dimensions
    image = blend_mask(thumb, found.mask.mask, (0, 170, 0), alpha=0.3)
    image = outline_boxes(
        image, found.grid.bounds_rc(), (255, 200, 0), (thumb.shape[0] / rows, thumb.shape[1] / cols)
    )
    write_png(out / "step2-tissue-tiles.png", image)
    kept = f"{len(found.grid):,} of {found.total:,} tiles"
    detail = f"tissue {found.mask.mask.mean():.0%} of the slide; {kept} of {spec.patch_size_pixels} px at "
    return JourneyStep(
        "detect tissue and tile", "step2-tissue-tiles.png", f"{detail}{spec.spacing_um_px} µm/px kept"
    )


def _step_stain(session: SlideSession, out: Path) -> JourneyStep:
    source = fit_stain_on_slide(session, StainMethod.MACENKO)
    rows, cols = session.slide.dimensions
    region = session.slide.read_region((rows // 2 - 256, cols // 2 - 256), 0, (512, 512))[..., :3]
    normalised = normalize_stain(region, macenko_reference(), source=source)
    write_png(
        out / "step3-stain.png", np.concatenate([region, np.full((512, 8, 3), 255, np.uint8), normalised], 1)
    )
    write_bytes_atomic(out / "slide-stain.json", (source.to_json() + "\n").encode())
    return JourneyStep("normalise stain (Macenko, fitted once on the slide)", "step3-stain.png",
                       "left: as scanned; right: mapped to the reference H&E stain vectors")  # fmt: skip


def _step_predict(slide_path: Path, model: ModelHandle, out: Path, device: str) -> JourneyStep:
    job = SlideJob(
        slide_path, out / "predictions", InferenceConfig(device=device, batch_size=64), overwrite=True
    )
    summary = run_to_end(run_slide_job(job, model))
    overlay = outputs_for(slide_path, job.out_dir)["overlay"]
    (out / "step4-predictions.png").write_bytes(overlay.read_bytes())
    classes = ", ".join(f"{name} {c['fraction']:.0%}" for name, c in summary["classes"].items())
    call = summary["slide_call"]["class"]
    detail = f"{summary['n_tiles']:,} tiles ({classes}); slide call {call}"
    return JourneyStep(f"run the model ({summary['model']})", "step4-predictions.png", detail)


def _step_qupath(slide_path: Path, model: ModelHandle, out: Path) -> JourneyStep:
    geojson = outputs_for(slide_path, out / "predictions")["geojson"]
    result = qb.validate_geojson(geojson)
    spec = model.spec
    classes: list[qb.Classification | str] = [
        qb.Classification.from_name(n, tuple(c)) for n, c in zip(spec.class_names, spec.class_colors)
    ]
    qb.write_class_list(classes, out / "qupath-classes.json")
    objects = qb.read_geojson(geojson)
    verdict = "OK for QuPath" if result.is_valid else result.format(limit=2)
    return JourneyStep("export to QuPath", None,
                       f"{len(objects):,} tile objects in {geojson.name} ({verdict}); class colours in "
                       "qupath-classes.json")  # fmt: skip
