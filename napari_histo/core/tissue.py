"""Tissue detection: which pixels of an H&E image are tissue.

Two methods, both on HSV as the literature does it (saturation > 0.07 and
value < 0.8 to keep stained tissue; Otsu on saturation as the adaptive
variant), followed by the same clean-up:

1. drop pen ink (green and blue by hue, red by RGB rules) and black artefacts,
2. close small gaps, remove specks smaller than ``min_area_px``, fill small holes.

Holes are filled only up to a physical size (``max_hole_um2``, µm²) when the
image's µm/px is given: nuclei and small lumens are tissue, a large white
cleft or lumen enclosed by tissue stays background whatever the resolution.

Run it on a low-resolution view of the slide (a few µm/px), not on level 0:
:func:`napari_histo.pipeline.tissue.slide_tissue_mask` picks the level (and
passes its µm/px) for you.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import ndimage
from skimage import filters, morphology

from napari_histo.core._image import check_rgb, hue_between_green_and_blue, saturation_value
from napari_histo.errors import InvalidParameterError

__all__ = ["TissueConfig", "TissueMethod", "detect_pen", "detect_tissue", "tissue_fraction"]


class TissueMethod(str, Enum):
    """How tissue is told from background."""

    #: fixed thresholds: saturation > ``min_saturation`` and value < ``max_value``
    HSV = "hsv"
    #: Otsu's threshold on saturation (never below ``min_saturation``) and value < ``max_value``
    OTSU = "otsu"
    #: fluorescence: bright signal (any channel) above Otsu's threshold on a dark background,
    #: blurred so that separate nuclei join into tissue
    FLUORESCENCE = "fluorescence"


@dataclass(frozen=True)
class TissueConfig:
    """Thresholds and clean-up of :func:`detect_tissue` (HSV values in [0, 1]).

    Attributes
    ----------
    min_saturation : float
        Pixels greyer than this are background (literature: 0.07).
    max_value : float
        Pixels brighter than this are background (literature: 0.8; 0.9 keeps pale
        stroma, measured on the real tiles in the tests).
    min_value : float
        Pixels darker than this are black artefacts (dust, folds, marker).
    blur_sigma_px : float
        Gaussian blur before thresholding, in pixels (0: none).
    reject_pen : bool
        Drop red, green and blue ink.
    min_area_px : int
        Connected tissue regions smaller than this (pixels) are removed.
    max_hole_px : int
        Holes smaller than this (pixels) inside tissue are filled, when the image's
        µm/px is not known (``detect_tissue(..., mpp=None)``).
    max_hole_um2 : float
        Holes smaller than this (µm²) inside tissue are filled when the image's µm/px
        is known; larger ones (white clefts, big lumens) stay background (0: fill
        none).  The default, 2,000 µm² (a disc about 50 µm across), fills nuclei,
        capillaries and small lumens; the ~15,000 µm² cleft of CMU-1 stays background.
    closing_radius_px : int
        Radius of the morphological closing that joins nearby tissue (0: none).
    """

    min_saturation: float = 0.07
    max_value: float = 0.9
    min_value: float = 0.15
    blur_sigma_px: float = 1.0
    reject_pen: bool = True
    min_area_px: int = 64
    max_hole_px: int = 256
    closing_radius_px: int = 2
    max_hole_um2: float = 2000.0

    def __post_init__(self) -> None:
        for name in ("min_saturation", "max_value", "min_value"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"{name} must be in [0, 1] (HSV units), got {value!r}")
        if self.min_value >= self.max_value:
            raise InvalidParameterError(
                f"min_value ({self.min_value}) must be below max_value ({self.max_value}): "
                "nothing could be tissue"
            )
        for name in ("blur_sigma_px", "min_area_px", "max_hole_px", "closing_radius_px", "max_hole_um2"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)!r}")


# Red ink, as (red >, green <, blue <) rules, from deep-histopath's filter_red_pen
# (IBM, Apache-2.0), also used by histolab: eosin is pink, red ink is pure red.
_RED_PEN_RGB = (
    (150, 80, 90), (110, 20, 30), (185, 65, 105), (195, 85, 125), (220, 115, 145),
    (125, 40, 70), (200, 120, 150), (100, 50, 65), (85, 25, 45),
)  # fmt: skip


def detect_tissue(
    rgb: np.ndarray,
    method: TissueMethod | str = TissueMethod.HSV,
    config: TissueConfig | None = None,
    *,
    mpp: float | None = None,
) -> np.ndarray:
    """Boolean tissue mask of an RGB H&E image.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (rows, cols, 3)
        A tile or a low-resolution view of a slide.  Not modified.
    method : TissueMethod or {"hsv", "otsu", "fluorescence"}
    config : TissueConfig, optional
        Thresholds and clean-up; the defaults suit 0.5-16 µm/px views.
    mpp : float, optional
        µm per pixel of ``rgb``.  Given, holes up to ``config.max_hole_um2`` µm² are
        filled; without it, holes up to ``config.max_hole_px`` pixels (as before).

    Returns
    -------
    ndarray, bool, shape (rows, cols)
        True where there is tissue.

    Raises
    ------
    InvalidImageError
        For grayscale, RGBA, non-uint8 or empty input.
    InvalidParameterError
        For a µm/px that is not a positive number.
    """
    rgb = check_rgb(rgb, name="tissue image")
    method = TissueMethod(method)
    config = config or TissueConfig()
    max_hole_px = _max_hole_px(config, mpp)
    if method is TissueMethod.FLUORESCENCE:
        if config.blur_sigma_px > 0:
            sigma = (config.blur_sigma_px, config.blur_sigma_px, 0)
            rgb = ndimage.gaussian_filter(rgb, sigma=sigma, mode="nearest")
        return _clean(_fluorescent_signal(rgb), config, max_hole_px)
    return _clean(_brightfield_mask(rgb, method, config), config, max_hole_px)


#: rows of the image thresholded at a time: a whole-slide view (6,250² at 8 µm/px of a 100,000²
#: slide) then needs a few strips' worth of float intermediates, not a few copies of the view
_STRIP_ROWS = 512


def _brightfield_mask(rgb: np.ndarray, method: TissueMethod, config: TissueConfig) -> np.ndarray:
    """The thresholded mask before clean-up, computed strip by strip with identical results.

    Each strip is read with a margin of the blur's reach plus one row (the pen mask's dilation), so
    the blurred pixels and the dilated ink of the strip's own rows are those of the whole image.
    """
    rows = rgb.shape[0]
    blur = config.blur_sigma_px
    margin = (int(4.0 * blur + 0.5) if blur > 0 else 0) + 1  # scipy's kernel radius (truncate = 4) + 1

    def strips() -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, rows, _STRIP_ROWS):
            stop = min(rows, start + _STRIP_ROWS)
            lo, hi = max(0, start - margin), min(rows, stop + margin)
            strip = rgb[lo:hi]
            if blur > 0:
                strip = ndimage.gaussian_filter(strip, sigma=(blur, blur, 0), mode="nearest")
            sat, value = saturation_value(strip)  # value as uint8, 0-255
            yield start - lo, stop - lo, strip, sat, value

    min_sat = config.min_saturation
    if method is TissueMethod.OTSU:
        sat_all = np.empty(rgb.shape[:2], np.float32)
        for (a, b, _, sat, _), start in zip(strips(), range(0, rows, _STRIP_ROWS)):
            sat_all[start : start + b - a] = sat[a:b]
        min_sat = max(min_sat, _otsu(sat_all))
        del sat_all
    mask = np.empty(rgb.shape[:2], bool)
    for (a, b, strip, sat, value), start in zip(strips(), range(0, rows, _STRIP_ROWS)):
        part = (sat > min_sat) & (value < config.max_value * 255) & (value > config.min_value * 255)
        if config.reject_pen:
            part &= ~_pen_mask(strip, sat, config.min_saturation)
        mask[start : start + b - a] = part[a:b]
    return mask


def detect_pen(rgb: np.ndarray, min_saturation: float = 0.07) -> np.ndarray:
    """Boolean mask of red, green and blue ink on an RGB uint8 image (rows, cols, 3)."""
    rgb = check_rgb(rgb, name="pen image")
    sat, _ = saturation_value(rgb)
    return _pen_mask(rgb, sat, min_saturation)


def tissue_fraction(mask: np.ndarray) -> float:
    """Fraction of True pixels in a boolean mask, in [0, 1]."""
    mask = np.asarray(mask, dtype=bool)
    return float(mask.mean()) if mask.size else 0.0


def _pen_mask(rgb: np.ndarray, sat: np.ndarray, min_saturation: float) -> np.ndarray:
    ink = hue_between_green_and_blue(rgb) & (sat > min_saturation)
    ink |= _red_ink(rgb)
    # ink strokes have soft, anti-aliased edges: widen by one pixel
    return _dilate_cross(ink)


def _dilate_cross(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by the 4-connected cross (as ``ndimage.binary_dilation``), by shifted ORs."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _red_ink(rgb: np.ndarray) -> np.ndarray:
    rules = np.array(_RED_PEN_RGB)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # only pixels that pass the loosest rule can pass any: test the rules on those alone
    candidates = np.flatnonzero((r > rules[:, 0].min()) & (g < rules[:, 1].max()) & (b < rules[:, 2].max()))
    rc, gc, bc = r.ravel()[candidates], g.ravel()[candidates], b.ravel()[candidates]
    hit = np.zeros(candidates.size, bool)
    for r_min, g_max, b_max in rules:
        hit |= (rc > r_min) & (gc < g_max) & (bc < b_max)
    red = np.zeros(r.size, bool)
    red[candidates[hit]] = True
    return red.reshape(r.shape)


def _fluorescent_signal(rgb: np.ndarray, join_sigma_px: float = 3.0, floor: float = 4.0) -> np.ndarray:
    """Tissue of a fluorescence image: the brightest channel, blurred so that separate nuclei merge,
    above the triangle threshold (made for one dominant dark background peak) and ``floor``.

    On the DAPI NDPI in ../shared at 8 µm/px, Otsu keeps only the dense nuclei (59 %
    of the image); the triangle threshold keeps the whole section (88 %).
    """
    signal = ndimage.gaussian_filter(rgb.max(axis=-1).astype(np.float32), join_sigma_px, mode="nearest")
    if float(signal.max()) - float(signal.min()) < 1e-6:
        return np.zeros(signal.shape, bool)
    return signal > max(floor, float(filters.threshold_triangle(signal)))


def _otsu(values: np.ndarray) -> float:
    if float(values.max()) - float(values.min()) < 1e-6:
        return 1.0  # a flat image has no foreground
    return float(filters.threshold_otsu(values))


def _max_hole_px(config: TissueConfig, mpp: float | None) -> float:
    """Largest hole filled, in pixels: ``max_hole_um2`` at ``mpp`` µm/px, else ``max_hole_px``."""
    if mpp is None:
        return float(config.max_hole_px)
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"mpp is the image's micrometres per pixel (e.g. 8.0), got {mpp!r}")
    return config.max_hole_um2 / value**2


def _clean(mask: np.ndarray, config: TissueConfig, max_hole_px: float) -> np.ndarray:
    if config.closing_radius_px > 0:
        r = config.closing_radius_px
        padded = np.pad(mask, r, mode="edge")  # no erosion from the image border
        mask = ndimage.binary_closing(padded, structure=morphology.disk(r))[r:-r, r:-r]
    if config.min_area_px > 0:
        mask = _drop_small(mask, config.min_area_px)
    if max_hole_px > 0:
        # only holes smaller than max_hole_px: a large white cleft inside tissue is not tissue
        mask = ~_drop_small(~mask, max_hole_px)
    return mask


def _drop_small(mask: np.ndarray, min_area_px: float) -> np.ndarray:
    """``mask`` without 8-connected regions smaller than ``min_area_px`` pixels."""
    labels = np.empty(mask.shape, np.int32)
    count = ndimage.label(mask, structure=np.ones((3, 3), bool), output=labels)
    if count == 0:
        return mask
    # by strips: bincount and keep[labels] of the whole image would each make an int64 copy of labels
    strips = [labels[start : start + _STRIP_ROWS] for start in range(0, mask.shape[0], _STRIP_ROWS)]
    areas = np.zeros(count + 1, np.int64)
    for strip in strips:
        areas += np.bincount(strip.ravel(), minlength=count + 1)
    keep = areas >= min_area_px
    keep[0] = False
    return np.concatenate([keep[strip] for strip in strips])
