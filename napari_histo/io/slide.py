"""``open_slide``: whole-slide images as lazy pyramids, in micrometres.

Nothing is decoded when a slide opens: the file's directory is parsed, the
tile tables are checked against the file size, and each level becomes

* a zarr array from tifffile's ``aszarr`` (``Slide.levels``) for interop, and
* a tile reader that decodes each compressed tile once, used by
  :meth:`Slide.read_region` and :meth:`Slide.to_dask` (the fast path).
"""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import re
import stat
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core._image import PixelLayout, to_rgb8
from napari_histo.core.memory import check_allocation, format_bytes
from napari_histo.errors import (
    CorruptSlideError,
    FileAccessError,
    HistoError,
    InvalidParameterError,
    SlideNotFoundError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from napari_histo.io._metadata import Calibration
from napari_histo.io._slide_parts import LevelInfo, SlideParts
from napari_histo.io._tiff_pyramid import open_tiff, quiet_tifffile
from napari_histo.io._tile_reader import (
    ArrayLevel,
    DownsampledLevel,
    LevelReader,
    OnError,
    SlideDamageWarning,
    SlideWarning,
    TileCache,
    guard_allocation,
    one_line,
)

__all__ = [
    "BACKENDS",
    "SLIDE_EXTENSIONS",
    "LevelInfo",
    "Slide",
    "SlideDamageWarning",
    "SlideWarning",
    "open_slide",
]

#: File name endings the reader accepts (lower case).
#: Vendor formats read through OpenSlide (the ``openslide`` extra), by file name ending
#: (Philips TIFF is found by content; a .dcm file is one instance of a DICOM slide's folder).
OPENSLIDE_EXTENSIONS = (".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm")
#: File name endings that name one slide each (lower case): what folders of slides are searched for.
SLIDE_EXTENSIONS = (
    ".svs", ".ndpi", ".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf8", ".qptiff",
    ".png", ".jpg", ".jpeg", *(ext for ext in OPENSLIDE_EXTENSIONS if ext != ".dcm"),
)  # fmt: skip

# A single-level image wider or taller than this gets lazily computed levels so
# that napari can show it zoomed out without decoding every pixel at once.
_LAZY_PYRAMID_ABOVE_PX = 4096
_LAZY_PYRAMID_DOWN_TO_PX = 1024


class _LazyLevels:
    """The slide's one mutable part: ``Slide.levels``, built on first access."""

    __slots__ = ("arrays",)

    def __init__(self) -> None:
        self.arrays: list[Any] | None = None


@dataclass(frozen=True, eq=False)
class Slide:
    """An open whole-slide image.  Use :func:`open_slide` to make one.

    A ``Slide`` is immutable: :func:`open_slide` builds it once with its final
    levels (including computed ones), calibration and tile cache, and assigning
    to any attribute raises ``dataclasses.FrozenInstanceError``.  Two slides are
    equal only when they are the same object.

    Attributes
    ----------
    path : Path
        The slide file (or DICOM folder); for a URL, a path holding only the
        URL's file name (``source`` is what to open again).
    format : str
        ``aperio-svs``, ``hamamatsu-ndpi``, ``ome-tiff``, ``tiff``, ``png`` or ``jpeg``
        (tifffile back-end); ``mirax-mrxs``, ``leica-scn``, ``ventana-bif``,
        ``philips-tiff``, ``dicom`` ... (OpenSlide and wsidicom back-ends).
    vendor : str or None
    mpp : float or None
        Level-0 micrometres per pixel; ``None`` when the file has none and
        none was given.
    mpp_source : str
        Where ``mpp`` came from (a metadata field, ``"user"``, or ``"none"``).
    magnification : float or None
        Objective power recorded by the scanner.
    levels : list
        Level 0 first, each (rows, cols, samples): zarr arrays for levels stored
        in the file, dask arrays for levels computed from a single-level image.
    level_info : tuple of LevelInfo
    properties : dict
        Vendor metadata as strings.
    pixel_layout : str
        How the file stores its pixels (``RGB 8-bit``, ``RGBA 8-bit``, ``grayscale 16-bit`` ...).
        Levels always read as 8-bit RGB: :func:`open_slide` converts the other
        layouts it can (with a :class:`SlideWarning`) and refuses the rest.
    backend : str
        What reads the pixels: ``tifffile``, ``openslide`` or ``wsidicom`` (see :data:`BACKENDS`).
    source : str
        The path or URL the slide was opened from, as given.
    """

    path: Path
    format: str
    vendor: str | None
    mpp: float | None
    mpp_source: str
    magnification: float | None
    level_info: tuple[LevelInfo, ...]
    properties: dict[str, str]
    _readers: tuple[LevelReader, ...] = field(repr=False)
    _zarr_factory: Callable[[int], Any] | None = field(default=None, repr=False, kw_only=True)
    _associated: Mapping[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    _closers: tuple[Callable[[], Any], ...] = field(default=(), repr=False, kw_only=True)
    _cache: TileCache | None = field(default=None, repr=False, kw_only=True)
    pixel_layout: str = field(default="RGB 8-bit", kw_only=True)
    backend: str = field(default="tifffile", kw_only=True)
    source: str = field(default="", kw_only=True)
    _token: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False, init=False)
    _lazy: _LazyLevels = field(default_factory=_LazyLevels, repr=False, init=False)

    def __post_init__(self) -> None:
        # normalise sequences to tuples so that no level can be added or removed later
        object.__setattr__(self, "level_info", tuple(self.level_info))
        object.__setattr__(self, "_readers", tuple(self._readers))
        object.__setattr__(self, "_closers", tuple(self._closers))
        if not self.source:
            object.__setattr__(self, "source", str(self.path))
        if len(self.level_info) != len(self._readers) or not self._readers:
            raise ValueError(
                f"a slide needs one reader per level, got {len(self._readers)} readers "
                f"for {len(self.level_info)} levels"
            )

    # -- geometry -----------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (rows, cols)."""
        return self.level_info[0].shape[0], self.level_info[0].shape[1]

    @property
    def level_count(self) -> int:
        return len(self.level_info)

    @property
    def level_downsamples(self) -> list[float]:
        return [info.downsample for info in self.level_info]

    @property
    def levels(self) -> list[Any]:
        """Pyramid levels as arrays, level 0 first (see class docstring)."""
        if self._lazy.arrays is None:
            self._lazy.arrays = [
                self._zarr_factory(i)
                if self._zarr_factory is not None and self.level_info[i].stored
                else self.to_dask(i)
                for i in range(self.level_count)
            ]
        return self._lazy.arrays

    def level_mpp(self, level: int) -> float | None:
        """µm/px of ``level`` (``None`` without level-0 µm/px)."""
        return None if self.mpp is None else self.mpp * self.level_downsamples[level]

    def best_level_for_downsample(self, downsample: float) -> int:
        """Deepest level whose downsample does not exceed ``downsample`` (+1 %)."""
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * 1.01:
                best = i
        return best

    # -- pixels ---------------------------------------------------------------------
    def read_region(
        self,
        origin_rc: tuple[int, int],
        level: int,
        size_rc: tuple[int, int],
        *,
        fill: int = 255,
    ) -> np.ndarray:
        """Pixels of a rectangle, like OpenSlide's ``read_region`` but in (row, col).

        Parameters
        ----------
        origin_rc : (int, int)
            Top-left corner in **level-0** pixel coordinates (row, col).
        level : int
            Pyramid level to read from.
        size_rc : (int, int)
            Output size in **level** pixels (rows, cols).
        fill : int
            Value for the part of the rectangle outside the slide (255 = white).

        Returns
        -------
        ndarray, shape (rows, cols, samples), the slide's dtype (uint8 for RGB).
        """
        if not 0 <= level < self.level_count:
            raise IndexError(f"level {level} does not exist; this slide has levels 0-{self.level_count - 1}")
        rows, cols = (int(n) for n in size_rc)
        if rows < 0 or cols < 0:
            raise ValueError(f"size_rc must be non-negative, got {size_rc}")
        ds = self.level_downsamples[level]
        r0 = int(math.floor(origin_rc[0] / ds))
        c0 = int(math.floor(origin_rc[1] / ds))
        reader = self._readers[level]
        guard_allocation(
            (rows, cols, *reader.shape[2:]),
            reader.dtype,
            f"{self.path.name}: a region of {cols:,} x {rows:,} px of level {level}",
            "read a smaller region, or a coarser level (tiles: a coarser --mpp or a smaller --tile-px; "
            "models: one with smaller patches)",
        )
        out = np.full((rows, cols, *reader.shape[2:]), fill, dtype=reader.dtype)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, reader.shape[0]), min(c0 + cols, reader.shape[1])
        if rr1 > rr0 and cc1 > cc0:
            out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = reader.read_window(rr0, cc0, rr1, cc1)
        return out

    def reserve_tile_rows(self, level: int, rows: int = 2) -> int:
        """Grow the decoded-tile cache to hold ``rows`` full rows of ``level``'s tiles.

        Patch grids whose patches do not align with the file's tiles (224 px
        patches on 256 px tiles) touch each tile row from two patch rows; with
        two rows cached every tile is decoded once.  Returns the cache budget in bytes.
        """
        if self._cache is None:
            return 0
        info = self.level_info[level]
        tile_rows = info.tile_shape[0] if info.tile_shape else 512
        samples = info.shape[2] if len(info.shape) > 2 else 1
        needed = rows * tile_rows * info.shape[1] * samples * self._readers[level].dtype.itemsize
        self._cache.max_bytes = max(self._cache.max_bytes, int(needed * 1.1))
        return self._cache.max_bytes

    def to_dask(self, level: int | None = None, *, chunk_px: int = 512) -> Any:
        """Dask view(s) of the pyramid chunked on the file's tile layout.

        Tiles smaller than ``chunk_px`` are grouped into chunks of about
        ``chunk_px``; strips (as in NDPI) become ~``chunk_px`` square chunks.
        Returns one dask array for ``level``, or a list for all levels.
        """
        if level is None:
            return [self._dask_level(i, chunk_px=chunk_px) for i in range(self.level_count)]
        return self._dask_level(level, chunk_px=chunk_px)

    def _dask_level(self, level: int, *, chunk_px: int = 512) -> Any:
        import dask.array as da

        reader = self._readers[level]
        chunks = _dask_chunks(reader.chunk_shape, reader.shape, chunk_px)
        name = f"histo-{self._token}-L{level}-{'x'.join(map(str, chunks))}"
        return da.from_array(reader, chunks=chunks, lock=False, asarray=False, fancy=False, name=name)

    def thumbnail(self, max_px: int = 1024) -> np.ndarray:
        """An RGB overview whose longer side is at most ``max_px`` pixels."""
        level = self.level_count - 1
        for i in range(self.level_count):
            if max(self.level_info[i].shape[:2]) <= max(max_px, 1) * 4:
                level = i
                break
        reader = self._readers[level]
        image = reader.read_window(0, 0, reader.shape[0], reader.shape[1])
        return _shrink_to(image, max_px)

    @property
    def filled_tiles(self) -> int:
        """Stored tiles read as background so far, damaged or missing (with ``on_error="fill"``)."""
        return sum(
            reader.filled_tiles for reader in self._readers if reader.__class__ is not DownsampledLevel
        )

    # -- associated images ----------------------------------------------------------
    @property
    def associated_names(self) -> list[str]:
        """Names of images stored beside the pyramid (label, macro, thumbnail ...)."""
        return sorted(self._associated)

    def associated_image(self, name: str) -> np.ndarray:
        """Decode an associated image such as ``"label"`` or ``"macro"``."""
        key = name.lower()
        if key not in self._associated:
            raise KeyError(
                f"{self.path.name} has no associated image {name!r}; it has {self.associated_names}"
            )
        return np.asarray(self._associated[key]())

    # -- summary and lifetime ---------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """A JSON-ready description (what ``histo info --json`` prints)."""
        return {
            "path": self.source,
            "backend": self.backend,
            "format": self.format,
            "vendor": self.vendor,
            "dimensions_rc": list(self.dimensions),
            "pixel_layout": self.pixel_layout,
            "mpp": self.mpp,
            "mpp_source": self.mpp_source,
            "magnification": self.magnification,
            "levels": [info.as_dict() for info in self.level_info],
            "associated_images": {name: list(self._associated_shape(name)) for name in self.associated_names},
        }

    def _associated_shape(self, name: str) -> tuple[int, ...]:
        loader = self._associated[name]
        return tuple(getattr(loader, "shape", ()))

    def close(self) -> None:
        """Release the file (the closers are idempotent: closing twice is harmless)."""
        for close in reversed(self._closers):
            close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Request:
    """What ``open_slide`` was asked to open: a local path or a URL, and how to read it."""

    source: str  # the path or URL as given
    path: Path  # the local path; for a URL, a path of its file name only (for messages and names)
    url: str | None
    cache: TileCache
    cache_bytes: int
    on_error: OnError


@dataclass(frozen=True)
class _Backend:
    """How one back-end opens a slide, and which slides it takes when the back-end is picked automatically."""

    open: Callable[[_Request], SlideParts]
    claims: Callable[[_Request], bool]


def _open_builtin(req: _Request) -> SlideParts:
    """tifffile for the TIFF family (local, or remote through fsspec), imagecodecs for PNG/JPEG."""
    if req.url is not None:
        return _open_remote_tiff(req)
    kind = sniff_format(req.path)
    if kind == "tiff":
        return open_tiff(req.path, req.cache, req.on_error)
    return _open_plain_image(req.path, kind)


def _open_remote_tiff(req: _Request) -> SlideParts:
    from napari_histo.io._remote import RemoteFile

    assert req.url is not None
    remote = RemoteFile(req.url)
    try:
        head = remote.pread(16, 0)
        if not any(head.startswith(magic) for magic, kind in _MAGIC.items() if kind == "tiff"):
            raise UnsupportedFormatError(
                f"{req.url}: not a TIFF file (it starts with {head[:8]!r}). Slides are read from URLs in the "
                "TIFF family (SVS, NDPI, OME-TIFF, pyramidal TIFF); download other files and open the local "
                "copy, or give a DICOMweb series URL (.../studies/<UID>/series/<UID>)."
            )
        return open_tiff(req.path, req.cache, req.on_error, remote=remote)
    except BaseException:
        remote.close()
        raise


def _open_openslide(req: _Request) -> SlideParts:
    from napari_histo.io._openslide_parts import open_openslide

    if req.url is not None:
        raise InvalidParameterError(
            f"{req.url}: the OpenSlide back-end reads local files only. Download the slide, or read the URL "
            "with the tifffile back-end (TIFF family) or wsidicom (DICOMweb)."
        )
    check_slide_file(req.path)
    return open_openslide(req.path, req.cache_bytes)


def _open_wsidicom(req: _Request) -> SlideParts:
    from napari_histo.io._dicom_parts import open_dicom_folder, open_dicomweb

    if req.url is not None:
        return open_dicomweb(req.url)
    folder = req.path
    if not folder.is_dir():  # a .dcm file: its folder holds the slide's other instances
        check_slide_file(folder)
        folder = folder.parent
    return open_dicom_folder(folder)


def _open_omezarr(req: _Request) -> SlideParts:
    from napari_histo.io._omezarr_parts import open_omezarr_parts

    if req.url is not None:
        raise InvalidParameterError(
            f"{req.url}: OME-Zarr slides are read from local folders; copy the .ome.zarr folder here."
        )
    return open_omezarr_parts(req.path, req.cache, req.on_error)


def _claims_omezarr(req: _Request) -> bool:
    from napari_histo.io._omezarr_parts import is_omezarr

    return req.url is None and is_omezarr(req.path)


def _claims_openslide(req: _Request) -> bool:
    if req.url is not None:
        return False
    name = req.path.name.lower()
    if name.endswith(OPENSLIDE_EXTENSIONS):
        return True
    # Philips TIFF is a TIFF that tifffile reads without its sparse-tile layout; OpenSlide reads it right
    return name.endswith((".tif", ".tiff")) and _is_philips_tiff(req.path)


def _claims_wsidicom(req: _Request) -> bool:
    from napari_histo.io._dicom_parts import is_dicom_folder

    if req.url is not None:
        return "/dicomweb" in req.url.lower() or bool(
            re.search(r"/studies/[0-9.]+/series/[0-9.]+/?$", req.url)
        )
    if req.path.suffix.lower() == ".dcm":  # one file of a DICOM slide: wsidicom reads its folder
        return importlib.util.find_spec("wsidicom") is not None
    return is_dicom_folder(req.path)


#: The dispatch point: each back-end's opener and the slides it claims when ``backend="auto"``,
#: tried in this order (the first that claims a slide opens it; ``tifffile`` takes the rest).
#: Another back-end is one more line here.
_BACKENDS: dict[str, _Backend] = {
    "omezarr": _Backend(_open_omezarr, claims=_claims_omezarr),
    "wsidicom": _Backend(_open_wsidicom, claims=_claims_wsidicom),
    "openslide": _Backend(_open_openslide, claims=_claims_openslide),
    "tifffile": _Backend(_open_builtin, claims=lambda req: True),
}

#: Back-ends ``open_slide`` reads with (``backend=``, ``--backend``); ``auto`` picks one by content.
BACKENDS = ("auto", *sorted(_BACKENDS))


def open_slide(
    path: str | os.PathLike[str],
    mpp: float | None = None,
    *,
    on_error: OnError = "raise",
    cache_bytes: int = 32 * 2**20,
    backend: str = "auto",
    color: str = "raw",
) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path : path-like or str
        An Aperio SVS (JPEG or JPEG 2000), Hamamatsu NDPI, OME-TIFF, generic
        pyramidal or single-level TIFF, or a PNG/JPEG image; with the
        ``openslide`` extra also MRXS, SCN, BIF, Philips TIFF, VMS/VMU,
        SVSlide, Trestle and DICOM files; with the ``dicom`` extra a folder of
        DICOM files or a DICOMweb series URL
        (``https://HOST/.../studies/<UID>/series/<UID>``).  An ``http(s)://``
        (``s3://``, ``gs://`` with s3fs/gcsfs) URL of a TIFF-family file is read
        in blocks through fsspec, never downloaded whole (``remote`` extra).
    mpp : float, optional
        Level-0 µm/px to use instead of (or in the absence of) the file's.
    on_error : {"raise", "fill"}
        For tiles that fail to decode later: raise ``CorruptTileError``, or warn
        and show them as background (tifffile back-end).
    cache_bytes : int
        Budget of the decoded-tile cache shared by the slide's levels: 32 MiB,
        OpenSlide's default, serves neighbouring reads; inference raises it to two
        tile rows of the level it reads (:meth:`Slide.reserve_tile_rows`).
    color : {"raw", "srgb"}
        ``raw`` (default): the pixels as stored.  ``srgb``: converted to sRGB
        through the file's embedded ICC profile (TIFF tag 34675; SVS files
        often carry one), so colours match across scanners.  Either way
        ``Slide.properties`` says which is shown (``color``, ``icc_profile``,
        ``color_note``).
    backend : {"auto", "tifffile", "omezarr", "openslide", "wsidicom"}
        What reads the slide.  ``auto``: omezarr for OME-Zarr (NGFF) folders, wsidicom for DICOM folders and
        DICOMweb URLs, OpenSlide for the vendor formats only it reads (by file
        name ending: .mrxs .scn .bif .vms .vmu .svslide .dcm, and Philips TIFF
        by content; a single .dcm file goes to wsidicom, which reads its folder,
        when wsidicom is installed), tifffile for the rest, and OpenSlide again
        when tifffile refuses a file that OpenSlide recognises.

    Warns
    -----
    SlideWarning
        The pixels are converted to 8-bit RGB (RGBA, 16-bit, grayscale ...).
    SlideDamageWarning
        With ``on_error="fill"``: the file is truncated or its structure damaged,
        and what is missing reads as background.

    Raises
    ------
    SlideNotFoundError, FileAccessError, UnsupportedFormatError, UnsupportedCompressionError,
    CorruptSlideError, MissingDependencyError (a back-end's extra is not installed),
    InvalidParameterError, MemoryBudgetError (when pixels are read)
    """
    if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
        raise InvalidParameterError(
            f"mpp must be a positive number of micrometres per pixel (e.g. 0.25 for a 40x scan), got {mpp!r}"
        )
    name = str(backend).strip().lower()
    if name not in BACKENDS:
        raise InvalidParameterError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    req = _request(path, TileCache(cache_bytes), cache_bytes, on_error)
    if name == "auto":
        name = next(key for key, entry in _BACKENDS.items() if entry.claims(req))
        parts, name = _open_auto(req, name)
    else:
        parts = _BACKENDS[name].open(req)
    try:
        parts = _with_color(parts, req, color)
        slide = _build_slide(req.path, parts, req.cache, mpp, backend=name, source=req.source)
    except BaseException:
        if parts.close is not None:
            parts.close()
        raise
    for category, message in parts.notes:
        warnings.warn(message, category, stacklevel=2)
    return slide


def _with_color(parts: SlideParts, req: _Request, color: str) -> SlideParts:
    """The parts showing raw pixels or sRGB through the file's ICC profile (local TIFF files carry one)."""
    from napari_histo.io._icc import apply_color, icc_profile_of

    profile = None
    if req.url is None and req.path.is_file() and parts.format not in ("png", "jpeg"):
        try:  # TIFF-family files carry the profile in tag 34675; other files give None
            with quiet_tifffile():  # damage was reported when the slide was opened
                profile = icc_profile_of(req.path)
        except (OSError, ValueError, KeyError, IndexError):  # a damaged header read around: no profile
            profile = None
    return apply_color(parts, profile, color)


def _request(path: str | os.PathLike[str], cache: TileCache, cache_bytes: int, on_error: OnError) -> _Request:
    from napari_histo.io._remote import is_url, url_name

    if is_url(path):
        url = str(path)
        return _Request(url, Path(url_name(url)), url, cache, cache_bytes, on_error)
    local = Path(path)
    from napari_histo.io._dicom_parts import is_dicom_folder
    from napari_histo.io._omezarr_parts import is_omezarr

    if not (is_dicom_folder(local) or is_omezarr(local)):  # slides stored as folders
        check_slide_file(local)
    return _Request(str(local), local, None, cache, cache_bytes, on_error)


def _open_auto(req: _Request, name: str) -> tuple[SlideParts, str]:
    """Open with back-end ``name``; a file the built-in reader refuses goes to OpenSlide if it knows it."""
    try:
        return _BACKENDS[name].open(req), name
    except (UnsupportedFormatError, UnsupportedCompressionError) as refused:
        if name != "tifffile" or req.url is not None or not _openslide_may_read(req.path):
            raise
        try:
            parts = _BACKENDS["openslide"].open(req)
        except HistoError:  # OpenSlide knows the format but not this file either: the first reason stands
            raise refused from None
        try:  # OpenSlide opens some TIFFs it cannot decode: read one pixel of the smallest level now
            parts.readers[-1].read_window(0, 0, 1, 1)
        except HistoError:
            if parts.close is not None:
                parts.close()
            raise refused from None
        return parts, "openslide"


def _openslide_may_read(path: Path) -> bool:
    """Whether a file the built-in reader refused should go to OpenSlide.

    Vendor files OpenSlide recognises do; a generic TIFF only when its pixels
    are 8-bit gray, RGB or YCbCr (e.g. stored as separate colour planes):
    float, CMYK or 2-channel pixels keep the built-in reader's refusal and its fix,
    as OpenSlide would fail on them or show them wrong.
    """
    from napari_histo.io._openslide_parts import openslide_vendor

    vendor = openslide_vendor(path)
    if vendor is None:
        return False
    if vendor != "generic-tiff":
        return True
    import tifffile

    from napari_histo.io._tiff_pyramid import _TIFFFILE_LOG

    with _TIFFFILE_LOG.capture(), np.errstate(all="ignore"):
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                photometric = getattr(page.photometric, "name", str(page.photometric)).lower()
                return (
                    int(page.bitspersample) == 8
                    and int(page.samplesperpixel) in (1, 3)
                    and photometric in ("minisblack", "rgb", "ycbcr")
                )
        except Exception:  # noqa: BLE001 - unreadable: the built-in reader's refusal stands
            return False


def _is_philips_tiff(path: Path) -> bool:
    """Whether ``path`` is a Philips TIFF (an XML ImageDescription from Philips' DPUfsImport)."""
    if importlib.util.find_spec("openslide") is None:  # without OpenSlide the built-in reader tries it
        return False
    import tifffile

    from napari_histo.io._tiff_pyramid import _TIFFFILE_LOG

    # tifffile's log lines about a damaged file are the built-in reader's to report, once
    with _TIFFFILE_LOG.capture(), np.errstate(all="ignore"):
        try:
            with tifffile.TiffFile(path) as tif:
                return bool(tif.pages.first.is_philips)
        except Exception:  # noqa: BLE001 - not a TIFF, or a damaged one: the built-in reader says why
            return False


def check_slide_file(path: Path) -> None:
    """Raise the project's error when ``path`` is not a readable regular file (before opening it).

    A FIFO would block ``open`` forever and a directory or a dangling or looping
    link would give an OS error that names the wrong problem.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise SlideNotFoundError(
                f"{path}: is a symbolic link to {os.readlink(path)}, which does not exist. Point the link "
                "at the slide file, or pass the slide file itself."
            ) from None
        raise SlideNotFoundError(
            f"{path}: no such file. Check the path (absolute: {path.absolute()})."
        ) from None
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise SlideNotFoundError(
            f"{path}: is a directory, not a slide file (nor a folder of DICOM files). Pass the slide file "
            "itself; for MIRAX pass the .mrxs file beside this folder (read through OpenSlide: pip install "
            "'napari-histo[openslide]'); a DICOM slide's folder must hold its .dcm files (read through "
            "wsidicom: pip install 'napari-histo[dicom]')."
        )
    if not stat.S_ISREG(info.st_mode):
        what = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "a device"
        )
        raise SlideNotFoundError(
            f"{path}: is {what}, not a regular file; slides are read from files. Save or copy the slide "
            "to a file first."
        )
    if not os.access(path, os.R_OK):
        raise _os_error(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path)))


def _os_error(path: Path, exc: OSError) -> Exception:
    """The project's error for an OS error met opening ``path``."""
    if exc.errno == errno.ELOOP:
        return SlideNotFoundError(
            f"{path}: is a symbolic link that loops (it points back to itself through other links); "
            "point it at the slide file, or pass the slide file itself."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileAccessError(
            f"{path}: permission denied: this user may not read the file (or a folder on its path). "
            f"Ask its owner, or make it readable: chmod a+r '{path}'."
        )
    if exc.errno == errno.ENOTDIR:
        return SlideNotFoundError(f"{path}: a part of the path before the file name is a file, not a folder.")
    if exc.errno == errno.ENAMETOOLONG:
        return SlideNotFoundError(f"{str(path)[:80]}...: the path is too long for this system.")
    if exc.errno == errno.EISDIR:
        return SlideNotFoundError(f"{path}: is a directory, not a slide file. Pass the slide file itself.")
    return CorruptSlideError(
        f"{path}: cannot be read ({exc.strerror or one_line(exc)}). Check the disk or network share, "
        "or copy the slide again."
    )


def _build_slide(
    path: Path,
    parts: SlideParts,
    cache: TileCache,
    mpp: float | None,
    *,
    backend: str = "tifffile",
    source: str = "",
) -> Slide:
    """The one place a :class:`Slide` is constructed: computed levels and µm/px decided first."""
    level_info, readers = _with_lazy_levels(parts.level_info, parts.readers)
    calibration = parts.calibration
    if mpp is not None:  # the user's µm/px wins over the file's
        calibration = Calibration(float(mpp), calibration.magnification, "user")
    return Slide(
        path=path,
        format=parts.format,
        vendor=parts.vendor,
        mpp=calibration.mpp,
        mpp_source=calibration.source,
        magnification=calibration.magnification,
        level_info=level_info,
        properties=dict(parts.properties),
        _readers=readers,
        _zarr_factory=parts.zarr_factory,
        _associated=dict(parts.associated),
        _closers=() if parts.close is None else (parts.close,),
        _cache=cache,
        pixel_layout=parts.pixel_layout,
        backend=backend,
        source=source,
    )


_MAGIC = {
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",
    b"MM\x00+": "tiff",
    b"\x89PNG": "png",
    b"\xff\xd8\xff": "jpeg",
}


def sniff_format(path: Path) -> str:
    """``tiff``, ``png`` or ``jpeg`` from the file's first bytes; raises otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if not head:
        raise CorruptSlideError(f"{path}: the file is empty (0 bytes). Copy the slide again.")
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    raise UnsupportedFormatError(
        f"{path}: not a TIFF, PNG or JPEG file (it starts with {head[:8]!r}), and not a format OpenSlide "
        "reads. napari-histo reads Aperio SVS, Hamamatsu NDPI, OME-TIFF and pyramidal TIFF slides, and "
        "through OpenSlide (pip install 'napari-histo[openslide]') MRXS, SCN, BIF, Philips TIFF, VMS and "
        "DICOM; convert other formats (e.g. CZI) to pyramidal OME-TIFF with `bfconvert` or "
        "`vips tiffsave --tile --pyramid`."
    )


# Decoded bytes per file byte a PNG (deflate: at most ~1,032:1) or a baseline JPEG (~1 bit per
# 8x8 block) can reach; a header claiming more pixels than that is damaged.
_MAX_PLAIN_RATIO = {"png": 1_100, "jpeg": 6_000}


def _open_plain_image(path: Path, kind: str) -> SlideParts:
    import imagecodecs

    data = path.read_bytes()
    try:
        if kind == "png":
            shape, dtype, layout = _png_header(data)
            decode = imagecodecs.png_decode
        else:
            shape, dtype, layout = _jpeg_shape(data)
            decode = imagecodecs.jpeg8_decode
    except ValueError as exc:
        raise CorruptSlideError(
            f"{path}: the {kind.upper()} header is damaged ({exc}). Copy the image again."
        ) from exc
    rows, cols = shape[:2]
    if rows == 0 or cols == 0:
        raise CorruptSlideError(
            f"{path}: the {kind.upper()} header says the image is {cols} x {rows} px: it has no pixels. "
            "Copy the image again."
        )
    claimed = math.prod(shape) * np.dtype(dtype).itemsize
    if claimed > _MAX_PLAIN_RATIO[kind] * len(data):
        raise CorruptSlideError(
            f"{path}: the {kind.upper()} header claims {cols:,} x {rows:,} px ({format_bytes(claimed)} of "
            f"pixels) but the file has only {len(data):,} bytes, far too few: the header is damaged. "
            "Copy the image again."
        )
    problem = layout.problem()
    if problem is not None:
        raise UnsupportedFormatError(f"{path} stores {layout.name} pixels: {problem[0]}. {problem[1]}.")

    def load() -> np.ndarray:
        check_allocation(  # the decoded pixels and their 8-bit RGB copy
            (rows, cols, math.prod(shape[2:]) * np.dtype(dtype).itemsize + (0 if layout.is_rgb8 else 3)),
            np.uint8,
            f"{path.name}: decoding the whole image ({cols:,} x {rows:,} px; PNG and JPEG files are not "
            "tiled, so they are decoded at once)",
            "convert it to a tiled pyramid, e.g. vips tiffsave IN OUT.tif --tile --pyramid "
            "--compression jpeg",
        )
        try:
            pixels = np.asarray(decode(path.read_bytes()))
        except Exception as exc:
            raise CorruptSlideError(
                f"{path}: the {kind.upper()} data fails to decode ({one_line(exc)}); the file is damaged. "
                "Copy the image again."
            ) from exc
        if pixels.shape[:2] != (rows, cols):
            raise CorruptSlideError(
                f"{path}: the {kind.upper()} header says {cols:,} x {rows:,} px but the data decodes to "
                f"{pixels.shape[1]:,} x {pixels.shape[0]:,} px; the file is damaged. Copy the image again."
            )
        samples = pixels.shape[2] if pixels.ndim == 3 else 1
        if samples != layout.samples:  # e.g. a palette with transparency decodes to RGBA
            extra = "alpha" if samples in (2, 4) else ""
            photometric = layout.photometric if samples >= 3 else "minisblack"
            return to_rgb8(pixels, PixelLayout(samples, pixels.dtype.name, photometric, extra, layout.bits))
        return to_rgb8(pixels, layout)

    reader = ArrayLevel(load, (rows, cols, 3), np.uint8)
    info = LevelInfo(reader.shape, 1.0, None, kind.upper())
    notes: tuple[tuple[type[Warning], str], ...] = ()
    if not layout.is_rgb8:
        notes = ((SlideWarning, _conversion_note(path, layout)),)
    return SlideParts(
        kind, None, Calibration(), (info,), {}, (reader,), pixel_layout=layout.name, notes=notes
    )


def _conversion_note(path: Path, layout: PixelLayout) -> str:
    return f"{path} stores {layout.name} pixels; they are read as 8-bit RGB: {layout.conversion()}."


def _png_header(data: bytes) -> tuple[tuple[int, ...], Any, PixelLayout]:
    if len(data) < 26 or data[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    bit_depth, color_type = data[24], data[25]
    samples = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color_type)
    if samples is None:
        raise ValueError(f"unknown PNG colour type {color_type}")
    if bit_depth not in (1, 2, 4, 8, 16):
        raise ValueError(f"unknown PNG bit depth {bit_depth}")
    if color_type == 3:  # palette: the decoder expands it to 8-bit RGB
        bit_depth = 8
    shape = (height, width) if samples == 1 else (height, width, samples)
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    extra = "alpha" if color_type in (4, 6) else ""
    # bit depths below 8 decode to 0..2**bits-1 in uint8
    bits = bit_depth if bit_depth < 8 else 0
    layout = PixelLayout(samples, np.dtype(dtype).name, "minisblack" if samples < 3 else "rgb", extra, bits)
    return shape, dtype, layout


def _jpeg_shape(data: bytes) -> tuple[tuple[int, ...], Any, PixelLayout]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise ValueError(f"bad marker at byte {i}")
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            samples = data[i + 9]
            photometric = {1: "minisblack", 3: "rgb", 4: "separated"}.get(samples, "")
            layout = PixelLayout(samples, "uint8", photometric)
            return ((height, width) if samples == 1 else (height, width, samples)), np.uint8, layout
        i += 2 + length
    raise ValueError("no frame header (SOF) found")


def _with_lazy_levels(
    level_info: tuple[LevelInfo, ...], readers: tuple[LevelReader, ...]
) -> tuple[tuple[LevelInfo, ...], tuple[LevelReader, ...]]:
    """The levels plus, for big single-level images, computed 2x levels down to ~1024 px."""
    if len(level_info) != 1 or max(level_info[0].shape[:2]) <= _LAZY_PYRAMID_ABOVE_PX:
        return level_info, readers
    infos, levels = list(level_info), list(readers)
    reader = readers[0]
    while max(reader.shape[:2]) > _LAZY_PYRAMID_DOWN_TO_PX and min(reader.shape[:2]) >= 2:
        reader = DownsampledLevel(reader, 2)
        ds = level_info[0].shape[0] / reader.shape[0]
        levels.append(reader)
        infos.append(LevelInfo(reader.shape, ds, None, "computed (2x2 mean)", stored=False))
    return tuple(infos), tuple(levels)


def _dask_chunks(tile: tuple[int, int], shape: tuple[int, ...], chunk_px: int) -> tuple[int, ...]:
    rows = _chunk_len(tile[0], shape[0], chunk_px)
    cols = _chunk_len(tile[1], shape[1], chunk_px)
    return (rows, cols, *shape[2:])


def _chunk_len(tile_len: int, size: int, target: int) -> int:
    if tile_len >= size:  # strips span the whole width: cut them to ~target
        return min(size, target)
    return min(size, tile_len * max(1, round(target / tile_len)))


def _shrink_to(image: np.ndarray, max_px: int) -> np.ndarray:
    rows, cols = image.shape[:2]
    scale = max_px / max(rows, cols)
    if scale >= 1:
        return image
    from skimage.transform import resize

    out_shape = (max(1, round(rows * scale)), max(1, round(cols * scale)), *image.shape[2:])
    small = resize(image, out_shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.rint(small).astype(image.dtype)
