"""Read a TIFF file (SVS, NDPI, OME, generic) into the parts of a slide.

Finds the pyramid levels and the associated images, reads the calibration from
the vendor's metadata, and rejects damaged files before any pixel is decoded.
:func:`open_tiff` returns a :class:`~napari_histo.io._slide_parts.SlideParts`;
``open_slide`` (in ``slide.py``, which imports this module) builds the ``Slide``.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from napari_histo.errors import CorruptSlideError, UnsupportedFormatError
from napari_histo.io._metadata import (
    Calibration,
    aperio_calibration,
    mpp_from_resolution,
    parse_aperio_description,
    parse_ome_calibration,
)
from napari_histo.io._slide_parts import LevelInfo, SlideParts
from napari_histo.io._tile_reader import OnError, TiffLevelReader, TileCache

__all__ = ["open_tiff"]

_ASSOCIATED = {"label", "macro", "thumbnail", "overview", "map"}
_SUPPORTED_AXES = {"YXS", "YX"}


def open_tiff(path: Path, cache: TileCache, on_error: OnError) -> SlideParts:
    """Open ``path`` (already known to start with a TIFF signature).

    The returned parts own the open file: call ``parts.close()`` (the
    ``Slide`` built from them does) or drop every reader to release it.
    """
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise CorruptSlideError(
            f"{path}: the TIFF structure cannot be read ({exc}). The file is truncated or "
            "damaged: copy it again from the scanner or archive."
        ) from exc
    source = _OpenFile(tif, os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)))
    try:
        return _read_parts(path, tif, source, cache, on_error)
    except BaseException:
        source.close()
        raise


class _OpenFile:
    """The slide's open TIFF and descriptor, closed by ``close`` or when unreferenced.

    Level readers hold this object, so a napari layer that outlives its
    ``Slide`` keeps reading, and the file closes once nothing uses it.
    """

    def __init__(self, tif: Any, fd: int) -> None:
        self.tif = tif
        self.fd = fd
        self.close = weakref.finalize(self, _close_file, tif, fd)


def _close_file(tif: Any, fd: int) -> None:
    tif.close()
    os.close(fd)


def _read_parts(path: Path, tif: Any, source: _OpenFile, cache: TileCache, on_error: OnError) -> SlideParts:
    if not tif.series:
        raise CorruptSlideError(f"{path}: the TIFF holds no image. The file is damaged or not a slide.")
    base = tif.series[0]
    if base.axes not in _SUPPORTED_AXES:
        raise UnsupportedFormatError(
            f"{path}: image axes {base.axes!r} (shape {base.shape}) are not a brightfield slide. "
            "napari-histo reads RGB or single-channel 2-D pyramids; open multi-channel, z-stack or "
            "time-lapse OME-TIFFs with napari's built-in reader or bioio."
        )
    pages, associated = _levels_and_associated(tif)
    readers = [
        TiffLevelReader(page, source, cache, (str(path), i), str(path), on_error)
        for i, page in enumerate(pages)
    ]
    _check_not_truncated(path, readers)
    rows0, cols0 = pages[0].shape[:2]
    infos = tuple(
        LevelInfo(
            tuple(int(n) for n in page.shape),
            (rows0 / page.shape[0] + cols0 / page.shape[1]) / 2,
            reader.chunk_shape,
            reader.compression,
        )
        for page, reader in zip(pages, readers)
    )
    fmt, vendor, properties, calibration = _describe(tif, pages[0])
    return SlideParts(
        format=fmt,
        vendor=vendor,
        calibration=calibration,
        level_info=infos,
        properties=properties,
        readers=tuple(readers),
        zarr_factory=lambda i: _zarr_level(pages[i]),
        associated=associated,
        close=source.close,
    )


def _levels_and_associated(tif: Any) -> tuple[list[Any], dict[str, Any]]:
    """Pyramid pages (level 0 first) and loaders of label/macro/thumbnail images."""
    base = tif.series[0]
    pages = [level.keyframe for level in base.levels]
    associated: dict[str, Any] = {}
    rows0, cols0 = base.shape[:2]
    for series in tif.series[1:]:
        name = (series.name or "").strip().lower()
        if name in _ASSOCIATED:
            associated[name] = _SeriesLoader(series)
        elif len(base.levels) == 1 and _is_reduction(series.shape, base.shape):
            # generic pyramids (e.g. libvips without SubIFDs): reduced pages after level 0
            pages.append(series.levels[0].keyframe)
        elif series.shape[-1] in (3, 4) or len(series.shape) == 2:
            associated[name or f"image{len(associated)}"] = _SeriesLoader(series)
    pages.sort(key=lambda page: -page.shape[0])
    del rows0, cols0
    return pages, associated


def _is_reduction(shape: tuple[int, ...], base: tuple[int, ...]) -> bool:
    if len(shape) != len(base) or shape[2:] != base[2:] or shape[0] >= base[0]:
        return False
    ratio_rows, ratio_cols = base[0] / shape[0], base[1] / shape[1]
    return abs(ratio_rows - ratio_cols) / ratio_rows < 0.02


class _SeriesLoader:
    """Decodes an associated image on demand; ``shape`` is known without decoding."""

    def __init__(self, series: Any) -> None:
        self._series = series
        self.shape = tuple(int(n) for n in series.shape)

    def __call__(self) -> Any:
        return self._series.asarray()


def _check_not_truncated(path: Path, readers: list[TiffLevelReader]) -> None:
    size = path.stat().st_size
    for level, reader in enumerate(readers):
        end = reader.end_of_data()
        if end > size:
            raise CorruptSlideError(
                f"{path}: the file is truncated: level {level} has tiles up to byte {end:,} but the "
                f"file has only {size:,} bytes. The copy or download was interrupted; copy the slide again."
            )


def _describe(tif: Any, page0: Any) -> tuple[str, str | None, dict[str, str], Calibration]:
    """Format, vendor, properties and calibration of the slide's first page."""
    description = page0.description or ""
    resolution_mpp = mpp_from_resolution(_tag(page0, "XResolution"), _tag(page0, "ResolutionUnit"))
    if tif.is_svs:
        props = parse_aperio_description(description)
        return "aperio-svs", "aperio", props, aperio_calibration(props)
    if tif.is_ndpi:
        tags = page0.ndpi_tags or {}
        props = {
            str(k): str(v)
            for k, v in tags.items()
            if k not in {"McuStarts", "McuStartsHighBytes", "FocusPoints"}
        }
        mag = tags.get("Magnification")
        source = "NDPI XResolution (cm)" if resolution_mpp else "none"
        return "hamamatsu-ndpi", "hamamatsu", props, Calibration(resolution_mpp, _float(mag), source)
    if tif.is_ome:
        calibration = parse_ome_calibration(tif.ome_metadata or "")
        if calibration.mpp is None and resolution_mpp is not None:
            calibration = Calibration(resolution_mpp, calibration.magnification, "TIFF XResolution")
        return "ome-tiff", "ome", {"ome_xml_bytes": str(len(tif.ome_metadata or ""))}, calibration
    props = {"ImageDescription": description[:2000]} if description else {}
    source = "TIFF XResolution" if resolution_mpp else "none"
    return "tiff", None, props, Calibration(resolution_mpp, None, source)


def _tag(page: Any, name: str) -> Any:
    tag = page.tags.get(name)
    return None if tag is None else tag.value


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _zarr_level(page: Any) -> Any:
    """A read-only zarr array over one level (tifffile's ``aszarr`` store)."""
    import zarr

    return zarr.open_array(page.aszarr(), mode="r")
