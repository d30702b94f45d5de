"""Array-likes over pyramid levels that decode each compressed tile once.

A :class:`TiffLevelReader` reads the bytes of exactly the TIFF tiles (or
strips) a window touches with positional reads, decodes them in a thread pool
(imagecodecs releases the GIL) and keeps decoded tiles in a byte-bounded LRU
cache shared by all levels of a slide.  It exposes ``shape``, ``dtype``,
``ndim`` and ``__getitem__`` so dask and napari can use it directly.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from napari_histo.core._image import PixelLayout, to_rgb8
from napari_histo.core.memory import BUDGET_ENV, check_allocation
from napari_histo.errors import CorruptTileError, UnsupportedCompressionError

__all__ = [
    "ArrayLevel",
    "DownsampledLevel",
    "LevelReader",
    "SlideDamageWarning",
    "SlideWarning",
    "TiffLevelReader",
    "TileCache",
    "guard_allocation",
]

OnError = Literal["raise", "fill"]

# arrays smaller than this are made without asking for the memory budget (asking costs a system call)
_GUARD_ABOVE_BYTES = 64 * 2**20


class SlideWarning(UserWarning):
    """A slide is read with a fix-up the user should know about (pixels converted, damage filled ...)."""


class SlideDamageWarning(SlideWarning, RuntimeWarning):
    """Part of a slide is damaged or missing and is read as background."""


def guard_allocation(shape: tuple[int, ...], dtype: Any, what: str, fix: str) -> None:
    """:func:`~napari_histo.core.memory.check_allocation` for arrays above 64 MiB (small ones pass).

    With ``$NAPARI_HISTO_MEMORY_BUDGET`` set every array is checked (budgets below 64 MiB work too).
    """
    nbytes = int(np.prod([max(0, int(n)) for n in shape], dtype=np.float64)) * np.dtype(dtype).itemsize
    if nbytes > _GUARD_ABOVE_BYTES or (nbytes and os.environ.get(BUDGET_ENV)):
        check_allocation(shape, dtype, what, fix)


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, at most ``limit`` characters (codec errors can be long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
#: tiles decoded (in parallel) before they are pasted into a window
_PASTE_BATCH = 64


def _decode_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = min(16, os.cpu_count() or 2)
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="histo-decode")
        return _POOL


class TileCache:
    """Thread-safe LRU cache of decoded tiles, bounded in bytes."""

    def __init__(self, max_bytes: int = 32 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> np.ndarray | None:
        with self._lock:
            tile = self._items.get(key)
            if tile is not None:
                self._items.move_to_end(key)
            return tile

    def put(self, key: Any, tile: np.ndarray) -> None:
        if tile.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes


class LevelReader:
    """Common array-like behaviour: ``shape``/``dtype``/``ndim`` and slicing.

    Subclasses implement :meth:`read_window`, which returns the pixels of the
    half-open window ``[r0, r1) x [c0, c1)`` clipped to the level.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    chunk_shape: tuple[int, int]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        rows = key[0] if len(key) > 0 else slice(None)
        cols = key[1] if len(key) > 1 else slice(None)
        rest = key[2:]
        (r0, r1, rstep), (c0, c1, cstep) = (
            _as_range(rows, self.shape[0]),
            _as_range(cols, self.shape[1]),
        )
        window = self.read_window(r0, c0, r1, c1)
        window = window[::rstep, ::cstep]
        if isinstance(rows, (int, np.integer)):
            window = window[0]
            if isinstance(cols, (int, np.integer)):
                window = window[0]
        elif isinstance(cols, (int, np.integer)):
            window = window[:, 0]
        if not rest:
            return window
        index = (Ellipsis, *rest)  # not window[..., *rest]: that syntax needs Python 3.11
        return window[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read_window(0, 0, self.shape[0], self.shape[1])
        return out if dtype is None else out.astype(dtype)

    @property
    def filled_tiles(self) -> int:
        """Tiles read as background because they are damaged or missing (see :class:`TiffLevelReader`)."""
        return 0

    def _window(self, r0: int, c0: int, r1: int, c1: int, name: str) -> np.ndarray:
        """An empty output array for a window, refused before allocating when it would not fit in memory."""
        shape = (max(0, r1 - r0), max(0, c1 - c0), *self.shape[2:])
        guard_allocation(
            shape,
            self.dtype,
            f"{name}: a window of {shape[1]:,} x {shape[0]:,} px",
            "read a smaller region or a coarser level (a coarser --mpp, or larger tiles at lower resolution)",
        )
        return np.empty(shape, self.dtype)


def _as_range(index: Any, size: int) -> tuple[int, int, int]:
    if isinstance(index, (int, np.integer)):
        i = int(index) + (size if index < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"index {index} is out of bounds for axis with size {size}")
        return i, i + 1, 1
    if isinstance(index, slice):
        start, stop, step = index.indices(size)
        if step < 1:
            raise IndexError("slide levels support only positive slice steps")
        return start, max(start, stop), step
    raise IndexError(f"unsupported index {index!r}; use integers or slices")


class TiledLevel(LevelReader):
    """A level stored as a grid of ``chunk_shape`` tiles: a window is pasted from the tiles it touches.

    Subclasses give ``_tile(ty, tx)`` (decoded, cached) and set ``_path`` and ``_key`` (for messages);
    several tiles are decoded in parallel on a shared thread pool.
    """

    chunk_shape: tuple[int, int]
    _path: Any
    _key: tuple[Any, ...]

    def _tile(self, ty: int, tx: int) -> np.ndarray:
        raise NotImplementedError

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        rows, cols = self.shape[0], self.shape[1]
        r0, c0 = max(0, r0), max(0, c0)
        r1, c1 = min(rows, r1), min(cols, c1)
        out = self._window(r0, c0, r1, c1, f"{self._path} level {self._key[-1]}")
        if out.size == 0:
            return out
        th, tw = self.chunk_shape
        tiles = [
            (ty, tx)
            for ty in range(r0 // th, (r1 - 1) // th + 1)
            for tx in range(c0 // tw, (c1 - 1) // tw + 1)
        ]
        # decoded a batch at a time and pasted: a whole level read (a tissue-mask view) never holds its
        # decoded tiles and the output at once
        for start in range(0, len(tiles), _PASTE_BATCH):
            batch = tiles[start : start + _PASTE_BATCH]
            if len(batch) == 1:
                decoded = [self._tile(*batch[0])]
            else:
                decoded = list(_decode_pool().map(lambda t: self._tile(*t), batch))
            for (ty, tx), tile in zip(batch, decoded):
                y0, x0 = ty * th, tx * tw
                ys, xs = max(r0, y0), max(c0, x0)
                ye, xe = min(r1, y0 + tile.shape[0]), min(c1, x0 + tile.shape[1])
                out[ys - r0 : ye - r0, xs - c0 : xe - c0] = tile[ys - y0 : ye - y0, xs - x0 : xe - x0]
        return out


class TiffLevelReader(TiledLevel):
    """One pyramid level stored as a tiled or stripped TIFF page.

    Parameters
    ----------
    page : tifffile.TiffPage
        The level's key page (``series.levels[i].keyframe``).
    source : object
        Owner of the open file with an ``fd`` attribute (an OS file descriptor
        opened for reading); positional reads keep it safe to share between
        threads, and holding the owner keeps the file open while this reader
        (e.g. inside a napari layer's dask array) lives.
    cache : TileCache
        Shared decoded-tile cache.
    key : object
        Distinguishes this level's tiles in the shared cache.
    path : str
        File name used in error messages.
    on_error : {"raise", "fill"}
        What to do with a tile that fails to decode: raise
        :class:`CorruptTileError`, or warn once and paint it with ``fill``.
    fill : int
        Value for missing (zero-byte) or failed tiles; 255 is slide background.
    layout : PixelLayout, optional
        The page's stored layout when it is not 8-bit RGB: each decoded tile is
        converted with :func:`~napari_histo.core._image.to_rgb8` (and the level reads as RGB).
    """

    def __init__(
        self,
        page: Any,
        source: Any,
        cache: TileCache,
        key: Any,
        path: str,
        on_error: OnError = "raise",
        fill: int = 255,
        layout: PixelLayout | None = None,
    ):
        self._page = page
        self._source = source
        self._cache = cache
        self._key = key
        self._path = path
        self.on_error: OnError = on_error
        self.fill = fill
        self._layout = None if layout is None or layout.is_rgb8 else layout
        self.shape = tuple(int(n) for n in page.shape)
        self.dtype = np.dtype(page.dtype)
        self._stored_dtype = self.dtype
        if self._layout is not None:
            self.shape = (*self.shape[:2], 3)
            self.dtype = np.dtype(np.uint8)
        chunks = page.chunks
        self.chunk_shape = (int(chunks[0]), int(chunks[1]))
        self._grid = (int(page.chunked[0]), int(page.chunked[1]))
        self._offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self._counts = np.asarray(page.databytecounts, dtype=np.int64)
        self._decode = _page_decoder(page, path)
        self._warned = False
        self._lock = threading.Lock()
        self._filled: set[int] = set()
        self._missing = np.zeros(len(self._counts), bool)

    @property
    def filled_tiles(self) -> int:
        """How many tiles were read as background because they are damaged or past the end of the file."""
        return len(self._filled)

    @property
    def tile_count(self) -> int:
        return len(self._counts)

    def tiles_past(self, size: int) -> np.ndarray:
        """Indices of the stored tiles whose bytes end after ``size`` (a truncated file)."""
        return np.flatnonzero((self._counts > 0) & (self._offsets + self._counts > size))

    def mark_missing(self, indices: np.ndarray) -> None:
        """Read tiles ``indices`` as background without trying to decode them (e.g. cut off by truncation)."""
        self._missing[np.asarray(indices, dtype=np.int64)] = True

    def chunk_bytes(self) -> int:
        """Bytes of one decoded tile (or strip) as stored."""
        samples = int(np.prod(self._page.shape[2:])) if len(self._page.shape) > 2 else 1
        return self.chunk_shape[0] * self.chunk_shape[1] * samples * self._stored_dtype.itemsize

    @property
    def compression(self) -> str:
        return _compression_name(self._page.compression)

    def end_of_data(self) -> int:
        """Byte just past the last tile of this level (for truncation checks)."""
        if len(self._offsets) == 0:
            return 0
        return int((self._offsets + self._counts).max())

    def _tile(self, ty: int, tx: int) -> np.ndarray:
        index = ty * self._grid[1] + tx
        cache_key = (self._key, index)
        tile = self._cache.get(cache_key)
        if tile is not None:
            return tile
        tile = self._read_tile(index, ty, tx)
        self._cache.put(cache_key, tile)
        return tile

    def _read_tile(self, index: int, ty: int, tx: int) -> np.ndarray:
        count = int(self._counts[index])
        if count == 0:  # sparse slides leave background tiles out
            return self._fill_tile(ty, tx)
        if self._missing[index]:  # cut off by truncation: counted, warned about once at open
            self._filled.add(index)
            return self._fill_tile(ty, tx)
        guard_allocation(
            (self.chunk_bytes(),),
            np.uint8,
            f"{self._path}: one stored {'tile' if self._page.is_tiled else 'strip'} of level {self._key[-1]} "
            f"({self.chunk_shape[1]:,} x {self.chunk_shape[0]:,} px)",
            "the file stores its image in pieces too large to read one at a time; convert it to a tiled "
            "pyramid, e.g. vips tiffsave IN.tif OUT.tif --tile --pyramid --compression jpeg",
        )
        data = _pread(self._source.fd, count, int(self._offsets[index]))
        try:
            if len(data) != count:
                raise ValueError(f"read {len(data)} of {count} bytes: the file ends early")
            pixels, _, shape = self._decode(data, index)
            if self._layout is not None:
                tile = to_rgb8(np.asarray(pixels).reshape(shape[1], shape[2], -1), self._layout)
            else:
                tile = np.asarray(pixels).reshape(shape[1], shape[2], *self.shape[2:])
        except Exception as exc:  # every codec failure means a corrupt tile
            if isinstance(exc, UnsupportedCompressionError):
                raise
            return self._on_bad_tile(index, ty, tx, exc)
        return tile

    def _fill_tile(self, ty: int, tx: int) -> np.ndarray:
        th, tw = self.chunk_shape
        return np.full((th, tw, *self.shape[2:]), self.fill, self.dtype)

    def _on_bad_tile(self, index: int, ty: int, tx: int, exc: Exception) -> np.ndarray:
        th, tw = self.chunk_shape
        rows, cols = min(self.shape[0], (ty + 1) * th), min(self.shape[1], (tx + 1) * tw)
        where = (
            f"{self._path}: tile {index} of level {self._key[-1]} "
            f"(rows {ty * th}-{rows}, cols {tx * tw}-{cols}, at byte {int(self._offsets[index]):,}) "
            f"fails to decode ({one_line(exc)})"
        )
        if self.on_error == "raise":
            raise CorruptTileError(
                f"{where}. The file is damaged: copy it again from the scanner or archive."
            ) from exc
        with self._lock:  # the first damaged tile of a level warns; the rest are counted
            first = not self._warned
            self._warned = True
            self._filled.add(index)
        if first:
            warnings.warn(
                f"{where}; it is read as background (white). Further damaged tiles of this level are "
                "read as background without a warning each.",
                SlideDamageWarning,
                stacklevel=2,
            )
        return self._fill_tile(ty, tx)


_SEEK_LOCK = threading.Lock()


def _pread(fd: int, count: int, offset: int) -> bytes:
    """Positional read; thread-safe where ``os.pread`` is missing (Windows) via a lock."""
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    with _SEEK_LOCK:  # pragma: no cover - exercised on Windows only
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, count)


def _page_decoder(page: Any, path: str) -> Callable[[bytes, int], Any]:
    """Bind tifffile's decoder for ``page`` with the JPEG tables it needs."""
    import tifffile

    if page.compression not in tifffile.TIFF.DECOMPRESSORS:
        raise _unsupported(page, path, ValueError("no decoder is registered for it"))
    try:
        decode = page.decode
    except Exception as exc:  # tifffile raises for codecs it does not know
        raise _unsupported(page, path, exc) from exc
    kwargs: dict[str, Any] = {"_fullsize": bool(page.is_tiled)}
    if page.compression in {6, 7, 34892, 33007}:  # the JPEG family
        kwargs["jpegtables"] = page.jpegtables
        kwargs["jpegheader"] = page.jpegheader

    def bound(data: bytes, index: int) -> Any:
        try:
            return decode(data, index, **kwargs)
        except (KeyError, NotImplementedError) as exc:
            raise _unsupported(page, path, exc) from exc
        except ValueError as exc:
            if "requires" in str(exc) or "not supported" in str(exc):
                raise _unsupported(page, path, exc) from exc
            raise

    return bound


def _unsupported(page: Any, path: str, exc: Exception) -> UnsupportedCompressionError:
    name = _compression_name(page.compression)
    return UnsupportedCompressionError(
        f"{path}: compression {name} (TIFF code {int(page.compression)}) cannot be decoded "
        f"here ({exc}). Install or upgrade the codecs with `pip install -U imagecodecs`, "
        "or convert the slide to JPEG or JPEG 2000 tiles (e.g. with `vips tiffsave`)."
    )


def _compression_name(code: Any) -> str:
    return getattr(code, "name", None) or str(int(code))


class ArrayLevel(LevelReader):
    """A level held as an in-memory array, decoded on first access by ``load``.

    ``load`` checks the memory budget before it decodes (it knows the stored layout).
    """

    def __init__(self, load: Callable[[], np.ndarray], shape: tuple[int, ...], dtype: Any):
        self._load = load
        self._array: np.ndarray | None = None
        self._lock = threading.Lock()
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.chunk_shape = (min(512, self.shape[0]), min(512, self.shape[1]))

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        with self._lock:
            if self._array is None:
                self._array = self._load()
        return self._array[max(0, r0) : r1, max(0, c0) : c1]


class DownsampledLevel(LevelReader):
    """A level computed lazily from ``parent`` by ``factor`` x ``factor`` block means.

    Used for big single-level images, which have no pyramid in the file.
    """

    def __init__(self, parent: LevelReader, factor: int = 2):
        self.parent = parent
        self.factor = factor
        self.shape = (parent.shape[0] // factor, parent.shape[1] // factor, *parent.shape[2:])
        self.dtype = parent.dtype
        self.chunk_shape = (min(512, self.shape[0]), min(512, self.shape[1]))

    @property
    def filled_tiles(self) -> int:
        return self.parent.filled_tiles

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        r0, c0 = max(0, r0), max(0, c0)
        r1, c1 = min(self.shape[0], r1), min(self.shape[1], c1)
        out = self._window(r0, c0, r1, c1, f"a {self.factor}x reduced level")
        if out.size == 0:
            return out
        # read the parent in bands of rows so that memory stays bounded for any window
        parent_row_bytes = (
            (c1 - c0) * self.factor**2 * max(1, int(np.prod(self.shape[2:]))) * self.dtype.itemsize
        )
        band = max(1, self._BAND_BYTES // parent_row_bytes)
        for top in range(r0, r1, band):
            bottom = min(r1, top + band)
            out[top - r0 : bottom - r0] = self._reduce(top, c0, bottom, c1)
        return out

    _BAND_BYTES = 64 * 2**20

    def _reduce(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        f = self.factor
        block = self.parent.read_window(r0 * f, c0 * f, r1 * f, c1 * f)
        rows, cols = r1 - r0, c1 - c0
        block = block[: rows * f, : cols * f].reshape(rows, f, cols, f, *block.shape[2:])
        mean = block.mean(axis=(1, 3))
        if np.issubdtype(self.dtype, np.integer):
            mean = np.rint(mean)
        return mean.astype(self.dtype)
