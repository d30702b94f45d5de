"""Read a slide through OpenSlide 4 (``openslide-python`` + ``openslide-bin``) into the parts of a slide.

OpenSlide reads the vendor formats the built-in tifffile reader does not:
MIRAX (``.mrxs``), Leica SCN, Ventana BIF, Philips TIFF, Hamamatsu VMS/VMU,
Sakura SVSlide, Trestle, DICOM, and the SVS/NDPI/generic TIFF the built-in
reader also reads.  Each OpenSlide level becomes a :class:`OpenSlideLevel`
(an array-like read with ``read_region``, chunked on the file's tiles) and
OpenSlide's RGBA output is composited on the slide's background colour
(white unless the file names another), which is how the tifffile back-end
shows the area outside scanned regions.

Levels whose downsample is not a whole number (e.g. 2.0005 for a level of
2221 px under one of 4443 px) are painted by OpenSlide from a level-0
coordinate divided by that downsample: a region that does not start at a
whole level pixel is resampled by a fraction of a pixel.  That is OpenSlide's
behaviour, not this module's; :func:`level_origin` picks the level-0
coordinate closest to the wanted level pixel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.errors import CorruptSlideError, MissingDependencyError, UnsupportedFormatError
from napari_histo.io._metadata import Calibration, plausible_mpp
from napari_histo.io._slide_parts import ClosesOnce, LevelInfo, SlideParts
from napari_histo.io._tile_reader import LevelReader, guard_allocation, one_line

__all__ = ["OpenSlideLevel", "level_origin", "open_openslide", "openslide_module", "openslide_vendor"]

INSTALL_HINT = "pip install 'napari-histo[openslide]' (openslide-python and openslide-bin, no system install)"

# OpenSlide's vendor -> the format name napari-histo reports (the tifffile back-end's names where they match)
_FORMATS = {
    "aperio": "aperio-svs",
    "hamamatsu": "hamamatsu-ndpi",
    "mirax": "mirax-mrxs",
    "leica": "leica-scn",
    "ventana": "ventana-bif",
    "philips": "philips-tiff",
    "sakura": "sakura-svslide",
    "trestle": "trestle-tiff",
    "dicom": "dicom",
    "generic-tiff": "tiff",
    "synthetic": "openslide-synthetic",
}


def openslide_module(what: str) -> Any:
    """``openslide``, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import openslide
    except (ImportError, OSError) as exc:  # openslide-python missing, or its library (openslide-bin)
        raise MissingDependencyError(
            f"{what} needs OpenSlide, which is not installed ({one_line(exc)}). Install it with: "
            f"{INSTALL_HINT}"
        ) from exc
    return openslide


def openslide_vendor(path: Path) -> str | None:
    """OpenSlide's vendor name for ``path`` (``None``: OpenSlide does not read it, or is not installed)."""
    try:
        import openslide
    except (ImportError, OSError):
        return None
    try:
        return openslide.OpenSlide.detect_format(os.fspath(path))
    except Exception:  # noqa: BLE001 - any failure to detect means "not OpenSlide's"
        return None


def level_origin(level_px: int, downsample: float) -> int:
    """The level-0 coordinate OpenSlide maps closest to ``level_px`` (exact for whole downsamples)."""
    return int(round(level_px * downsample))


class OpenSlideLevel(LevelReader):
    """One OpenSlide level as an array-like of 8-bit RGB, read with ``read_region``.

    ``chunk_shape`` is the file's tile (OpenSlide's ``tile-height``/``tile-width``),
    so dask chunks follow the stored tiles.  OpenSlide handles are thread-safe
    and keep their own decoded-tile cache.
    """

    def __init__(self, owner: _OpenSlideFile, level: int, name: str) -> None:
        self._owner = owner
        self._level = level
        self._name = name
        osr = owner.osr
        width, height = osr.level_dimensions[level]
        self._downsample = float(osr.level_downsamples[level])
        self.shape = (int(height), int(width), 3)
        self.dtype = np.dtype(np.uint8)
        props = osr.properties
        tile_h = _int(props.get(f"openslide.level[{level}].tile-height"))
        tile_w = _int(props.get(f"openslide.level[{level}].tile-width"))
        self.chunk_shape = (
            min(tile_h or 256, self.shape[0]) or 1,
            min(tile_w or 256, self.shape[1]) or 1,
        )
        self.has_tiles = bool(tile_h and tile_w)

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        r0, c0 = max(0, r0), max(0, c0)
        r1, c1 = min(self.shape[0], r1), min(self.shape[1], c1)
        out = self._window(r0, c0, r1, c1, f"{self._name} level {self._level}")
        if out.size == 0:
            return out
        guard_allocation(  # OpenSlide's RGBA copy of the window
            (r1 - r0, c1 - c0, 4),
            np.uint8,
            f"{self._name}: a window of {c1 - c0:,} x {r1 - r0:,} px of level {self._level} (RGBA)",
            "read a smaller region or a coarser level",
        )
        location = (level_origin(c0, self._downsample), level_origin(r0, self._downsample))
        try:
            region = self._owner.osr.read_region(location, self._level, (c1 - c0, r1 - r0))
        except Exception as exc:  # OpenSlideError: a tile fails to decode, or the handle is closed
            raise CorruptSlideError(
                f"{self._name}: OpenSlide cannot read level {self._level} at rows {r0}-{r1}, cols {c0}-{c1} "
                f"({one_line(exc)}). The file is damaged or was closed."
            ) from exc
        out[...] = composite_rgba(np.asarray(region), self._owner.background)
        return out


def composite_rgba(rgba: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """8-bit RGB of straight (un-premultiplied) RGBA laid over ``background``.

    openslide-python un-premultiplies OpenSlide's ARGB; transparent pixels (no
    scanned data) become the background, opaque ones keep their colour exactly.
    """
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.size == 0 or bool((alpha == 255).all()):
        return rgb  # a view: callers copy it into their output
    a = alpha.astype(np.uint32)
    bg = np.asarray(background, np.uint32)
    mixed = (rgb.astype(np.uint32) * a + bg * (255 - a) + 127) // 255
    return mixed.astype(np.uint8)


class _OpenSlideFile(ClosesOnce):
    """The open OpenSlide handle; ``close`` is idempotent and levels keep it alive while they live."""

    def __init__(self, osr: Any) -> None:
        super().__init__()
        self.osr = osr
        color = str(osr.properties.get("openslide.background-color", "") or "")
        try:
            self.background = (
                (int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16))
                if len(color) == 6
                else (255, 255, 255)
            )
        except ValueError:
            self.background = (255, 255, 255)

    def _release(self) -> None:
        self.osr.close()


class _AssociatedLoader:
    """Decodes an associated image (label, macro ...) to 8-bit RGB on demand; ``shape`` known up front."""

    def __init__(self, owner: _OpenSlideFile, name: str) -> None:
        self._owner = owner
        self._name = name
        props = owner.osr.properties
        height = _int(props.get(f"openslide.associated.{name}.height"))
        width = _int(props.get(f"openslide.associated.{name}.width"))
        self.shape = (height, width, 3) if height and width else ()

    def __call__(self) -> np.ndarray:
        image = self._owner.osr.associated_images[self._name]
        return np.ascontiguousarray(composite_rgba(np.asarray(image.convert("RGBA")), self._owner.background))


def open_openslide(path: Path, cache_bytes: int) -> SlideParts:
    """Open ``path`` with OpenSlide; ``cache_bytes`` sizes OpenSlide's own decoded-tile cache."""
    openslide = openslide_module(f"{path}")
    try:
        osr = openslide.OpenSlide(os.fspath(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise UnsupportedFormatError(
            f"{path}: OpenSlide does not recognise this file ({one_line(exc) or 'unsupported format'}). "
            "Check that it is a whole-slide image (for MRXS, keep the .mrxs file beside its data folder)."
        ) from exc
    except Exception as exc:  # OpenSlideError: a vendor file OpenSlide recognised but cannot read
        raise CorruptSlideError(
            f"{path}: OpenSlide cannot read this slide ({one_line(exc)}). The file (or a file beside it) "
            "is damaged or missing. Copy the slide again."
        ) from exc
    owner = _OpenSlideFile(osr)
    try:
        if cache_bytes > 0 and hasattr(openslide, "OpenSlideCache"):
            osr.set_cache(openslide.OpenSlideCache(int(cache_bytes)))
        return _parts(path, owner)
    except BaseException:
        owner.close()
        raise


def _parts(path: Path, owner: _OpenSlideFile) -> SlideParts:
    osr = owner.osr
    props = {str(k): str(v) for k, v in osr.properties.items()}
    readers = tuple(OpenSlideLevel(owner, i, str(path)) for i in range(osr.level_count))
    infos = tuple(
        LevelInfo(
            reader.shape,
            float(osr.level_downsamples[i]),
            reader.chunk_shape if reader.has_tiles else None,
            "openslide",
        )
        for i, reader in enumerate(readers)
    )
    vendor = props.get("openslide.vendor") or None
    mpp_x = plausible_mpp(_float(props.get("openslide.mpp-x")))
    mpp_y = plausible_mpp(_float(props.get("openslide.mpp-y")))
    mpp = (mpp_x + mpp_y) / 2 if mpp_x and mpp_y else (mpp_x or mpp_y)
    calibration = Calibration(
        mpp, _float(props.get("openslide.objective-power")), "openslide.mpp-x" if mpp else "none"
    )
    associated = {str(name).lower(): _AssociatedLoader(owner, name) for name in osr.associated_images}
    return SlideParts(
        format=_FORMATS.get(vendor or "", f"openslide-{vendor or 'unknown'}"),
        vendor=vendor,
        calibration=calibration,
        level_info=infos,
        properties=props,
        readers=readers,
        zarr_factory=None,  # levels are served as dask arrays chunked on the file's tiles
        associated=associated,
        close=owner.close,
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
