"""``histo predict``: whole-slide patch classification with a model directory."""

from __future__ import annotations

from pathlib import Path

import click

from napari_histo.cli._progress import run_with_bar

__all__ = ["predict"]


# fmt: off
MODEL_HELP = "Model directory (model.json + weights.safetensors) or a built-in model name."
PathIn = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("slides", nargs=-1, required=True, type=PathIn)
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (one set of files per slide).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--batch-size", default=128, show_default=True, help="Tiles per forward pass (halved on OOM).")
@click.option("--workers", default=4, show_default=True, help="Tile-decoding threads.")
@click.option("--min-tissue", default=0.5, show_default=True, help="Least tissue fraction per tile.")
@click.option("--slide-mpp", type=float, default=None, help="Level-0 µm/px if the file lacks it.")
@click.option("--stain", type=click.Choice(["macenko", "vahadane", "reinhard"]), default=None,
              help="Normalise stain to --stain-ref before the model.")
@click.option("--stain-ref", type=PathIn, default=None, help="Reference image for --stain.")
@click.option("--shard", default="0/1", show_default=True, help="i/n: every n-th slide from i (SLURM).")
@click.option("--compile/--no-compile", "compile_model", default=False, help="torch.compile (CUDA).")
def predict(
    slides: tuple[Path, ...], model_dir: str, out_dir: Path, device: str, batch_size: int, workers: int,
    min_tissue: float, slide_mpp: float | None, stain: str | None, stain_ref: Path | None, shard: str,
    compile_model: bool,
) -> None:
    # fmt: on
    """Classify every tissue tile of each slide and write, per slide, to --out:

    \b
      NAME.zarr           tile probabilities, class map and probability maps (chunked)
      NAME.geojson        QuPath tile objects: a measurement per class, the top class
      NAME.summary.json   class areas and fractions, and a slide-level call
      NAME.overlay.png    thumbnail with the predicted classes
    Slides with a summary already are skipped; a killed run resumes.

    \b
    Examples:
      histo predict slide.svs --model my-model --out results/
      histo predict cohort/*.svs --model my-model --out results/ --device cuda --batch-size 512
      histo predict cohort/*.svs --model m --out r/ --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    """
    from napari_histo.models.engine import InferenceConfig
    from napari_histo.pipeline.model import resolve_model
    from napari_histo.pipeline.session import check_mpp
    from napari_histo.pipeline.slide_job import SlideJob, run_slide_job
    from napari_histo.pipeline.tissue import check_fraction

    index, count = _parse_shard(shard)
    check_fraction(min_tissue, "--min-tissue")
    slide_mpp = None if slide_mpp is None else check_mpp(slide_mpp, "--slide-mpp")
    chosen = list(slides)[index::count]
    model = resolve_model(model_dir, device)
    model.network()  # fail now on a bad device or weights, not after the first slide
    config = InferenceConfig(device=device, batch_size=batch_size, workers=workers, compile=compile_model)
    for slide in chosen:
        job = SlideJob(slide, out_dir, config, min_tissue, slide_mpp, stain, stain_ref)
        summary = run_with_bar(run_slide_job(job, model), slide.name, "tile")
        if summary.get("skipped"):
            click.echo(f"{slide.name}: already done (delete its .summary.json to run again)")
        else:
            call = summary["slide_call"]
            click.echo(f"{slide.name}: {summary['n_tiles']} tiles, call {call['class']} "
                       f"(mean p={call['mean_probability']:.2f})")  # fmt: skip


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise click.BadParameter(f"--shard must be i/n, like 3/10, got {text!r}") from exc
    if not 0 <= index < count:
        raise click.BadParameter(f"--shard {text}: need 0 <= i < n")
    return index, count
