"""Stain parameters of a whole slide (fitted once, on its tissue) and their JSON files."""

from __future__ import annotations

import os
from pathlib import Path

from napari_histo.core.stain import StainMethod, StainParams, fit_stain
from napari_histo.core.tissue import TissueMethod, detect_tissue
from napari_histo.io.patches import read_slide_view
from napari_histo.io.slide import Slide

__all__ = ["fit_stain_on_slide", "load_stain_params", "save_stain_params"]

#: µm/px of the view a slide's stain is fitted on (fine enough to resolve nuclei)
DEFAULT_FIT_MPP = 2.0


def fit_stain_on_slide(
    slide: Slide,
    method: StainMethod | str = StainMethod.MACENKO,
    *,
    fit_mpp: float = DEFAULT_FIT_MPP,
    max_px: int = 4096,
    tissue_method: TissueMethod | str = TissueMethod.HSV,
) -> StainParams:
    """Fit stain parameters on the tissue of a whole slide, once.

    Reads a view of about ``fit_mpp`` µm/px (longer side at most ``max_px``,
    or about 2048 px without µm/px), detects tissue on it and fits
    ``method`` on the tissue pixels only.  Pass the result as ``source=`` to
    :func:`~napari_histo.core.stain.normalize_stain` for every tile of the slide.

    Raises
    ------
    NoTissueError
        When the slide view has too few stained tissue pixels.
    """
    rows, cols = slide.dimensions
    wanted = fit_mpp / slide.mpp if slide.mpp else max(rows, cols) / 2048
    pixels, _, _ = read_slide_view(slide, max(wanted, max(rows, cols) / max_px))
    return fit_stain(pixels, method, mask=detect_tissue(pixels, tissue_method))


def save_stain_params(params: StainParams, path: str | os.PathLike[str]) -> Path:
    """Write fitted parameters as JSON (e.g. beside a model as its stain reference)."""
    path = Path(path)
    path.write_text(params.to_json() + "\n", encoding="utf-8")
    return path


def load_stain_params(path: str | os.PathLike[str]) -> StainParams:
    """Read parameters written by :func:`save_stain_params`; ``ValueError`` names a bad field."""
    path = Path(path)
    try:
        return StainParams.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not valid napari-histo stain parameters ({exc})") from exc
