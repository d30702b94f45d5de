"""Does a slide look like a brightfield (H&E) scan?  A check on a low-resolution thumbnail.

Tiles, tissue masks and the models assume a brightfield slide: tissue stained
in colour on a bright background.  :func:`check_brightfield` looks at a small
thumbnail (about 512 px) and says, in words, when a slide does not look like
one — a fluorescence image (dark background, bright signal), a grayscale image
(no colour), a blank slide or a flat image — so the pipeline can warn once
before a long run gives meaningless results.  It is a warning, never an error:
the thresholds are loose so that real H&E and IHC slides (faint, pale, frozen
sections, pen marks) pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_histo.core._image import check_rgb, saturation_value

__all__ = ["BrightfieldCheck", "check_brightfield"]

# luminance (0-255) under which a pixel is dark background in a fluorescence image
_DARK = 60
# share of dark pixels from which the background is taken to be dark
_DARK_BACKGROUND = 0.5
# a pixel is "stained" (could be tissue) when its colour is this saturated, or this dark
_STAINED_SATURATION = 0.1
_STAINED_BELOW = 200
# a slide with fewer stained pixels than this share is blank
_BLANK = 0.002
# largest channel difference (0-255) of the 99.5th percentile pixel in a gray image
_GRAY_SPREAD = 6
# standard deviation (0-255) under which an image is one flat colour
_FLAT = 1.5


@dataclass(frozen=True)
class BrightfieldCheck:
    """What :func:`check_brightfield` found.

    Attributes
    ----------
    kind : str
        ``"brightfield"`` (looks fine), ``"fluorescence"``, ``"grayscale"``,
        ``"blank"`` or ``"flat"``.
    reason : str
        One sentence a user can read (empty for ``"brightfield"``).
    dark_fraction, stained_fraction : float
        Share of dark-background pixels and of stained (possible tissue) pixels.
    """

    kind: str
    reason: str = ""
    dark_fraction: float = 0.0
    stained_fraction: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "brightfield"


def check_brightfield(thumbnail: np.ndarray) -> BrightfieldCheck:
    """Whether a low-resolution RGB view of a slide looks like a brightfield (H&E) scan.

    Parameters
    ----------
    thumbnail : ndarray, uint8, shape (rows, cols, 3)
        The whole slide, small (a few hundred pixels a side is enough).

    Returns
    -------
    BrightfieldCheck
        ``ok`` when it looks like brightfield; otherwise ``kind`` and ``reason`` say why not.
    """
    rgb = check_rgb(thumbnail, name="thumbnail")
    sat, value = saturation_value(rgb)
    luminance = rgb.mean(axis=-1, dtype=np.float32)
    dark = float(np.mean(luminance < _DARK))
    stained = float(np.mean((sat >= _STAINED_SATURATION) & (value > 20) | (luminance < _STAINED_BELOW)))
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    if float(luminance.std()) < _FLAT:
        level = int(round(float(luminance.mean())))
        return BrightfieldCheck(
            "flat",
            f"the whole image is one flat colour (gray level {level}): there is no tissue to read",
            dark,
            stained,
        )
    if dark >= _DARK_BACKGROUND and float(np.median(luminance)) < _DARK:
        return BrightfieldCheck(
            "fluorescence",
            f"{dark:.0%} of it is dark background with bright signal: it looks like a fluorescence (or "
            "darkfield) image, not a brightfield H&E scan",
            dark,
            stained,
        )
    if stained < _BLANK:
        return BrightfieldCheck(
            "blank",
            f"it looks blank: only {stained:.2%} of it is stained (darker than {_STAINED_BELOW}/255 or "
            f"{_STAINED_SATURATION:.0%} saturated), so there is no tissue for a model to read",
            dark,
            stained,
        )
    if float(np.percentile(spread, 99.5)) <= _GRAY_SPREAD:
        return BrightfieldCheck(
            "grayscale",
            "it has no colour (grayscale), and H&E tissue detection and models need the stain colours",
            dark,
            stained,
        )
    return BrightfieldCheck("brightfield", "", dark, stained)
