"""What a format opener reads from a file, before :func:`open_slide` builds the ``Slide``.

Format openers (``_tiff_pyramid`` for TIFF, ``slide._open_plain_image`` for
PNG/JPEG) return a :class:`SlideParts`; ``open_slide`` adds the computed
levels, the tile cache and the user's µm/px and constructs the (immutable)
``Slide`` once.  This module imports no other ``napari_histo.io`` module that
builds slides, so the dependency runs one way: ``slide`` -> openers -> here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from napari_histo.io._metadata import Calibration
from napari_histo.io._tile_reader import LevelReader

__all__ = ["ClosesOnce", "LevelInfo", "SlideParts"]


class ClosesOnce:
    """A back-end's open file handle whose ``close`` releases it once, whoever calls it first
    (the slide, a level that outlived it, another thread); subclasses say how in ``_release``."""

    def __init__(self) -> None:
        self._close_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class LevelInfo:
    """What one pyramid level is, without its pixels.

    ``shape`` is (rows, cols[, samples]); ``downsample`` is level-0 pixels per
    level pixel; ``tile_shape`` is the file's (rows, cols) chunk, or ``None``
    for computed levels; ``compression`` names the codec.
    """

    shape: tuple[int, ...]
    downsample: float
    tile_shape: tuple[int, int] | None
    compression: str
    stored: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "downsample": round(self.downsample, 4),
            "tile_shape": list(self.tile_shape) if self.tile_shape else None,
            "compression": self.compression,
            "stored_in_file": self.stored,
        }


@dataclass(frozen=True)
class SlideParts:
    """The levels, metadata and resources of an opened file (levels stored in it only).

    ``zarr_factory(i)`` makes a zarr array over stored level ``i`` (``None``:
    no zarr view, levels are served as dask arrays); ``associated`` maps names
    to loaders of label/macro/thumbnail images; ``close`` releases the file
    (idempotent), or is ``None`` when nothing stays open.  ``pixel_layout``
    names how the file stores its pixels (``RGB 8-bit``, ``RGBA 8-bit`` ...; the
    readers give 8-bit RGB); ``notes`` are warnings ``open_slide`` shows once the
    slide is built (pixels converted, damage read around).
    """

    format: str
    vendor: str | None
    calibration: Calibration
    level_info: tuple[LevelInfo, ...]
    properties: dict[str, str]
    readers: tuple[LevelReader, ...]
    zarr_factory: Callable[[int], Any] | None = None
    associated: Mapping[str, Any] = field(default_factory=dict)
    close: Callable[[], Any] | None = None
    pixel_layout: str = "RGB 8-bit"
    notes: tuple[tuple[type[Warning], str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.level_info) != len(self.readers) or not self.readers:
            raise ValueError(
                f"a slide needs one reader per level, got {len(self.readers)} readers "
                f"for {len(self.level_info)} levels"
            )

    def with_notes(self, notes: list[tuple[type[Warning], str]]) -> SlideParts:
        """These parts with ``notes`` shown before their own."""
        return replace(self, notes=(*notes, *self.notes)) if notes else self
