"""``histo embed``: tile embeddings of slides, one chunked zarr table per slide."""

from __future__ import annotations

from pathlib import Path

import click

from napari_histo.cli._options import (
    BACKEND,
    BACKEND_HELP,
    BATCH_SIZE,
    DEVICE,
    FRACTION,
    MPP,
    SHARD,
    TILE_PX,
    WORKERS,
    SlideSource,
)
from napari_histo.cli._progress import run_with_bar
from napari_histo.cli._report import naming_folder
from napari_histo.io.files import source_name

__all__ = ["embed"]

ENCODER_HELP = (
    "What embeds the tiles: a built-in model name or model directory (its backbone; default "
    "pcam-mobilenetv2, shipped, works offline), a foundation model (uni, uni2-h, virchow2, h-optimus-0, "
    "h-optimus-1, phikon-v2, "
    "prov-gigapath: from the Hugging Face hub, gated ones need your token), timm:NAME, hf-hub:ORG/NAME, or a "
    "local weight file with --architecture."
)


# fmt: off
@click.command()
@click.argument("slides", nargs=-1, required=True, type=SlideSource())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: NAME.embeddings.zarr per slide.")
@click.option("--encoder", default="pcam-mobilenetv2", show_default=True, help=ENCODER_HELP)
@click.option("--architecture", default=None,
              help="The timm architecture of a local weight file given as --encoder.")
@click.option("--mpp", type=MPP, default=None, help="µm/px of the tiles (default: the encoder's).")
@click.option("--tile-px", type=TILE_PX, default=None, help="Tile edge in pixels (default: the encoder's).")
@click.option("--min-tissue", type=FRACTION, default=0.5, show_default=True,
              help="Least tissue fraction per tile (0 keeps every tile).")
@click.option("--batch-size", type=BATCH_SIZE, default=64, show_default=True, help="Tiles per forward pass.")
@click.option("--workers", type=WORKERS, default=4, show_default=True, help="Tile-decoding threads.")
@click.option("--device", type=DEVICE, default="auto", show_default=True,
              help="auto | cpu | cuda | cuda:N | mps")
@click.option("--slide-mpp", type=MPP, default=None, help="Level-0 µm/px if the file lacks it.")
@click.option("--format", "table_format", type=click.Choice(["zarr"]), default="zarr", show_default=True,
              help="Table format (a chunked zarr v2 group).")
@click.option("--shard", type=SHARD, default="0/1", show_default=True,
              help="i/n: every n-th slide from i (SLURM).")
@click.option("--overwrite", is_flag=True,
              help="Embed again slides whose table was made with other settings.")
@click.option("--backend", type=BACKEND, default="auto", show_default=True, help=BACKEND_HELP)
def embed(
    slides: tuple[Path | str, ...], out_dir: Path, encoder: str, architecture: str | None, mpp: float | None,
    tile_px: int | None, min_tissue: float, batch_size: int, workers: int, device: str,
    slide_mpp: float | None, table_format: str, shard: tuple[int, int], overwrite: bool, backend: str,
) -> None:
    # fmt: on
    """Embed every tissue tile of each slide with a tile encoder; per slide, in --out:

    \b
      NAME.embeddings.zarr   features (n, d) float16, coords (n, 2) level-0 (row, col),
                             tissue (n,) fractions; attrs: encoder, its hash, µm/px, tile size
    \b
    A killed run goes on where it stopped; a finished table is skipped, and one
    made with other settings is refused unless --overwrite.  Embeddings are the
    input of slide-level (MIL) models: see docs/embeddings.md.

    \b
    Examples:
      histo embed slide.svs --out embeddings/
      histo embed cohort/*.svs --out emb/ --encoder uni --device cuda --batch-size 256
      histo embed slide.svs --out emb/ --encoder timm:resnet50.a1_in1k --mpp 0.5 --tile-px 224
      histo embed slide.svs --out emb/ --encoder mobilenet_v2-b0353104.pth --architecture mobilenetv2_100 \\
          --mpp 0.5 --tile-px 224
      histo cohort embed cohort/ --out emb/ --encoder virchow2 --gpus 4 --device cuda
    """
    from napari_histo.models.encoders import load_encoder
    from napari_histo.pipeline.cohort import CohortSlide, slide_task

    index, count = shard
    chosen = list(slides)[index::count]
    loaded = load_encoder(encoder, device, architecture=architecture)  # fails now, not after a slide
    options = {
        "encoder": loaded, "mpp": mpp, "tile_px": tile_px, "min_tissue": min_tissue, "batch_size": batch_size,
        "workers": workers, "device": device, "slide_mpp": slide_mpp, "overwrite": overwrite,
        "backend": backend.lower(), "format": table_format,
    }  # fmt: skip
    for slide in chosen:
        with naming_folder(out_dir):
            task = slide_task("embed", CohortSlide(slide), out_dir, options, raise_errors=True)
            outcome = run_with_bar(task, source_name(slide), "tile")
        table = outcome.outputs.get("embeddings", "")
        if outcome.status == "skipped":
            click.echo(f"{source_name(slide)}: already embedded ({table}); delete it to run again")
        else:
            click.echo(f"{source_name(slide)}: {outcome.tiles:,} tiles embedded with {loaded.name} "
                       f"({loaded.feature_dim} features) -> {table}")  # fmt: skip
