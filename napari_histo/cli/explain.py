"""``histo explain``: Grad-CAM heatmaps of a model on a slide's tissue tiles or on a folder of patches."""

from __future__ import annotations

from pathlib import Path

import click

from napari_histo.cli._options import DEVICE, FRACTION, MPP
from napari_histo.cli._progress import run_with_bar

__all__ = ["explain"]


# fmt: off
MODEL_HELP = "Model directory (model.json + weights.safetensors) or a built-in model name."


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder.")
@click.option("--max-tiles", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="Most slide tiles to explain (evenly spread over the tissue).")
@click.option("--class", "class_name", default=None,
              help="Class to explain (default: each tile's predicted class).")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="auto | cpu | cuda | cuda:N | mps")
@click.option("--min-tissue", type=FRACTION, default=0.5, show_default=True,
              help="Least tissue fraction per slide tile.")
@click.option("--slide-mpp", type=MPP, default=None, help="Level-0 µm/px if the slide file lacks it.")
def explain(
    source: Path, model_dir: str, out_dir: Path, max_tiles: int, class_name: str | None, device: str,
    min_tissue: float, slide_mpp: float | None,
) -> None:
    # fmt: on
    """Show where a model finds its evidence (Grad-CAM, in Turbo colours) and write, to --out:

    \b
    for a SOURCE slide (tissue tiles at the model's µm/px):
      NAME.gradcam.png      the tiles' region of the slide with the heatmap over it
      NAME.gradcam.npy      the per-tile maps, float32 (tiles, px, px) in [0, 1]
      NAME.gradcam.geojson  QuPath tiles with the measurement "Grad-CAM mean"
    for a SOURCE folder of patch images (PNG, JPEG, TIFF):
      PATCH.gradcam.png     each patch | its heatmap overlay, side by side

    \b
    Examples:
      histo explain slide.svs --model pcam-mobilenetv2 --out why/
      histo explain slide.svs --model my-model --out why/ --max-tiles 16 --class tumour
      histo explain patches/ --model my-model --out why/ --device cuda
    """
    from napari_histo.pipeline.explain import class_index, explain_patches, explain_slide, patch_files
    from napari_histo.pipeline.model import resolve_model
    from napari_histo.pipeline.session import open_session

    model = resolve_model(model_dir, device)
    target = class_index(model, class_name)
    if source.is_dir():
        files = patch_files(source)
        model.network()  # fail now on a bad device or weights
        work = explain_patches(model, files, out_dir, target_class=target)
        result = run_with_bar(work, source.name, "patch")
        click.echo(f"{source.name}: {result['n_patches']} heatmaps written to {out_dir}")
        return
    model.network()
    with open_session(source, slide_mpp) as session:
        work = explain_slide(session, model, out_dir, max_tiles=max_tiles, target_class=target,
                             min_tissue=min_tissue)  # fmt: skip
        result = run_with_bar(work, source.name, "tile")
    click.echo(f"{source.name}: Grad-CAM of {result['n_tiles']} tiles written to {out_dir} "
               f"({result['overlay'].name}, {result['geojson'].name})")  # fmt: skip
