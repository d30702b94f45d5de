"""Input checks and colour conversions shared by the tissue and stain modules.

Every public function of :mod:`napari_histo.core` that takes pixels takes
8-bit RGB; :func:`check_rgb` turns every other layout into one clear error
that names what was passed and how to convert it.
"""

from __future__ import annotations

import numpy as np

from napari_histo.errors import InvalidImageError

__all__ = ["check_rgb", "hue_between_green_and_blue", "saturation_value"]


def check_rgb(image: np.ndarray, *, name: str = "image", batch: bool = False) -> np.ndarray:
    """Return ``image`` as a uint8 RGB array, or raise :class:`InvalidImageError`.

    Parameters
    ----------
    image : array-like, shape (rows, cols, 3) or, with ``batch``, (n, rows, cols, 3); uint8
    name : str
        What to call the array in the error message.
    batch : bool
        Accept a stack of images; a single image also passes and gets a leading axis.

    Returns
    -------
    ndarray, uint8, (rows, cols, 3) or (n, rows, cols, 3)
        The input itself (no copy) when it already fits.
    """
    arr = np.asarray(image)
    shape = arr.shape
    if arr.ndim >= 2 and (arr.ndim == 2 or shape[-1] == 1):
        raise InvalidImageError(
            f"{name} is grayscale (shape {shape}); H&E methods need RGB colour. "
            "Pass the RGB image (rows, cols, 3), e.g. the slide level itself, not a converted channel."
        )
    if arr.ndim >= 3 and shape[-1] == 4:
        raise InvalidImageError(
            f"{name} is RGBA (shape {shape}); pass RGB: drop the alpha channel with image[..., :3]."
        )
    ok_ndim = (3, 4) if batch else (3,)
    if arr.ndim not in ok_ndim or shape[-1] != 3:
        expected = "(rows, cols, 3) or (n, rows, cols, 3)" if batch else "(rows, cols, 3)"
        raise InvalidImageError(f"{name} has shape {shape}; expected an RGB image {expected}.")
    if arr.dtype != np.uint8:
        hint = (
            "convert with skimage.util.img_as_ubyte(image)"
            if arr.dtype.kind in "uif"
            else "pass uint8 pixel values 0-255"
        )
        raise InvalidImageError(f"{name} has dtype {arr.dtype}; 8-bit RGB (uint8) is needed: {hint}.")
    if arr.size == 0:
        raise InvalidImageError(f"{name} is empty (shape {shape}).")
    if batch and arr.ndim == 3:
        arr = arr[None]
    return arr


def saturation_value(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HSV saturation (float32 in [0, 1]) and value (uint8 0-255, i.e. value * 255) of uint8 RGB.

    The same definitions as :func:`skimage.color.rgb2hsv`, without its float64
    (rows, cols, 3) intermediates, so whole-slide thumbnails convert quickly.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # numpy reduces a length-3 last axis slowly
    vmax = np.maximum(np.maximum(r, g), b)
    delta = (vmax - np.minimum(np.minimum(r, g), b)).astype(np.float32)
    sat = delta / np.maximum(vmax, 1).astype(np.float32)
    return sat, vmax


def hue_between_green_and_blue(rgb: np.ndarray) -> np.ndarray:
    """True where the HSV hue lies in (0.2, 0.7): yellow-green to blue-violet, never H&E.

    Worked out per hue sector without computing the hue: where green is the
    largest channel hue = (2 + (b - r) / delta) / 6 > 0.2 needs 5 (b - r) > -4 delta;
    where blue is, hue = (4 + (r - g) / delta) / 6 < 0.7 needs 5 (r - g) < delta;
    where red is (ties go to red, then green, as in skimage) the hue is outside.
    """
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    vmax = np.maximum(np.maximum(r, g), b)
    delta = vmax - np.minimum(np.minimum(r, g), b)
    green_max = (g == vmax) & (r != vmax)
    blue_max = (b == vmax) & (r != vmax) & (g != vmax)
    return (delta > 0) & ((green_max & (5 * (b - r) > -4 * delta)) | (blue_max & (5 * (r - g) < delta)))
