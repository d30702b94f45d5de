"""``histo predict``: whole-slide patch classification or stitched segmentation with a model directory."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click
import numpy as np

from napari_histo.cli._options import (
    BACKEND,
    BACKEND_HELP,
    BATCH_SIZE,
    DEVICE,
    FRACTION,
    MPP,
    SHARD,
    WORKERS,
    ExistingFile,
    SlideSource,
    require_pair,
)
from napari_histo.cli._progress import run_with_bar
from napari_histo.cli._report import naming_folder
from napari_histo.io.files import source_name

__all__ = ["predict"]


# fmt: off
MODEL_HELP = "Model directory (model.json + weights.safetensors) or a built-in model name."
PathIn = ExistingFile()


@click.command()
@click.argument("slides", nargs=-1, required=True, type=SlideSource())
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (one set of files per slide).")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="auto | cpu | cuda | cuda:N | mps")
@click.option("--batch-size", type=BATCH_SIZE, default=128, show_default=True,
              help="Tiles per forward pass (halved on CUDA out-of-memory).")
@click.option("--workers", type=WORKERS, default=4, show_default=True, help="Tile-decoding threads.")
@click.option("--min-tissue", type=FRACTION, default=0.5, show_default=True,
              help="Least tissue fraction per tile (0 keeps every tile).")
@click.option("--slide-mpp", type=MPP, default=None, help="Level-0 µm/px if the file lacks it.")
@click.option("--stain", type=click.Choice(["macenko", "vahadane", "reinhard"]), default=None,
              help="Normalise stain to --stain-ref before the model.")
@click.option("--stain-ref", type=PathIn, default=None, help="Reference image for --stain.")
@click.option("--shard", type=SHARD, default="0/1", show_default=True,
              help="i/n: every n-th slide from i (SLURM).")
@click.option("--compile/--no-compile", "compile_model", default=False, help="torch.compile (CUDA only).")
@click.option("--overwrite", is_flag=True,
              help="Predict again slides whose outputs in --out were made with other settings, replacing "
                   "them (without it such a re-run is refused).")
@click.option("--backend", type=BACKEND, default="auto", show_default=True, help=BACKEND_HELP)
@click.option("--ome-zarr/--no-ome-zarr", "ome_zarr", default=False, show_default=True,
              help="Also write NAME.ome.zarr: the maps as OME-Zarr (NGFF 0.4) for QuPath 0.6+ and "
                   "napari-ome-zarr (made from the finished store; added to earlier runs too).")
def predict(
    slides: tuple[Path | str, ...], model_dir: str, out_dir: Path, device: str, batch_size: int, workers: int,
    min_tissue: float, slide_mpp: float | None, stain: str | None, stain_ref: Path | None,
    shard: tuple[int, int], compile_model: bool, overwrite: bool, backend: str, ome_zarr: bool,
) -> None:
    # fmt: on
    """Classify every tissue tile of each slide and write, per slide, to --out:

    \b
      NAME.zarr           tile probabilities, class map and probability maps (chunked)
      NAME.geojson        QuPath tile objects: a measurement per class, the top class
      NAME.summary.json   class areas and fractions, and a slide-level call
      NAME.overlay.png    thumbnail with the predicted classes
      NAME.settings.json  what made them (model files, --min-tissue, µm/px, stain)

    \b
    A slide-level model (task: mil, trained on tile embeddings) embeds the
    slide with the encoder it was trained on (NAME.embeddings.zarr, reused
    when finished) and writes NAME.slide.json (the call and the class
    probabilities) and NAME.attention.geojson (QuPath tiles with the
    attention and a score per class as measurements).

    \b
    A segmentation model (task: segmentation in model.json) segments the tissue
    in overlapping tiles and writes, instead of NAME.zarr and NAME.geojson,
      NAME.mask.zarr      stitched class map ("labels", -1 = not segmented) and
                          "confidence", at the model's µm/px
    with the class areas in NAME.summary.json and the classes on NAME.overlay.png.
    With --ome-zarr, NAME.ome.zarr holds the maps as OME-Zarr (multiscale, in µm):
    class probabilities (or the confidence) and the classes as a label image.
    Slides with a summary already are skipped; a killed run resumes.  If the
    settings changed since, the run is refused unless --overwrite.

    \b
    Examples:
      histo predict slide.svs --model my-model --out results/
      histo predict cohort/*.svs --model my-model --out results/ --device cuda --batch-size 512
      histo predict cohort/*.svs --model m --out r/ --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    """
    require_pair(("--stain", stain), ("--stain-ref", stain_ref),
                 "the reference image whose colours the patches are mapped to, e.g. --stain-ref ref.png")
    require_pair(("--stain-ref", stain_ref), ("--stain", stain),
                 "the method that maps the colours: --stain macenko, vahadane or reinhard")
    from napari_histo.core.memory import check_allocation
    from napari_histo.models.engine import InferenceConfig
    from napari_histo.models.loading import resolve_device
    from napari_histo.pipeline.cohort import CohortSlide, slide_task
    from napari_histo.pipeline.model import resolve_model
    from napari_histo.pipeline.predict import segmentation_areas_text
    from napari_histo.pipeline.slide_job import (
        SlideJob,
        check_earlier_outputs,
        outputs_for,
        write_ome_zarr_output,
    )

    index, count = shard
    chosen = list(slides)[index::count]
    from napari_histo.models.mil import is_mil_model

    if is_mil_model(model_dir):  # a slide-level model: embed with its encoder, then one call per slide
        if stain is not None:
            raise click.UsageError("--stain is not supported with a slide-level (MIL) model; leave it out")
        _predict_slide_level(chosen, model_dir, out_dir, device=device, batch_size=batch_size,
                             workers=workers,
                             min_tissue=min_tissue, slide_mpp=slide_mpp, backend=backend.lower(),
                             overwrite=overwrite)  # fmt: skip
        return
    model = resolve_model(model_dir, device)
    size = model.spec.input_size
    what = f"a batch of {batch_size:,} patches of {size} px"
    check_allocation((batch_size, 3, size, size), np.float32, what, "use a smaller --batch-size")
    model.network()  # fail now on a bad device or weights, not after the first slide
    if compile_model and resolve_device(device).type != "cuda":
        warnings.warn("--compile speeds up CUDA only; running without it on this device", UserWarning,
                      stacklevel=1)  # fmt: skip
        compile_model = False
    config = InferenceConfig(device=device, batch_size=batch_size, workers=workers, compile=compile_model)
    if not overwrite:  # refuse before the first slide, not after the tenth
        for slide in chosen:
            job = SlideJob(slide, out_dir, config, min_tissue, slide_mpp, stain, stain_ref,
                           backend=backend.lower())  # fmt: skip
            check_earlier_outputs(job, model)
    options = {
        "model": model, "device": device, "batch_size": batch_size, "workers": workers,
        "compile": compile_model, "min_tissue": min_tissue, "slide_mpp": slide_mpp, "stain": stain,
        "stain_ref": stain_ref, "overwrite": overwrite, "ome_zarr": ome_zarr, "backend": backend.lower(),
    }  # fmt: skip
    for slide in chosen:  # the same per-slide task as ``histo cohort predict``, one after another
        with naming_folder(out_dir):
            task = slide_task("predict", CohortSlide(slide), out_dir, options, raise_errors=True)
            outcome = run_with_bar(task, source_name(slide), "tile")
        if ome_zarr:  # from the finished store (a no-op when the job wrote it already)
            write_ome_zarr_output(slide, out_dir, model.spec.class_names, model.spec.class_colors)
        if outcome.status == "skipped":
            click.echo(f"{source_name(slide)}: already done (delete its .summary.json to run again)")
        else:
            summary = json.loads(outputs_for(slide, out_dir)["summary"].read_text())
            if summary.get("task") == "segmentation":
                areas = segmentation_areas_text(summary["classes"])
                click.echo(f"{source_name(slide)}: {summary['n_tiles']} tiles segmented, {areas}")
                continue
            call = summary["slide_call"]
            click.echo(f"{source_name(slide)}: {summary['n_tiles']} tiles, call {call['class']} "
                       f"(mean p={call['mean_probability']:.2f})")  # fmt: skip


def _predict_slide_level(slides: list[Path | str], model_dir: str, out_dir: Path, **options: object) -> None:
    """``histo predict`` with a MIL model directory: one slide-level call per slide."""
    from napari_histo.pipeline.slide_level import run_slide_level, slide_level_outputs
    from napari_histo.pipeline.tiles import slide_stem

    for slide in slides:
        with naming_folder(out_dir):
            work = run_slide_level(slide, model_dir, out_dir, **options)  # type: ignore[arg-type]
            result = run_with_bar(work, source_name(slide), "tile")
        shown = slide_level_outputs(slide_stem(slide), out_dir)
        click.echo(f"{source_name(slide)}: {len(result.attention):,} tiles, slide call {result.call} "
                   f"(p={result.probability:.2f}); attention: {shown['geojson']}")  # fmt: skip
