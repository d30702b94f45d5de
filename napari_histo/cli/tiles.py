"""``histo tiles SLIDE``: patches at a chosen µm/px, in class folders, with tiles.csv and GeoJSON."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np

from napari_histo.cli._options import (
    BACKEND,
    BACKEND_HELP,
    FRACTION,
    MAGNIFICATION,
    MPP,
    OVERLAP_PX,
    TILE_PX,
    WORKERS,
    ExistingFile,
    SlideSource,
)
from napari_histo.cli._progress import run_with_bar
from napari_histo.cli._report import naming_folder
from napari_histo.core.memory import check_allocation
from napari_histo.core.tile_labels import TileLabelRule
from napari_histo.core.tiling import mpp_from_magnification
from napari_histo.core.tissue import TissueMethod
from napari_histo.io.files import source_name
from napari_histo.pipeline.session import open_session
from napari_histo.pipeline.tiles import export_slide_tiles

__all__ = ["tiles"]


@click.command()
@click.argument("slide", type=SlideSource())
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder (class sub-folders, tiles.csv, <slide>_tiles.geojson).",
)
@click.option("--mpp", "target_mpp", type=MPP, default=None, help="µm/px of the patches (0.5 ≈ 20×).")
@click.option(
    "--magnification", type=MAGNIFICATION, default=None, help="Instead of --mpp: 20 means 0.5 µm/px."
)
@click.option("--tile-px", type=TILE_PX, default=224, show_default=True, help="Patch edge in pixels.")
@click.option(
    "--overlap",
    "overlap_px",
    type=OVERLAP_PX,
    default=0,
    show_default=True,
    help="Overlap of neighbouring patches, in patch pixels.",
)
@click.option(
    "--min-tissue",
    type=FRACTION,
    default=0.5,
    show_default=True,
    help="Keep tiles with at least this tissue fraction (0 keeps all).",
)
@click.option(
    "--tissue-method",
    type=click.Choice([m.value for m in TissueMethod]),
    default="hsv",
    show_default=True,
    help="Tissue detector.",
)
@click.option(
    "--annotations",
    type=ExistingFile(),
    default=None,
    help="QuPath GeoJSON: keep only tiles in annotations, labelled by their class.",
)
@click.option(
    "--label-mode",
    type=click.Choice([m.value for m in TileLabelRule]),
    default="centre",
    show_default=True,
    help="Class of a tile: the region under its centre, or the majority.",
)
@click.option(
    "--slide-mpp",
    type=MPP,
    default=None,
    help="Level-0 µm/px of the slide, when its metadata has none (or is wrong).",
)
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--workers", type=WORKERS, default=4, show_default=True, help="Decoding threads.")
@click.option("--backend", type=BACKEND, default="auto", show_default=True, help=BACKEND_HELP)
@click.option(
    "--overwrite",
    is_flag=True,
    help="If --out holds patches of this slide cut with other settings, delete them and start afresh "
    "(without it such a re-run is refused).",
)
def tiles(
    slide: Path | str,
    out_dir: Path,
    target_mpp: float | None,
    magnification: float | None,
    tile_px: int,
    overlap_px: int,
    min_tissue: float,
    tissue_method: str,
    annotations: Path | None,
    label_mode: str,
    slide_mpp: float | None,
    image_format: str,
    workers: int,
    backend: str,
    overwrite: bool,
) -> None:
    """Cut SLIDE into patches of TILE_PX pixels at MPP µm/px, keeping tissue.

    \b
    Resumable: run the same command again and finished patches are skipped.
    The settings are kept in OUT/<slide>_tiles.settings.json; a re-run with other
    settings (--tile-px, --mpp, ...) is refused unless --overwrite.
    Examples:
      histo tiles slide.svs --mpp 0.5 --tile-px 224 --out patches/
      histo tiles slide.svs --mpp 0.5 --annotations slide.geojson --out train/
      histo tiles frozen.svs --slide-mpp 0.25 --mpp 1.0 --out patches/
    """
    if (target_mpp is None) == (magnification is None):
        raise click.UsageError("give exactly one of --mpp (e.g. --mpp 0.5) or --magnification (e.g. 20)")
    mpp = target_mpp if magnification is None else mpp_from_magnification(magnification)
    assert mpp is not None
    if overlap_px >= tile_px:
        raise click.BadParameter(f"--overlap {overlap_px} must be smaller than --tile-px {tile_px}")
    what = f"{workers} patches of {tile_px} x {tile_px} px at once"
    check_allocation(
        (workers + 2, tile_px, tile_px, 3), np.uint8, what, "use a smaller --tile-px or fewer --workers"
    )
    with (
        naming_folder(out_dir),
        open_session(slide, slide_mpp, on_error="raise", backend=backend.lower()) as session,
    ):
        _warn_if_upsampled(session.mpp, mpp)
        work = export_slide_tiles(
            session, out_dir, target_mpp=mpp, tile_px=tile_px, overlap_px=overlap_px,
            min_tissue=min_tissue, tissue_method=tissue_method, annotations=annotations,
            label_rule=label_mode, image_format=image_format, workers=workers, overwrite=overwrite,
        )  # fmt: skip
        click.echo(f"{source_name(slide)}: {next(work).stage} ({tile_px} px at {mpp:g} µm/px)")
        export = run_with_bar(work, "tiles", "tile")
    _summary(out_dir, export.labels, len(export.grid))


#: patches finer than the slide by more than this are mostly interpolation: said once
UPSAMPLING_WARN = 4.0


def _warn_if_upsampled(slide_mpp: float | None, target_mpp: float) -> None:
    if slide_mpp is not None and target_mpp * UPSAMPLING_WARN < slide_mpp:
        warnings.warn(
            f"--mpp {target_mpp:g} is {slide_mpp / target_mpp:,.0f} times finer than the slide's "
            f"{slide_mpp:g} µm/px: the patches are enlarged (interpolated), not more detailed; "
            f"--mpp {slide_mpp:.3g} or coarser gives real pixels",
            UserWarning,
            stacklevel=2,
        )


def _summary(out_dir: Path, labels: list[str] | None, count: int) -> None:
    if labels:
        names, counts = np.unique(labels, return_counts=True)
        click.echo("  " + ", ".join(f"{n}: {c:,}" for n, c in zip(names, counts)))
    click.echo(f"wrote {count:,} patches, tiles.csv and GeoJSON to {out_dir}")
