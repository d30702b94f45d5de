"""Tissue masks and tile grids of a slide session: which patches of a slide hold tissue.

The arithmetic lives in :mod:`napari_histo.core` (tissue, tiling) and the
pixels come from :mod:`napari_histo.io.regions`; this module decides which
pyramid level a mask is computed from and which µm/px the grid uses — the
session's, so a µm/px given by the user reaches every step.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.tiling import TileGrid, plan_tile_grid, select_tiles, tile_mask_fraction
from napari_histo.core.tissue import TissueConfig, TissueMethod, detect_tissue
from napari_histo.errors import InvalidParameterError, NoTissueError
from napari_histo.io.regions import read_slide_view
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.session import SlideSession

__all__ = [
    "DEFAULT_MASK_MPP",
    "SlideTissueMask",
    "TissueGrid",
    "check_fraction",
    "model_tissue_grid",
    "plan_grid",
    "slide_tissue_mask",
    "tissue_grid",
    "tissue_tiles",
]

#: µm/px of tissue masks: the ~32x level of a 40x scan, as most pipelines use
DEFAULT_MASK_MPP = 8.0
#: longer side of the thumbnail that tells brightfield from fluorescence (check_brightfield)
_BRIGHTFIELD_CHECK_PX = 1024
_MASK_PX_WITHOUT_MPP = 2048


@dataclass(frozen=True)
class SlideTissueMask:
    """A low-resolution tissue mask of a whole slide.

    Attributes
    ----------
    mask : ndarray, bool, shape (rows, cols)
    downsample_rc : (float, float)
        Level-0 pixels per mask pixel along rows and cols.
    level : int
        Pyramid level the mask was computed from.
    method : str
        The detector used: the one asked for, or ``"fluorescence"`` when a
        brightfield detector was asked for a slide that looks like fluorescence.
    note : str
        Why the detector was switched (empty when it was not), for the user.
    """

    mask: np.ndarray
    downsample_rc: tuple[float, float]
    level: int
    method: str = TissueMethod.HSV.value
    note: str = ""


@dataclass(frozen=True)
class TissueGrid:
    """What :func:`tissue_grid` returns: the mask, the kept tiles and their tissue fractions."""

    mask: SlideTissueMask
    grid: TileGrid
    fractions: np.ndarray
    total: int  # tiles in the grid before the tissue filter


def slide_tissue_mask(
    session: SlideSession,
    method: TissueMethod | str = TissueMethod.HSV,
    config: TissueConfig | None = None,
    *,
    mask_mpp: float = DEFAULT_MASK_MPP,
    max_px: int = 8192,
) -> SlideTissueMask:
    """Detect tissue on a low-resolution view of the slide (about ``mask_mpp`` µm/px).

    Without µm/px the mask is about 2048 px wide.  The longer side stays within
    ``max_px`` unless no level is that small.  With µm/px, holes are filled up to
    ``config.max_hole_um2`` µm² (a large white cleft inside tissue stays background);
    without, up to ``config.max_hole_px`` mask pixels.

    A brightfield detector (``hsv``, ``otsu``) on a slide that looks like
    fluorescence (dark background, :func:`~napari_histo.core.brightfield.check_brightfield`)
    would find no tissue; the ``fluorescence`` detector is used instead, and the
    mask's ``note`` says so.
    """
    from napari_histo.core.brightfield import check_brightfield

    rows, cols = session.slide.dimensions
    wanted = mask_mpp / session.mpp if session.mpp else max(rows, cols) / _MASK_PX_WITHOUT_MPP
    pixels, downsample_rc, level = read_slide_view(session.slide, max(wanted, max(rows, cols) / max_px))
    # µm/px of the mask pixels (the geometric mean keeps their area right if rows and cols differ)
    mpp = session.mpp * (downsample_rc[0] * downsample_rc[1]) ** 0.5 if session.mpp else None
    method, note = TissueMethod(method), ""
    step = max(1, max(pixels.shape[:2]) // _BRIGHTFIELD_CHECK_PX)  # the check needs a thumbnail, not the view
    seen = check_brightfield(pixels[::step, ::step])
    if method is not TissueMethod.FLUORESCENCE and seen.kind == "fluorescence":
        method = TissueMethod.FLUORESCENCE
        note = (
            f"{session.name} looks like a fluorescence image ({seen.dark_fraction:.0%} dark background): "
            "tissue was detected as bright signal on the dark background; H&E models mean nothing on it"
        )
    mask = detect_tissue(pixels, method, config, mpp=mpp)
    return SlideTissueMask(mask, downsample_rc, level, method.value, note)


def plan_grid(session: SlideSession, target_mpp: float, tile_px: int, overlap_px: int = 0) -> TileGrid:
    """All whole tiles of the slide at ``target_mpp`` (:func:`~napari_histo.core.tiling.plan_tile_grid`)."""
    slide = session.slide
    mpp = session.require_mpp(f"tiles of {target_mpp:g} µm/px")
    return plan_tile_grid(slide.dimensions, mpp, target_mpp, tile_px, overlap_px, slide.level_downsamples)


def check_fraction(value: float, name: str = "min_tissue") -> float:
    """``value`` if it is a fraction in [0, 1], else an error naming ``name``."""
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidParameterError(f"{name} is a fraction in [0, 1] (e.g. 0.5), got {value!r}")
    return float(value)


def tissue_tiles(grid: TileGrid, mask: SlideTissueMask, min_tissue: float) -> tuple[TileGrid, np.ndarray]:
    """The tiles whose tissue fraction is at least ``min_tissue``, and those fractions (float32)."""
    check_fraction(min_tissue)
    fractions = tile_mask_fraction(grid, mask.mask, mask.downsample_rc)
    keep = fractions >= min_tissue if min_tissue > 0 else np.ones(len(grid), bool)
    return select_tiles(grid, keep), fractions[keep]


def tissue_grid(
    session: SlideSession,
    *,
    target_mpp: float,
    tile_px: int,
    overlap_px: int = 0,
    min_tissue: float = 0.5,
    method: TissueMethod | str = TissueMethod.HSV,
    config: TissueConfig | None = None,
) -> Generator[Progress, None, TissueGrid]:
    """Detect tissue, plan the grid, keep tissue tiles; yields three steps, returns :class:`TissueGrid`."""
    check_fraction(min_tissue)
    grid = plan_grid(session, target_mpp, tile_px, overlap_px)
    yield Progress(1, 3, "planned the grid")
    mask = slide_tissue_mask(session, method, config)
    yield Progress(2, 3, "detected tissue")
    kept, fractions = tissue_tiles(grid, mask, min_tissue)
    yield Progress(3, 3, "kept tissue tiles")
    return TissueGrid(mask, kept, fractions, len(grid))


def model_tissue_grid(
    session: SlideSession, model: ModelHandle, min_tissue: float = 0.5
) -> tuple[TileGrid, np.ndarray]:
    """The tissue tiles a model reads (its patch size at its µm/px) and their tissue fractions.

    The slide's tile cache grows to two tile rows of the level read, so each
    compressed tile is decoded once however patches and file tiles align.

    Raises
    ------
    NoTissueError
        When no tile reaches ``min_tissue``, or the slide is smaller than one patch.
    """
    spec = model.spec
    grid = plan_grid(session, spec.spacing_um_px, spec.patch_size_pixels)
    if len(grid) == 0:
        raise NoTissueError(_smaller_than_a_tile(session, grid))
    session.slide.reserve_tile_rows(grid.level)
    kept, fractions = tissue_tiles(grid, slide_tissue_mask(session), min_tissue)
    if len(kept) == 0:
        raise NoTissueError(
            f"{session.name}: no tile of {spec.patch_size_pixels} px at {spec.spacing_um_px:g} µm/px has at "
            f"least {min_tissue:.0%} tissue. The slide may be blank or the tissue faint; lower the minimum "
            "tissue fraction (--min-tissue 0.1, or 'min tissue' in the dock) or check the slide."
        )
    return kept, fractions


def _smaller_than_a_tile(session: SlideSession, grid: TileGrid) -> str:
    rows, cols = session.slide.dimensions
    return (
        f"{session.name} is {cols:,} x {rows:,} px, smaller than one tile of {grid.tile_px} px at "
        f"{grid.target_mpp:g} µm/px ({grid.tile_px_level0:,.0f} level-0 px at {grid.slide_mpp:g} µm/px); "
        "check the slide's µm/px (--slide-mpp) or use a model with smaller patches"
    )
