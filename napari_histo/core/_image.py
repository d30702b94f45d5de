"""Input checks and colour conversions shared by the tissue and stain modules.

Every public function of :mod:`napari_histo.core` that takes pixels takes
8-bit RGB; :func:`check_rgb` turns every other layout into one clear error
that names what was passed and how to convert it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_histo.errors import InvalidImageError

__all__ = ["PixelLayout", "check_rgb", "hue_between_green_and_blue", "saturation_value", "to_rgb8"]


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


# -- pixel layouts of image files ------------------------------------------------------------
#
# A slide file can store its pixels in many layouts; tiles, tissue detection and
# models read 8-bit RGB.  ``PixelLayout`` names what a file stores, and
# ``to_rgb8`` converts the layouts that convert without guessing (alpha over
# white, 16-bit scaled, grayscale repeated); the rest are refused by the reader.

_VIPS_OUT = "'OUT.tif[tile,pyramid,compression=jpeg]'"
_FIXES_BY_KIND = {
    "float": f"Convert it to 8-bit RGB, e.g. for values 0-1: vips linear IN.tif {_VIPS_OUT} 255 0 --uchar",
    "int": f"Convert it to 8-bit RGB, e.g. vips cast IN.tif {_VIPS_OUT} uchar --shift",
    "cmyk": f"Convert it to RGB, e.g. vips colourspace IN.tif {_VIPS_OUT} srgb",
    "palette": f"Convert it to RGB, e.g. vips copy IN.tif {_VIPS_OUT} (libvips expands the palette)",
    "colour": f"Convert it to RGB, e.g. vips colourspace IN.tif {_VIPS_OUT} srgb, or with bfconvert",
    "channels": "It looks like fluorescence or multiplex channels, not a brightfield (H&E) scan: open it "
    "with napari's built-in reader or bioio (tiles and models here need an RGB slide)",
    "bits": f"Convert it to 8-bit RGB, e.g. vips copy IN.tif {_VIPS_OUT}, or with bfconvert",
}


@dataclass(frozen=True)
class PixelLayout:
    """How an image file stores its pixels.

    Attributes
    ----------
    samples : int
        Values per pixel (3 for RGB, 4 for RGBA or CMYK, 1 for grayscale ...).
    dtype : str
        numpy dtype name of each value (``uint8``, ``uint16``, ``float32`` ...).
    photometric : str
        TIFF photometric interpretation in lower case (``rgb``, ``minisblack``,
        ``miniswhite``, ``separated`` (CMYK), ``palette``, ``ycbcr`` ...).
    extra : str
        What the values after the colour ones are: ``"alpha"`` (unassociated),
        ``"premultiplied"`` (associated alpha), ``"unspecified"``, or ``""`` for none.
    bits : int
        Significant bits per value (12 for a 12-bit camera stored in uint16); 0 means the dtype's.
    """

    samples: int
    dtype: str
    photometric: str = "rgb"
    extra: str = ""
    bits: int = 0

    @property
    def colour_samples(self) -> int:
        return self.samples - (1 if self.extra else 0)

    @property
    def name(self) -> str:
        """``RGB 8-bit``, ``RGBA 16-bit``, ``grayscale 8-bit``, ``CMYK 8-bit``, ``RGB 32-bit float`` ..."""
        dt = np.dtype(self.dtype)
        kind = {"f": " float", "i": " signed", "b": " (1-bit)"}.get(dt.kind, "")
        depth = f"{self.bits or dt.itemsize * 8}-bit{kind}" if dt.kind != "b" else "1-bit"
        if self.extra == "unspecified" and self.colour_samples in (1, 3):
            return f"{self._colour_name()} {depth} + 1 extra channel"
        return f"{self._colour_name()} {depth}"

    def _colour_name(self) -> str:
        photometric = self.photometric
        if photometric == "separated" and self.colour_samples == 4:
            return "CMYK" + (" + alpha" if self.extra else "")
        if photometric == "palette":
            return "palette (indexed colour)"
        alpha = {"alpha": "A", "premultiplied": "A"}.get(self.extra, "")
        if self.colour_samples == 3 and photometric in ("rgb", "ycbcr", "minisblack", ""):
            return "RGB" + alpha
        if self.colour_samples == 1 and self.extra != "unspecified" and photometric != "separated":
            return (
                "grayscale"
                + (" + alpha" if alpha else "")
                + (" (inverted)" if photometric == "miniswhite" else "")
            )
        if photometric not in ("rgb", "minisblack", "miniswhite", "separated", ""):
            return f"{photometric.upper()} {self.samples}-channel"
        return f"{self.samples}-channel"

    def problem(self) -> tuple[str, str] | None:
        """Why this layout cannot be read as RGB, and the fix; ``None`` when :func:`to_rgb8` converts it."""
        dt = np.dtype(self.dtype)
        if dt.kind == "f":
            return "floating-point pixels have no fixed white level", _FIXES_BY_KIND["float"]
        if dt.kind == "b" or self.bits == 1:
            return "1-bit (black and white) pixels hold no colour or shades", _FIXES_BY_KIND["bits"]
        if dt.kind == "i" or (dt.kind == "u" and dt.itemsize > 2):
            return f"{self.name} values are not an image scale napari-histo reads", _FIXES_BY_KIND["int"]
        if dt.kind != "u":
            return f"{dt} pixels are not an image scale napari-histo reads", _FIXES_BY_KIND["bits"]
        if self.photometric == "separated":
            return "CMYK is print colour; converting it needs the file's colour profile", _FIXES_BY_KIND[
                "cmyk"
            ]
        if self.photometric == "palette":
            return "indexed-colour pixels need their palette", _FIXES_BY_KIND["palette"]
        if self.photometric not in ("rgb", "ycbcr", "minisblack", "miniswhite", ""):
            return f"{self.photometric.upper()} colour is not RGB", _FIXES_BY_KIND["colour"]
        if self.colour_samples not in (1, 3) or (self.colour_samples == 1 and self.extra == "unspecified"):
            return f"{self.samples} channels are not a colour image", _FIXES_BY_KIND["channels"]
        return None

    @property
    def is_rgb8(self) -> bool:
        """Already 8-bit RGB: read as stored."""
        return (
            self.samples == 3
            and not self.extra
            and np.dtype(self.dtype) == np.uint8
            and self.photometric in ("rgb", "ycbcr", "minisblack", "")
        )

    def conversion(self) -> str:
        """What :func:`to_rgb8` does to this layout, in words ('' when nothing)."""
        steps = []
        if self.extra in ("alpha", "premultiplied"):
            steps.append("the transparent parts are shown over white (alpha dropped)")
        elif self.extra:
            steps.append("the extra channel is ignored")
        if np.dtype(self.dtype).itemsize > 1:
            white = (1 << (self.bits or 8 * np.dtype(self.dtype).itemsize)) - 1
            steps.append(f"values are scaled from 0-{white:,} to 0-255")
        if self.colour_samples == 1:
            steps.append(
                "the gray values are inverted and repeated as R, G and B"
                if self.photometric == "miniswhite"
                else "the gray values are repeated as R, G and B"
            )
        return "; ".join(steps)


def to_rgb8(pixels: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """``pixels`` (rows, cols[, samples]) of ``layout`` as uint8 RGB (rows, cols, 3).

    Alpha is composited over white, 16-bit values are scaled by their white
    level (``2**bits - 1``), gray is repeated into R, G and B (inverted first for
    ``miniswhite``).  Layouts with a :meth:`PixelLayout.problem` raise
    :class:`InvalidImageError`.
    """
    found = layout.problem()
    if found is not None:
        raise InvalidImageError(f"{layout.name} pixels: {found[0]}. {found[1]}.")
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[..., None]
    if layout.is_rgb8:
        return arr
    values = arr.astype(np.float32) if arr.dtype.itemsize > 1 else arr
    if arr.dtype.itemsize > 1:
        white = float((1 << (layout.bits or 8 * arr.dtype.itemsize)) - 1)
        values = np.clip(values * (255.0 / white), 0, 255)
    colour = values[..., : layout.colour_samples]
    if layout.photometric == "miniswhite":
        colour = 255 - colour
    if layout.extra in ("alpha", "premultiplied"):
        alpha = values[..., layout.colour_samples : layout.colour_samples + 1].astype(np.float32) / 255.0
        colour = colour.astype(np.float32)
        if layout.extra == "alpha":
            colour = colour * alpha + 255.0 * (1.0 - alpha)
        else:  # premultiplied: the colour already carries alpha
            colour = colour + 255.0 * (1.0 - alpha)
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    if colour.dtype != np.uint8:
        colour = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(colour)
