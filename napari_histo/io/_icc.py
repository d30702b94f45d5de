"""ICC colour profiles: find a slide's profile and convert its pixels to sRGB on request.

Scanners (Aperio SVS, many TIFFs) embed the colour profile of their camera in
TIFF tag 34675 (InterColorProfile).  By default a slide keeps its **raw pixels**
(what models were trained on, and what OpenSlide and QuPath show without colour
management); with ``color="srgb"`` each region read is converted from the
file's profile to sRGB with LittleCMS (Pillow's ``ImageCms``).

How :func:`~napari_histo.io.slide.open_slide` uses this module (one line after
the format opener made ``parts``)::

    parts = apply_color(parts, icc_profile_of(path) if kind == "tiff" else None, color)

``apply_color`` records in ``parts.properties`` which pixels are shown
(``color``: ``raw`` or ``srgb``) and the profile's name (``icc_profile``), and
with ``color="srgb"`` wraps each level's reader in a :class:`SrgbLevel`
(``zarr_factory`` is dropped so that ``Slide.levels`` serve the converted pixels
too).  A profile that already is sRGB, or no profile, leaves the readers as they are.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from napari_histo.errors import InvalidParameterError
from napari_histo.io._slide_parts import SlideParts
from napari_histo.io._tile_reader import LevelReader, SlideWarning

__all__ = [
    "COLOR_MODES",
    "SrgbLevel",
    "apply_color",
    "icc_profile_of",
    "icc_transform",
    "is_srgb_profile",
    "profile_description",
]

ColorMode = Literal["raw", "srgb"]
COLOR_MODES = ("raw", "srgb")
ICC_TAG = 34675  # TIFF InterColorProfile

RgbTransform = Callable[[np.ndarray], np.ndarray]


def icc_profile_of(source: Any) -> bytes | None:
    """The ICC profile carried by ``source``, or ``None``.

    ``source`` is the profile's bytes, a ``tifffile.TiffPage``, a ``tifffile.TiffFile``
    (its first page), or the path of a TIFF file (SVS, NDPI, OME-TIFF ...).  Bytes
    that are not an ICC profile (no ``acsp`` signature) give ``None``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data if len(data) >= 128 and data[36:40] == b"acsp" else None
    if isinstance(source, (str, os.PathLike)):
        import tifffile

        try:
            with tifffile.TiffFile(Path(source)) as tif:
                return icc_profile_of(tif)
        except (OSError, ValueError, tifffile.TiffFileError):
            return None
    pages = getattr(source, "pages", None)
    if pages is not None:  # a TiffFile: the profile of the first (full-resolution) page
        return icc_profile_of(pages[0]) if len(pages) else None
    tags = getattr(source, "tags", None)
    if tags is None:
        raise TypeError(
            f"expected ICC bytes, a tifffile page or file, or a path; got {type(source).__name__}"
        )
    tag = tags.get(ICC_TAG)
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, np.ndarray):
        value = value.tobytes()
    return icc_profile_of(bytes(value)) if isinstance(value, (bytes, bytearray, memoryview)) else None


def profile_description(profile: bytes) -> str:
    """The profile's own name (its ``desc`` tag), e.g. ``sRGB IEC61966-2.1``."""
    from PIL import ImageCms

    try:
        text = ImageCms.getProfileDescription(_open(profile))
    except (ImageCms.PyCMSError, OSError):
        return "unreadable ICC profile"
    return " ".join(text.split()) or "unnamed ICC profile"


@functools.lru_cache(maxsize=16)
def _cached_transform(profile: bytes, intent: int) -> Any:
    from PIL import ImageCms

    srgb = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(
        _open(profile), srgb, "RGB", "RGB", renderingIntent=ImageCms.Intent(intent),
        flags=ImageCms.Flags.NOCACHE,  # the transform is shared by decoding threads
    )  # fmt: skip


def icc_transform(profile: bytes, intent: str = "perceptual") -> RgbTransform:
    """A function converting uint8 RGB arrays (..., 3) from ``profile`` to sRGB (cached per profile).

    ``intent``: ``perceptual`` (default, as viewers use), ``relative`` (relative
    colorimetric), ``saturation`` or ``absolute``.  Raises :class:`InvalidParameterError`
    for a profile LittleCMS cannot read or that is not an RGB profile.
    """
    from PIL import Image, ImageCms

    intents = {"perceptual": 0, "relative": 1, "saturation": 2, "absolute": 3}
    if intent not in intents:
        raise InvalidParameterError(f"rendering intent must be one of {', '.join(intents)}, got {intent!r}")
    try:
        transform = _cached_transform(bytes(profile), intents[intent])
    except (ImageCms.PyCMSError, OSError) as exc:
        raise InvalidParameterError(
            f"the ICC profile ({len(profile):,} bytes) cannot be used to convert to sRGB ({exc}); "
            "read the slide's raw pixels (color='raw') instead"
        ) from exc

    def convert(rgb: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(rgb, dtype=np.uint8)
        if arr.size == 0:
            return arr.copy()
        if arr.shape[-1] != 3:
            raise ValueError(f"expected RGB pixels (..., 3), got shape {arr.shape}")
        image = Image.fromarray(arr if arr.ndim == 3 else arr.reshape(1, -1, 3))
        out = np.asarray(ImageCms.applyTransform(image, transform))
        return out.reshape(arr.shape).copy()

    return convert


def is_srgb_profile(profile: bytes) -> bool:
    """``True`` when converting with ``profile`` changes no value by more than 1 (an sRGB profile)."""
    ramp = np.arange(256, dtype=np.uint8)
    probe = np.stack(
        [np.stack([ramp, ramp, ramp], -1), np.stack([ramp, 255 - ramp, ramp // 2], -1),
         np.stack([ramp // 3, ramp, 255 - ramp], -1)]
    )  # fmt: skip
    try:
        out = icc_transform(profile)(probe)
    except InvalidParameterError:
        return False
    return bool(np.abs(out.astype(np.int16) - probe.astype(np.int16)).max() <= 1)


class SrgbLevel(LevelReader):
    """A level whose regions come out converted to sRGB by ``transform`` (see :func:`icc_transform`)."""

    def __init__(self, parent: LevelReader, transform: RgbTransform):
        self.parent = parent
        self._transform = transform
        self.shape = parent.shape
        self.dtype = parent.dtype
        self.chunk_shape = parent.chunk_shape

    @property
    def filled_tiles(self) -> int:
        return self.parent.filled_tiles

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        return self._transform(self.parent.read_window(r0, c0, r1, c1))

    def __getattr__(self, name: str) -> Any:  # tile_count, compression ... of the file's reader
        if name == "parent":
            raise AttributeError(name)
        return getattr(self.parent, name)


def apply_color(parts: SlideParts, profile: bytes | None, color: str = "raw") -> SlideParts:
    """``parts`` showing raw pixels or sRGB: records which in the properties, converts for ``srgb``.

    Properties set: ``color`` (``raw`` or ``srgb``), ``icc_profile`` (the profile's
    name, or ``none``), and ``color_note`` saying what the pixels are.  With
    ``color="srgb"`` and no profile a :class:`SlideWarning` note says the pixels
    are shown as stored (assumed sRGB).
    """
    if color not in COLOR_MODES:
        raise InvalidParameterError(f"color must be 'raw' or 'srgb', got {color!r}")
    name = profile_description(profile) if profile else "none"
    props = {**parts.properties, "color": color, "icc_profile": name}
    if color == "raw":
        props["color_note"] = (
            "raw pixels as stored (the file's ICC profile is not applied; open with color='srgb' to convert)"
            if profile
            else "raw pixels as stored (the file carries no ICC profile)"
        )
        return replace(parts, properties=props)
    if profile is None:
        props["color_note"] = "raw pixels as stored: the file carries no ICC profile, they are taken as sRGB"
        note = (SlideWarning, "color='srgb': the file carries no ICC colour profile; its pixels are shown "
                "as stored (taken as sRGB)")  # fmt: skip
        return replace(parts, properties=props).with_notes([note])
    if is_srgb_profile(profile):
        props["color_note"] = f"sRGB: the file's ICC profile ({name}) is sRGB, so the pixels are unchanged"
        return replace(parts, properties=props)
    transform = icc_transform(profile)
    props["color_note"] = f"sRGB, converted from the file's ICC profile ({name})"
    readers = tuple(SrgbLevel(r, transform) for r in parts.readers)
    return replace(parts, properties=props, readers=readers, zarr_factory=None)


def _open(profile: bytes) -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(io.BytesIO(bytes(profile)))
