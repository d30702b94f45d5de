"""``histo cohort JOB SOURCE``: one slide job over a cohort on Dask (local, a scheduler, SLURM/PBS/LSF)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from napari_histo.cli._options import BACKEND, BATCH_SIZE, DEVICE, FRACTION, MPP, TILE_PX, WORKERS
from napari_histo.cli._progress import run_with_bar
from napari_histo.cli._report import EXIT_INPUT, naming_folder

__all__ = ["cohort"]

#: napari_histo.pipeline.cohort.JOBS (not imported, so that --help starts fast)
JOB_CHOICES = ("predict", "tiles", "stain", "info", "embed")
GPUS = click.IntRange(0, 64)
RETRIES = click.IntRange(0, 100)


def _key_value(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs as a dict; values read as int, float, bool or JSON list when they look like one."""
    import json

    options: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value such as cores=8 or memory=32GB, got {text!r}")
        value: Any = raw.strip()
        try:
            value = json.loads(value)
        except ValueError:
            pass
        options[key.strip().replace("-", "_")] = value
    return options


# fmt: off
@click.command()
@click.argument("job", type=click.Choice(JOB_CHOICES))
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: the job's outputs per slide, cohort.csv and cohort.md.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A running Dask scheduler, e.g. tcp://host:8786 (default: a local cluster).")
@click.option("--workers", "n_workers", type=WORKERS, default=None,
              help="Local worker processes (default: a quarter of the CPUs), or jobs with --jobqueue.")
@click.option("--gpus", type=GPUS, default=0, show_default=True,
              help="GPUs: one local worker per GPU; each slide task holds one.")
@click.option("--jobqueue", type=click.Choice(["slurm", "pbs", "lsf"]), default=None,
              help="Start the workers as batch jobs through dask-jobqueue.")
@click.option("--jobqueue-option", "jobqueue_options", multiple=True, callback=_key_value,
              metavar="KEY=VALUE",
              help="A dask-jobqueue cluster setting, repeatable: cores=8, memory=32GB, queue=gpu, ...")
@click.option("--retries", type=RETRIES, default=2, show_default=True, help="Retries of a failed slide task.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True,
              help="Serve the Dask dashboard of a local cluster (port 8787, or a free one).")
@click.option("--serial", is_flag=True, help="No Dask: run the slides one after another in this process.")
@click.option("--model", default=None, help="predict: model directory or built-in model name.")
@click.option("--encoder", default="pcam-mobilenetv2", show_default=True,
              help="embed: the tile encoder (see histo embed --help).")
@click.option("--architecture", default=None, help="embed: the timm architecture of a weight file --encoder.")
@click.option("--mpp", type=MPP, default=None,
              help="tiles: µm/px of the patches (0.5 ≈ 20×); embed: default the encoder's.")
@click.option("--tile-px", type=TILE_PX, default=224, show_default=True, help="tiles: patch edge in pixels.")
@click.option("--min-tissue", type=FRACTION, default=0.5, show_default=True,
              help="predict, tiles: least tissue fraction per tile.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="tiles: patch file format.")
@click.option("--stain-method", type=click.Choice(["macenko", "vahadane"]), default="macenko",
              show_default=True, help="stain: the method fitted on each slide.")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="predict: auto | cpu | cuda | mps")
@click.option("--batch-size", type=BATCH_SIZE, default=128, show_default=True,
              help="predict: tiles per batch.")
@click.option("--threads", type=WORKERS, default=4, show_default=True,
              help="Tile-decoding threads inside each slide task.")
@click.option("--slide-mpp", type=MPP, default=None,
              help="Level-0 µm/px for slides whose file lacks it (a manifest's mpp column wins).")
@click.option("--overwrite", is_flag=True, help="Redo slides whose outputs were made with other settings.")
@click.option("--backend", type=BACKEND, default="auto", show_default=True,
              help="predict: what reads each slide (auto picks by content; see histo info --help).")
@click.option("--ome-zarr", "ome_zarr", is_flag=True,
              help="predict: also write NAME.ome.zarr (OME-NGFF 0.4) for QuPath 0.6+ and napari-ome-zarr.")
def cohort(
    job: str, source: str, out_dir: Path, scheduler: str | None, n_workers: int | None, gpus: int,
    jobqueue: str | None, jobqueue_options: dict[str, Any], retries: int, dashboard: bool, serial: bool,
    model: str | None, mpp: float | None, tile_px: int, min_tissue: float, image_format: str,
    stain_method: str, device: str, batch_size: int, threads: int, slide_mpp: float | None, overwrite: bool,
    backend: str, ome_zarr: bool, encoder: str, architecture: str | None,
) -> None:
    # fmt: on
    """Run JOB (predict, tiles, stain, info, embed) on every slide of SOURCE, one Dask task per slide.

    \b
    SOURCE is a folder of slides, a quoted pattern ('cohort/*.svs') or a CSV
    manifest with a 'slide' column and optional 'mpp', 'label', 'patient'.
    Each slide task opens its slide itself, writes its outputs atomically and
    skips finished ones, so a rerun does only the failed and missing slides.
    A damaged slide is reported in OUT/cohort.csv and OUT/cohort.md with its
    error, and the cohort goes on; a task whose worker dies is run again.

    \b
    Examples:
      histo cohort predict cohort/ --model pcam-mobilenetv2 --out results/
      histo cohort tiles 'cohort/*.svs' --mpp 0.5 --tile-px 224 --out patches/ --workers 8
      histo cohort predict manifest.csv --model m --out r/ --gpus 4 --device cuda
      histo cohort info cohort/ --out info/ --scheduler tcp://head-node:8786
      histo cohort embed cohort/ --encoder pcam-mobilenetv2 --out embeddings/
      histo cohort predict cohort/ --model m --out r/ --jobqueue slurm --workers 10 \\
          --jobqueue-option cores=8 --jobqueue-option memory=32GB --jobqueue-option walltime=04:00:00
    """
    if job == "predict" and model is None:
        raise click.UsageError("histo cohort predict needs --model (a model directory or a built-in name)")
    if job == "tiles" and mpp is None:
        raise click.UsageError("histo cohort tiles needs --mpp, the µm/px of the patches (e.g. --mpp 0.5)")
    if jobqueue_options and jobqueue is None:
        raise click.UsageError("--jobqueue-option needs --jobqueue slurm, pbs or lsf")
    if serial and (scheduler or jobqueue or gpus):
        raise click.UsageError("--serial runs without Dask: drop --scheduler, --jobqueue and --gpus")
    from napari_histo.pipeline.cohort import make_client, read_cohort, run_cohort

    slides = read_cohort(source)
    options: dict[str, Any] = {
        "slide_mpp": slide_mpp, "overwrite": overwrite, "workers": threads, "min_tissue": min_tissue,
        "gpus": gpus, "ome_zarr": ome_zarr, "backend": backend.lower(),
    }  # fmt: skip
    if job == "predict":
        options.update(model=model, device=device, batch_size=batch_size)
        from napari_histo.pipeline.model import resolve_model

        resolve_model(model or "", device)  # a wrong model name fails here, not once per slide
    elif job == "tiles":
        options.update(mpp=mpp, tile_px=tile_px, format=image_format)
    elif job == "stain":
        options.update(method=stain_method)
    elif job == "embed":
        from napari_histo.models.encoders import load_encoder

        given_px = click.get_current_context().get_parameter_source("tile_px")
        options.update(encoder=encoder, architecture=architecture, mpp=mpp, device=device,
                       batch_size=batch_size,
                       tile_px=tile_px if given_px is click.core.ParameterSource.COMMANDLINE else None)
        load_encoder(encoder, "cpu", architecture=architecture)  # a wrong encoder fails here, not per slide
    client = cluster = None
    if not serial:
        client, cluster = make_client(scheduler, workers=n_workers, gpus=gpus, jobqueue=jobqueue,
                                      jobqueue_kwargs=jobqueue_options, dashboard=dashboard)  # fmt: skip
        if dashboard or scheduler:
            click.echo(f"Dask dashboard: {client.dashboard_link}")
        click.echo(f"Dask workers: {len(client.scheduler_info()['workers'])} (more may still be starting)")
    click.echo(f"{job}: {len(slides):,} slides -> {out_dir}")
    start = time.perf_counter()
    try:
        with naming_folder(out_dir):
            work = run_cohort(job, slides, out_dir, options, client=client, retries=retries, gpu=gpus > 0)
            outcomes = run_with_bar(work, "slides", "slide")
    finally:
        _shut_down(client, cluster)
    elapsed = time.perf_counter() - start
    for outcome in outcomes:
        if outcome.status == "failed":
            named = Path(outcome.slide).name in outcome.error
            click.echo(f"failed: {outcome.error if named else f'{outcome.slide}: {outcome.error}'}", err=True)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    rate = len(outcomes) / elapsed if elapsed > 0 else 0.0
    click.echo(f"{len(outcomes):,} slides: {counts['done']:,} done, {counts['skipped']:,} skipped, "
               f"{counts['failed']:,} failed in {elapsed:.1f} s ({rate:.2f} slides/s); "
               f"report: {out_dir / 'cohort.md'}")  # fmt: skip
    if counts["failed"]:
        raise SystemExit(EXIT_INPUT)  # some slides could not be processed (listed above)


def _shut_down(client: Any, cluster: Any) -> None:
    """Close the client and the cluster we started, without distributed's shutdown chatter (heartbeats)."""
    import logging

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    finally:
        quiet.setLevel(level)
