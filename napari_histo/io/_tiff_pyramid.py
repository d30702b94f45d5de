"""Read a TIFF file (SVS, NDPI, OME, generic) into the parts of a slide.

Finds the pyramid levels and the associated images, reads the calibration from
the vendor's metadata, and rejects damaged files before any pixel is decoded.
:func:`open_tiff` returns a :class:`~napari_histo.io._slide_parts.SlideParts`;
``open_slide`` (in ``slide.py``, which imports this module) builds the ``Slide``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core._image import PixelLayout
from napari_histo.core.memory import format_bytes
from napari_histo.errors import CorruptSlideError, HistoError, UnsupportedFormatError
from napari_histo.io._metadata import (
    Calibration,
    aperio_calibration,
    mpp_from_resolution,
    parse_aperio_description,
    parse_ome_calibration,
)
from napari_histo.io._slide_parts import LevelInfo, SlideParts
from napari_histo.io._tile_reader import (
    OnError,
    SlideDamageWarning,
    SlideWarning,
    TiffLevelReader,
    TileCache,
    guard_allocation,
    one_line,
)

__all__ = ["open_tiff", "page_layout"]

_ASSOCIATED = {"label", "macro", "thumbnail", "overview", "map"}
_SUPPORTED_AXES = {"YXS", "YX"}
# Decoded bytes per stored byte above which a level's tile table cannot be true: codecs reach
# ~1,000:1 (deflate, JPEG) and a few 10,000:1 on flat tiles (zstd); headers claiming more are damaged.
_MAX_COMPRESSION_RATIO = 200_000
_RECOPY = "Copy the slide again from the scanner or archive."


class _TifffileLog(logging.Filter):
    """Keeps tifffile's log lines from reaching the user while this thread opens a slide.

    tifffile logs damage (``<tifffile.TiffPages @N> invalid page offset ...``)
    instead of raising; :func:`open_tiff` collects those lines and turns them
    into one error (or, reading around damage, one warning) in plain words.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        lines = getattr(self.local, "lines", None)
        if lines is None:
            return True
        lines.append(record.getMessage())
        return False

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        outer = getattr(self.local, "lines", None)
        lines: list[str] = []
        self.local.lines = lines
        try:
            yield lines
        finally:
            self.local.lines = outer


_TIFFFILE_LOG = _TifffileLog()
logging.getLogger("tifffile").addFilter(_TIFFFILE_LOG)
#: ``with quiet_tifffile():`` keeps tifffile's log lines about damage from the user (see _TifffileLog)
quiet_tifffile = _TIFFFILE_LOG.capture

_DAMAGE = re.compile(r"invalid|corrupt|could not read|failed to read|circular|suspicious|missing", re.I)
_BENIGN = re.compile(r"coercing invalid ascii", re.I)
_PAGE_OFFSET = re.compile(r"invalid (?:offset to first page|page offset|offset to page \d+ @)\s*(\d+)")


def open_tiff(path: Path, cache: TileCache, on_error: OnError, *, remote: Any = None) -> SlideParts:
    """Open ``path`` (already known to start with a TIFF signature).

    The returned parts own the open file: call ``parts.close()`` (the
    ``Slide`` built from them does) or drop every reader to release it.
    ``remote``: a :class:`~napari_histo.io._remote.RemoteFile` to read instead
    of a local file (``path`` then only names it in messages); the parts then
    own its cache file.
    """
    import tifffile

    size = path.stat().st_size if remote is None else remote.size
    # tifffile's log lines are collected (not shown) and numpy's warnings silenced while the header
    # is parsed: a damaged header shows as one CorruptSlideError, never as tifffile's own words
    with _TIFFFILE_LOG.capture() as log, np.errstate(all="ignore"):
        try:
            if remote is None:
                tif = tifffile.TiffFile(path)
            else:
                tif = tifffile.TiffFile(remote.fileobj(), name=path.name)
        except Exception as exc:
            raise CorruptSlideError(
                f"{path}: the TIFF structure cannot be read ({one_line(exc)}). The file is truncated or "
                f"damaged. {_RECOPY}"
            ) from exc
        try:
            series = tif.series  # parses every page now, while tifffile's log is collected
        except Exception as exc:
            tif.close()
            raise CorruptSlideError(
                f"{path}: the TIFF pages cannot be read ({one_line(exc)}). The file is damaged. {_RECOPY}"
            ) from exc
        notes: list[tuple[type[Warning], str]] = []
        damage = _structure_damage(path, log, size)
        if damage is not None:
            if on_error == "raise" or not series:
                tif.close()
                raise CorruptSlideError(f"{damage} {_RECOPY}")
            notes.append((SlideDamageWarning, f"{damage} Reading what is there."))
        if remote is None:
            source = _OpenFile(tif, os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)))
        else:  # the remote file's local block cache (now owned here): blocks are fetched before reads
            remote.close.detach()
            source = _OpenFile(tif, remote.fd, remote)
        try:
            parts = _read_parts(path, tif, source, cache, on_error, size)
        except HistoError:
            source.close()
            raise
        except Exception as exc:  # tifffile meets damage it does not report (a zero tile size ...)
            source.close()
            raise CorruptSlideError(
                f"{path}: the TIFF header is damaged ({one_line(exc)}). {_RECOPY}"
            ) from exc
        except BaseException:
            source.close()
            raise
    return parts.with_notes(notes)


def _structure_damage(path: Path, log: list[str], size: int) -> str | None:
    """What tifffile's log says is wrong with the file's structure, in words (``None``: nothing)."""
    lines = [re.sub(r"^(<[^>]*>\s*)+", "", line).strip() for line in log]
    lines = [line for line in lines if _DAMAGE.search(line) and not _BENIGN.search(line)]
    if not lines:
        return None
    for line in lines:
        match = _PAGE_OFFSET.search(line)
        if match and int(match.group(1)) >= size:
            return (
                f"{path}: the file is truncated or damaged: it has {size:,} bytes but an image directory "
                f"(the index of a page: a level, label or macro image) starts at byte "
                f"{int(match.group(1)):,}, past its end, so pages are missing."
            )
    return f"{path}: the TIFF structure is damaged ({lines[0][:200]})."


class _OpenFile:
    """The slide's open TIFF and descriptor, closed by ``close`` or when unreferenced.

    Level readers hold this object, so a napari layer that outlives its
    ``Slide`` keeps reading, and the file closes once nothing uses it.
    """

    def __init__(self, tif: Any, fd: int, remote: Any = None) -> None:
        self.tif = tif
        self.fd = fd
        self.remote = remote  # a RemoteFile whose cache file ``fd`` is, or None for a local file
        self.close = weakref.finalize(self, _close_file, tif, fd)


def _close_file(tif: Any, fd: int) -> None:
    tif.close()
    os.close(fd)


def _read_parts(
    path: Path, tif: Any, source: _OpenFile, cache: TileCache, on_error: OnError, size: int
) -> SlideParts:
    if not tif.series:
        raise CorruptSlideError(f"{path}: the TIFF holds no image. The file is damaged or not a slide.")
    base = tif.series[0]
    keyframe = base.keyframe
    if getattr(keyframe, "planarconfig", 1) == 2 and keyframe.samplesperpixel > 1:
        raise UnsupportedFormatError(
            f"{path}: the image stores each colour channel as a separate plane (TIFF planar configuration "
            "2), which napari-histo does not read. Rewrite it with interleaved colour, e.g. "
            "vips tiffsave IN.tif OUT.tif --tile --pyramid --compression jpeg"
        )
    if base.axes not in _SUPPORTED_AXES:
        raise UnsupportedFormatError(
            f"{path}: image axes {base.axes!r} (shape {base.shape}) are not a brightfield slide. "
            "napari-histo reads RGB or single-channel 2-D pyramids; open multi-channel, z-stack or "
            "time-lapse OME-TIFFs with napari's built-in reader or bioio."
        )
    layout = page_layout(keyframe)
    problem = layout.problem()
    if problem is not None:
        raise UnsupportedFormatError(f"{path} stores {layout.name} pixels: {problem[0]}. {problem[1]}.")
    pages, associated = _levels_and_associated(tif, path)
    layouts = [page_layout(page) for page in pages]
    for i, (page, level_layout) in enumerate(zip(pages, layouts)):
        if (level_problem := level_layout.problem()) is not None:
            raise UnsupportedFormatError(
                f"{path}: level {i} stores {level_layout.name} pixels: {level_problem[0]}. "
                f"{level_problem[1]}."
            )
        _check_level_header(path, i, page, size)
    reader_type = TiffLevelReader if source.remote is None else source.remote.level_reader
    readers = [
        reader_type(page, source, cache, (str(path), i), str(path), on_error, layout=level_layout)
        for i, (page, level_layout) in enumerate(zip(pages, layouts))
    ]
    notes: list[tuple[type[Warning], str]] = []
    truncated = _check_not_truncated(path, readers, size, on_error)
    if truncated:
        notes.append((SlideDamageWarning, truncated))
    if not layout.is_rgb8:
        notes.append(
            (
                SlideWarning,
                f"{path} stores {layout.name} pixels; they are read as 8-bit RGB: {layout.conversion()}.",
            )
        )
    rows0, cols0 = pages[0].shape[:2]
    infos = tuple(
        LevelInfo(
            reader.shape,
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
        # zarr views show the stored values: only when every level is stored as 8-bit RGB
        zarr_factory=(lambda i: _zarr_level(pages[i])) if all(lay.is_rgb8 for lay in layouts) else None,
        associated=associated,
        close=source.close,
        pixel_layout=layout.name,
        notes=tuple(notes),
    )


def page_layout(page: Any) -> PixelLayout:
    """The :class:`~napari_histo.core._image.PixelLayout` of a tifffile page."""
    photometric = getattr(page.photometric, "name", str(page.photometric)).lower()
    extras = [int(e) for e in (page.extrasamples or ())]
    extra = "" if not extras else {1: "premultiplied", 2: "alpha"}.get(extras[0], "unspecified")
    dtype = np.dtype(page.dtype) if page.dtype is not None else np.dtype(np.uint8)
    bits = int(page.bitspersample)
    if dtype.kind == "u" and dtype.itemsize == 2 and 8 < bits < 16:
        significant = bits
    elif bits == 1:
        significant = 1
    else:
        significant = 0
    return PixelLayout(int(page.samplesperpixel), dtype.name, photometric, extra, significant)


def _check_level_header(path: Path, level: int, page: Any, size: int) -> None:
    """Refuse a level whose header cannot be true: no pixels, a short tile table, or far too few bytes."""
    rows, cols = int(page.shape[0]), int(page.shape[1])
    if rows == 0 or cols == 0:
        raise CorruptSlideError(
            f"{path}: level {level} has no pixels ({cols} x {rows} px): the header is damaged. {_RECOPY}"
        )
    expected = math.prod(int(n) for n in page.chunked)
    offsets, counts = page.dataoffsets, page.databytecounts
    kind = "tile" if page.is_tiled else "strip"
    if len(offsets) != expected or len(counts) != expected:
        raise CorruptSlideError(
            f"{path}: the header claims level {level} is {cols:,} x {rows:,} px, which takes {expected:,} "
            f"{kind}s of {page.chunks[1]:,} x {page.chunks[0]:,} px, but its {kind} table lists "
            f"{min(len(offsets), len(counts)):,}: the header is damaged. {_RECOPY}"
        )
    counts = np.asarray(counts, dtype=np.int64)
    stored = counts > 0
    if not stored.any():
        return
    per_chunk = np.full(len(counts), math.prod(int(n) for n in page.chunks) * page.dtype.itemsize, np.float64)
    if not page.is_tiled:  # the last strip holds only the rows left
        rows_per_strip = int(page.chunks[0])
        last_rows = rows - (len(counts) - 1) * rows_per_strip
        per_chunk[-1] *= max(0, min(last_rows, rows_per_strip)) / rows_per_strip
    decoded, stored_bytes = float(per_chunk[stored].sum()), int(counts[stored].sum())
    claim = (
        f"the header claims level {level} is {cols:,} x {rows:,} px ({format_bytes(decoded)} of pixels in "
        f"the {kind}s it lists)"
    )
    if int(page.compression) == 1 and (counts < per_chunk.astype(np.int64))[stored].any():
        raise CorruptSlideError(
            f"{path}: {claim}, but its uncompressed {kind}s hold only {stored_bytes:,} bytes: the header is "
            f"damaged. {_RECOPY}"
        )
    if decoded > _MAX_COMPRESSION_RATIO * stored_bytes:
        raise CorruptSlideError(
            f"{path}: {claim}, but its {kind}s hold only {stored_bytes:,} bytes, far too few for that many "
            f"pixels (the file has {size:,} bytes): the header is damaged. {_RECOPY}"
        )


def _levels_and_associated(tif: Any, path: Path) -> tuple[list[Any], dict[str, Any]]:
    """Pyramid pages (level 0 first) and loaders of label/macro/thumbnail images."""
    base = tif.series[0]
    pages = [level.keyframe for level in base.levels]
    associated: dict[str, Any] = {}
    rows0, cols0 = base.shape[:2]
    for series in tif.series[1:]:
        name = (series.name or "").strip().lower()
        if name in _ASSOCIATED:
            associated[name] = _SeriesLoader(series, path, name)
        elif len(base.levels) == 1 and _is_reduction(series.shape, base.shape):
            # generic pyramids (e.g. libvips without SubIFDs): reduced pages after level 0
            pages.append(series.levels[0].keyframe)
        elif series.shape[-1] in (3, 4) or len(series.shape) == 2:
            key = name or f"image{len(associated)}"
            associated[key] = _SeriesLoader(series, path, key)
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

    def __init__(self, series: Any, path: Path, name: str) -> None:
        self._series = series
        self._where = f"{path}: the {name} image"
        self.shape = tuple(int(n) for n in series.shape)

    def __call__(self) -> Any:
        guard_allocation(self.shape, self._series.dtype, self._where, "it is too large to decode")
        with _TIFFFILE_LOG.capture(), np.errstate(all="ignore"):
            try:
                return self._series.asarray()
            except Exception as exc:  # a damaged label or macro page
                raise CorruptSlideError(f"{self._where} fails to decode ({one_line(exc)}).") from exc


def _check_not_truncated(path: Path, readers: list[TiffLevelReader], size: int, on_error: OnError) -> str:
    """Raise if tiles lie past the end of the file; reading around damage, mark them missing and say so."""
    past = [reader.tiles_past(size) for reader in readers]
    if not any(len(p) for p in past):
        return ""
    level = next(i for i, p in enumerate(past) if len(p))
    end = readers[level].end_of_data()
    if on_error == "raise":
        raise CorruptSlideError(
            f"{path}: the file is truncated: level {level} has tiles up to byte {end:,} but the "
            f"file has only {size:,} bytes. The copy or download was interrupted; copy the slide again."
        )
    for reader, missing in zip(readers, past):
        reader.mark_missing(missing)
    counts = ", ".join(
        f"level {i}: {len(p):,} of {readers[i].tile_count:,}" for i, p in enumerate(past) if len(p)
    )
    return (
        f"{path}: the file is truncated at byte {size:,} ({counts} tiles lie past its end); those tiles are "
        "read as background (white). Copy the slide again for complete results."
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
