"""Remote slide files through fsspec: HTTP(S) range requests, S3/GCS/Azure when their packages are installed.

A :class:`RemoteFile` fetches a remote file in blocks, each block once, into
a local sparse cache file (an anonymous temporary file, gone when the slide
closes).  The tifffile back-end then reads it as it reads a local file: the
header through :meth:`RemoteFile.fileobj`, the tiles with positional reads on
the cache file's descriptor after :class:`RemoteTiffLevelReader` has made
sure their blocks are there, fetching the missing ones in one batch of range
requests.  Only the blocks a read touches are downloaded, never the whole file.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import weakref
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from napari_histo.errors import CorruptSlideError, MissingDependencyError, SlideNotFoundError
from napari_histo.io._tile_reader import TiffLevelReader, one_line

__all__ = ["DEFAULT_BLOCK_BYTES", "RemoteFile", "RemoteTiffLevelReader", "is_url", "url_name"]

#: Bytes per fetched block: about one JPEG tile of 256 x 256 px, so a read fetches little beyond its tiles.
DEFAULT_BLOCK_BYTES = 64 * 2**10

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# fsspec protocol -> the package that implements it (what to pip install)
_PROTOCOL_PACKAGES = {
    "http": "aiohttp",
    "https": "aiohttp",
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


def is_url(source: object) -> bool:
    """Whether ``source`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(source, str) and bool(_URL.match(source))


def url_name(url: str) -> str:
    """The file name at the end of a URL's path (``CMU-1.svs`` of ``https://host/a/CMU-1.svs?x=1``).

    A DICOMweb series (``.../studies/<UID>/series/<UID>``) is named after its series UID with ``_``
    for ``.``: output files are named after the slide up to its first dot, and series of one
    institution share their UIDs' leading parts.
    """
    path = unquote(urlparse(url).path).rstrip("/")
    series = re.search(r"/studies/[0-9.]+/series/([0-9.]+)$", path)
    if series:
        return series[1].replace(".", "_")
    return path.rsplit("/", 1)[-1] or urlparse(url).netloc or url


def _filesystem(url: str) -> tuple[Any, str]:
    protocol = url.split("://", 1)[0].lower()
    package = _PROTOCOL_PACKAGES.get(protocol)
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise MissingDependencyError(
            f"{url}: reading slides from URLs needs fsspec, which is not installed. Install it with: "
            "pip install 'napari-histo[remote]'"
        ) from exc
    try:
        fsspec.get_filesystem_class(protocol)
        return url_to_fs(url)
    except (ImportError, ValueError) as exc:
        fix = (
            f"Install it with: pip install {package}"
            + (" (or napari-histo[remote])" if protocol in ("http", "https") else "")
            if package
            else "Install fsspec's package for that protocol"
        )
        raise MissingDependencyError(
            f"{url}: reading {protocol}:// URLs needs {package or 'an fsspec package'}, which is not "
            f"installed or does not load ({one_line(exc)}). {fix}."
        ) from exc


class RemoteFile:
    """A remote file read through fsspec in blocks, each fetched once into a local cache file.

    ``bytes_fetched`` and ``requests`` count what has been downloaded; ``close()``
    (idempotent, also run when the object is dropped) deletes the cache file,
    unless an owner took the descriptor over with ``close.detach()``.
    """

    def __init__(self, url: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        self.url = url
        self.block_bytes = int(block_bytes)
        self._fs, self._path = _filesystem(url)
        try:
            info = self._fs.info(self._path)
        except FileNotFoundError as exc:
            raise SlideNotFoundError(f"{url}: no such file on the server (check the URL).") from exc
        except Exception as exc:  # network, permission, DNS: all mean "cannot reach it"
            raise CorruptSlideError(
                f"{url}: the remote file cannot be reached ({one_line(exc)}). Check the URL and the network."
            ) from exc
        size = info.get("size")
        if not size:
            raise CorruptSlideError(
                f"{url}: the server does not give the file's size, so it cannot be read in pieces "
                "(it needs Content-Length and range requests). Download the slide and open the local copy."
            )
        self.size = int(size)
        with tempfile.TemporaryFile(prefix="histo-remote-") as tmp:
            self.fd = os.dup(tmp.fileno())  # the anonymous cache file lives as long as a descriptor of it
        self.close = weakref.finalize(self, os.close, self.fd)
        self._have = np.zeros(-(-self.size // self.block_bytes), bool)
        self._lock = threading.Lock()
        self.bytes_fetched = 0
        self.requests = 0

    # -- fetching -------------------------------------------------------------------
    def ensure(self, ranges: list[tuple[int, int]]) -> None:
        """Make sure the bytes ``[offset, offset + count)`` of each range are in the cache file."""
        blocks: set[int] = set()
        for offset, count in ranges:
            if count <= 0:
                continue
            first = max(0, offset) // self.block_bytes
            last = min(self.size, offset + count) - 1
            if last < offset:
                continue
            blocks.update(range(first, last // self.block_bytes + 1))
        if not blocks:
            return
        with self._lock:  # one fetch at a time per file: a block is never downloaded twice
            missing = sorted(b for b in blocks if not self._have[b])
            if not missing:
                return
            runs: list[tuple[int, int]] = []
            for block in missing:  # adjacent missing blocks become one request
                if runs and runs[-1][1] == block:
                    runs[-1] = (runs[-1][0], block + 1)
                else:
                    runs.append((block, block + 1))
            starts = [first * self.block_bytes for first, _ in runs]
            ends = [min(self.size, end * self.block_bytes) for _, end in runs]
            try:
                chunks = self._fs.cat_ranges([self._path] * len(runs), starts, ends)
            except Exception as exc:  # network failures of any library
                raise CorruptSlideError(
                    f"{self.url}: fetching bytes {starts[0]:,}-{ends[-1]:,} failed ({one_line(exc)}). "
                    "Check the network and the server."
                ) from exc
            for (first, end), start, stop, data in zip(runs, starts, ends, chunks):
                if isinstance(data, BaseException) or len(data) != stop - start:
                    got = one_line(data) if isinstance(data, BaseException) else f"{len(data):,} bytes"
                    raise CorruptSlideError(
                        f"{self.url}: asked the server for bytes {start:,}-{stop:,} and got {got}; the "
                        "server must answer range requests (HTTP 206). Download the slide and open the "
                        "local copy."
                    )
                _pwrite(self.fd, data, start)
                self._have[first:end] = True
                self.bytes_fetched += len(data)
            self.requests += len(runs)

    def pread(self, count: int, offset: int) -> bytes:
        """``count`` bytes at ``offset`` (fewer at the end of the file), fetched first when missing."""
        count = max(0, min(count, self.size - offset))
        if count == 0:
            return b""
        self.ensure([(offset, count)])
        return _pread(self.fd, count, offset)

    def fileobj(self) -> io.RawIOBase:
        """A read-only, seekable file object over the remote file (for tifffile's header parsing)."""
        return _RemoteReader(self)

    @property
    def level_reader(self) -> type[TiffLevelReader]:
        """The level reader class for this file's TIFF levels (used by ``open_tiff``)."""
        return RemoteTiffLevelReader


class _RemoteReader(io.RawIOBase):
    def __init__(self, remote: RemoteFile) -> None:
        super().__init__()
        self._remote = remote
        self._pos = 0
        self.name = remote.url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._remote.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._remote.pread(len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._remote.size - self._pos
        data = self._remote.pread(size, self._pos)
        self._pos += len(data)
        return data


class RemoteTiffLevelReader(TiffLevelReader):
    """A TIFF level of a remote file: the tiles a window touches are fetched (in one batch) before reading.

    ``source`` (see :class:`~napari_histo.io._tile_reader.TiffLevelReader`) must
    have a ``remote`` attribute, the :class:`RemoteFile` whose cache file ``source.fd`` is.
    """

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        rows, cols = self.shape[0], self.shape[1]
        r0, c0, r1, c1 = max(0, r0), max(0, c0), min(rows, r1), min(cols, c1)
        if r1 > r0 and c1 > c0:
            th, tw = self.chunk_shape
            ranges = []
            for ty in range(r0 // th, (r1 - 1) // th + 1):
                for tx in range(c0 // tw, (c1 - 1) // tw + 1):
                    index = ty * self._grid[1] + tx
                    if self._cache.get((self._key, index)) is None and not self._missing[index]:
                        ranges.append((int(self._offsets[index]), int(self._counts[index])))
            self._source.remote.ensure(ranges)
        return super().read_window(r0, c0, r1, c1)


_IO_LOCK = threading.Lock()


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    if hasattr(os, "pwrite"):
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
        return
    with _IO_LOCK:  # pragma: no cover - Windows only
        os.lseek(fd, offset, os.SEEK_SET)
        os.write(fd, data)


def _pread(fd: int, count: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    with _IO_LOCK:  # pragma: no cover - Windows only
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, count)
