"""Stain normalisation of slides: fit once on a slide's tissue, apply to every tile (CPU or GPU)."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.stain import StainMethod, StainParams, fit_stain, normalize_stain
from napari_histo.core.tissue import TissueMethod, detect_tissue
from napari_histo.errors import InvalidParameterError
from napari_histo.io import open_slide
from napari_histo.io.regions import read_slide_view
from napari_histo.io.stain_json import load_stain_params
from napari_histo.pipeline.session import SlideSession

__all__ = ["DEFAULT_FIT_MPP", "fit_stain_on_slide", "normalize_to_reference", "stain_normalizer"]

#: µm/px of the view a slide's stain is fitted on (fine enough to resolve nuclei)
DEFAULT_FIT_MPP = 2.0


def fit_stain_on_slide(
    session: SlideSession,
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
    rows, cols = session.slide.dimensions
    wanted = fit_mpp / session.mpp if session.mpp else max(rows, cols) / 2048
    pixels, _, _ = read_slide_view(session.slide, max(wanted, max(rows, cols) / max_px))
    return fit_stain(pixels, method, mask=detect_tissue(pixels, tissue_method))


def stain_normalizer(
    method: str | None, reference: str | os.PathLike[str] | None, device: str = "auto"
) -> Any:
    """A batched torch normaliser fitted on the ``reference`` image, or ``None`` without a ``method``.

    The reference is read whole at its smallest stored level (bounded memory).
    """
    if method is None:
        return None
    if reference is None:
        raise InvalidParameterError(
            f"stain normalisation ({method}) needs a reference image: --stain-ref IMAGE, the image whose "
            "colours the patches are mapped to"
        )
    from napari_histo.models.loading import resolve_device
    from napari_histo.models.stain_torch import TorchStainNormalizer

    with open_slide(reference) as ref:
        rows, cols = ref.level_info[-1].shape[:2]
        pixels = ref.read_region((0, 0), ref.level_count - 1, (rows, cols))
    return TorchStainNormalizer(method, device=str(resolve_device(device))).fit(pixels[..., :3])


def normalize_to_reference(
    pixels: np.ndarray,
    method: StainMethod | str = StainMethod.MACENKO,
    *,
    reference: np.ndarray | None = None,
    params_file: str | os.PathLike[str] | None = None,
) -> Generator[Progress, None, tuple[np.ndarray, StainParams]]:
    """Map ``pixels`` to the stain of a reference image (fitted here) or of a saved reference JSON.

    Yields two steps (fitted, normalised); returns the normalised uint8 pixels and the target.
    """
    if params_file is not None:
        target = load_stain_params(params_file)
    elif reference is not None:
        target = fit_stain(reference, method)
    else:
        raise InvalidParameterError("choose a reference: an image (or region) to fit, or a saved stain JSON")
    yield Progress(1, 2, "fitted the reference")
    out = normalize_stain(pixels, target)
    yield Progress(2, 2, "normalised")
    return out, target
