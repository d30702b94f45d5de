"""Input checks and colour conversions shared by the tissue and stain modules.

Every public function of :mod:`napari_histo.core` that takes pixels takes
8-bit RGB; :func:`check_rgb` turns every other layout into one clear error
that names what was passed and how to convert it.
"""

from __future__ import annotations

import numpy as np

from napari_histo.errors import InvalidImageError

__all__ = ["check_rgb", "rgb_to_hsv"]


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


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue, saturation and value of uint8 RGB pixels, each float32 in [0, 1].

    The same definition as :func:`skimage.color.rgb2hsv`, in float32 and
    without the (rows, cols, 3) float64 intermediate, so whole-slide thumbnails
    convert quickly.
    """
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    vmax = np.maximum(np.maximum(r, g), b)
    vmin = np.minimum(np.minimum(r, g), b)
    delta = vmax - vmin
    value = vmax / 255.0
    safe = np.where(delta > 0, delta, 1.0)
    sat = np.where(vmax > 0, delta / np.where(vmax > 0, vmax, 1.0), 0.0).astype(np.float32)
    hue = np.where(
        vmax == r,
        (g - b) / safe,
        np.where(vmax == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
    )
    hue = np.where(delta > 0, (hue / 6.0) % 1.0, 0.0).astype(np.float32)
    return hue, sat, value.astype(np.float32)
