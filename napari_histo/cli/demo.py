"""``histo demo``: the whole journey on real tissue (CMU-1-Small-Region) or the synthetic slide.

Slide → tissue and tiles → stain normalisation → the shipped default model →
QuPath GeoJSON.  Headless (no display) it writes every output and one PNG per
step to ``--out``; with a display it then opens the results in napari.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from napari_histo.cli._options import DEVICE, ExistingFile
from napari_histo.pipeline.model import DEFAULT_MODEL

__all__ = ["demo"]


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("histo-demo"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="A model directory or the name of a built-in model.",
)
@click.option(
    "--slide",
    type=ExistingFile(),
    default=None,
    help="Run on this slide instead of a sample.",
)
@click.option(
    "--sample",
    type=click.Choice(["cmu-1", "synthetic"]),
    default="cmu-1",
    show_default=True,
    help="cmu-1: real H&E (OpenSlide's CMU-1-Small-Region, CC0, 1.9 MB, fetched once); "
    "synthetic: an H&E-like slide made offline.",
)
@click.option(
    "--device", type=DEVICE, default="auto", show_default=True, help="auto | cpu | cuda | cuda:N | mps"
)
@click.option(
    "--headless/--napari",
    default=None,
    help="Force files only, or the napari viewer. Default: napari if a display exists.",
)
def demo(out: Path, model: str, slide: Path | None, sample: str, device: str, headless: bool | None) -> None:
    """Run the pathologist's journey on a real H&E sample slide (fetched once, then offline).

    \b
    Writes to --out:
      step1-slide.png           the slide overview
      step2-tissue-tiles.png    tissue (green) and the model's tiles (yellow)
      step3-stain.png           a region before / after Macenko normalisation
      step4-predictions.png     the model's classes over the slide
      predictions/              NAME.zarr, NAME.geojson (QuPath), NAME.summary.json
      qupath-classes.json       the model's classes and colours for a QuPath project
      journey.json              what each step did
    With a display it then opens the slide, the predictions and the docks in napari.
    """
    from napari_histo.pipeline.journey import run_journey
    from napari_histo.pipeline.model import resolve_model
    from napari_histo.pipeline.slide_job import outputs_for

    resolve_model(model)  # a wrong --model fails now, not after the sample slide is made

    if slide is None:
        slide = _sample_slide(sample)
    started = time.perf_counter()
    run_journey(slide, model, out, device=device, say=click.echo)
    click.echo(f"\ndone in {time.perf_counter() - started:.1f} s; outputs in {out}/")
    if headless is None:
        headless = not _has_display()
    if headless:
        return
    try:
        from napari_histo._napari.journey_viewer import show_journey
    except ImportError:
        click.echo("napari is not installed: `pip install 'napari-histo[napari]'` to view the results.")
        return
    show_journey(slide, outputs_for(slide, out / "predictions")["zarr"], model)


def _sample_slide(sample: str) -> Path:
    """The sample's path, fetched or generated once into the cache; CMU-1 falls back to synthetic offline."""
    from napari_histo.data import cache_dir, samples
    from napari_histo.errors import DownloadError

    started = time.perf_counter()
    if sample == "cmu-1":
        click.echo(f"sample slide CMU-1-Small-Region (CC0; fetched once into {cache_dir()}) ...")
        try:
            path = samples.cmu_small_region_path()
        except DownloadError as exc:
            click.echo(f"warning: {exc}", err=True)
            click.echo("warning: CMU-1 could not be fetched; using the synthetic slide instead.", err=True)
            sample = "synthetic"
    if sample == "synthetic":
        click.echo(f"sample slide (synthetic H&E, generated once into {cache_dir()}) ...")
        path = samples.synthetic_slide_path()
    click.echo(f"  {path} ready in {time.perf_counter() - started:.1f} s")
    return path


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
