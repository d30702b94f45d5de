"""OME-Zarr (OME-NGFF) slides as input: a multiscale RGB image read lazily, chunk by chunk.

:func:`open_omezarr_parts` reads an NGFF 0.1-0.5 multiscale image (Zarr v2 or
v3, as written by ``bioformats2raw``, QuPath 0.6, ``ome-zarr`` or
:func:`~napari_histo.io.ome_zarr.write_ome_zarr`) into :class:`SlideParts`:

* each dataset of the first multiscale becomes a level; ``c`` may come first
  (``c, y, x``: NGFF's order) or last (``y, x, c``); ``t`` and ``z`` axes are
  read at index 0;
* 3 channels are RGB, 4 RGBA, 1 grayscale; 16-bit values are converted to
  8-bit RGB as the TIFF reader does (with a :class:`SlideWarning`);
* µm/px comes from the first dataset's ``scale`` of the ``x`` axis when the
  axis has a length unit (``micrometer``, ``nanometer`` ...).

A ``bioformats2raw`` folder (``bioformats2raw.layout`` at the root) opens its
first series (``0/``).  Decoded chunks are kept in the slide's :class:`TileCache`.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.core._image import PixelLayout, to_rgb8
from napari_histo.errors import CorruptSlideError, CorruptTileError, UnsupportedFormatError
from napari_histo.io._metadata import Calibration, plausible_mpp
from napari_histo.io._slide_parts import LevelInfo, SlideParts
from napari_histo.io._tile_reader import (
    LevelReader,
    OnError,
    SlideDamageWarning,
    SlideWarning,
    TileCache,
    TiledLevel,
    one_line,
)

__all__ = ["OmeZarrLevel", "is_omezarr", "open_omezarr_parts"]

# NGFF units (UDUNITS-2 names) in micrometres
_UM_PER_UNIT = {
    "angstrom": 1e-4,
    "picometer": 1e-6,
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "micron": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}
_DEFAULT_AXES = ("t", "c", "z", "y", "x")  # NGFF 0.1 / 0.2: always 5D in this order


def is_omezarr(path: str | os.PathLike[str]) -> bool:
    """``True`` when ``path`` is a folder holding Zarr (v2 or v3) group metadata: an OME-Zarr candidate."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in (".zgroup", ".zattrs", "zarr.json"))


def open_omezarr_parts(
    path: str | os.PathLike[str], cache: TileCache, on_error: OnError = "raise"
) -> SlideParts:
    """The levels, µm/px and metadata of an OME-Zarr image folder.

    Raises
    ------
    UnsupportedFormatError
        Not an OME-Zarr image (a plain zarr, a plate, labels only), or pixels
        that do not convert to RGB (more than 4 channels, float, signed).
    CorruptSlideError
        The metadata names arrays that are missing or disagree in shape.
    """
    import zarr

    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise CorruptSlideError(f"{path}: the Zarr metadata cannot be read ({one_line(exc)}).") from exc
    group, meta = _image_group(root, path)
    multiscale = meta["multiscales"][0]
    version = str(meta.get("version") or multiscale.get("version") or "")
    axes = _axis_names(multiscale)
    units = _axis_units(multiscale)
    datasets = multiscale.get("datasets") or []
    if not datasets:
        raise CorruptSlideError(f"{path}: the multiscale image lists no datasets (levels).")
    arrays = []
    for ds in datasets:
        try:
            array = group[str(ds["path"])]
        except Exception as exc:
            raise CorruptSlideError(
                f"{path}: level {ds.get('path')!r} named in the metadata cannot be opened ({one_line(exc)})."
            ) from exc
        if len(array.shape) != len(axes):
            raise CorruptSlideError(
                f"{path}: level {ds['path']!r} has {len(array.shape)} dimensions but the axes are {axes}."
            )
        arrays.append(array)
    layout = _layout(arrays[0], axes, path)
    scales = [_scale(ds, multiscale, axes) for ds in datasets]
    readers: list[LevelReader] = []
    infos = []
    shape0 = _yx(arrays[0], axes)
    for i, array in enumerate(arrays):
        reader = OmeZarrLevel(array, axes, layout, cache, (str(path), i), str(path), on_error)
        readers.append(reader)
        rows, cols = reader.shape[:2]
        downsample = _downsample(scales[0], scales[i], shape0, (rows, cols))
        codec = _codec_name(array)
        infos.append(LevelInfo(reader.shape, downsample, reader.chunk_shape, codec))
    calibration = _calibration(scales[0], units)
    properties = {
        "ome-zarr.version": version or "unknown",
        "ome-zarr.axes": ",".join(axes),
        "ome-zarr.zarr_format": str(getattr(getattr(arrays[0], "metadata", None), "zarr_format", "")),
    }
    if multiscale.get("name"):
        properties["ome-zarr.name"] = str(multiscale["name"])
    notes: tuple[tuple[type[Warning], str], ...] = ()
    if not layout.is_rgb8:
        notes = ((SlideWarning, f"{path} stores {layout.name} pixels; they are read as 8-bit RGB: "
                  f"{layout.conversion()}."),)  # fmt: skip
    return SlideParts(
        "ome-zarr", None, calibration, tuple(infos), properties, tuple(readers),
        pixel_layout=layout.name, notes=notes,
    )  # fmt: skip


class OmeZarrLevel(TiledLevel):
    """One dataset of an NGFF multiscale as (rows, cols, 3) uint8, decoded chunk by chunk into the cache."""

    def __init__(
        self,
        array: Any,
        axes: tuple[str, ...],
        layout: PixelLayout,
        cache: TileCache,
        key: Any,
        path: str,
        on_error: OnError = "raise",
        fill: int = 255,
    ):
        self._array = array
        self._axes = axes
        self._layout = layout
        self._cache = cache
        self._key = key
        self._path = path
        self.on_error: OnError = on_error
        self.fill = fill
        rows, cols = _yx(array, axes)
        self.shape = (rows, cols, 3)
        self.dtype = np.dtype(np.uint8)
        chunks = dict(zip(axes, array.chunks))
        self.chunk_shape = (int(chunks["y"]), int(chunks["x"]))
        self._filled: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def filled_tiles(self) -> int:
        return len(self._filled)

    def _tile(self, ty: int, tx: int) -> np.ndarray:
        cache_key = (self._key, ty, tx)
        tile = self._cache.get(cache_key)
        if tile is None:
            tile = self._read_tile(ty, tx)
            self._cache.put(cache_key, tile)
        return tile

    def _read_tile(self, ty: int, tx: int) -> np.ndarray:
        th, tw = self.chunk_shape
        r0, c0 = ty * th, tx * tw
        r1, c1 = min(self.shape[0], r0 + th), min(self.shape[1], c0 + tw)
        index = tuple(
            slice(r0, r1) if a == "y" else slice(c0, c1) if a == "x" else slice(None) if a == "c" else 0
            for a in self._axes
        )
        try:
            block = np.asarray(self._array[index])
        except Exception as exc:  # noqa: BLE001 - a chunk that fails to decode is a damaged file
            return self._on_bad_chunk(ty, tx, (r0, c0, r1, c1), exc)
        kept = [a for a in self._axes if a in ("y", "x", "c")]
        if "c" not in kept:
            block = block[..., np.newaxis]
            kept.append("c")
        block = np.transpose(block, [kept.index("y"), kept.index("x"), kept.index("c")])
        if self._layout.is_rgb8:
            return np.ascontiguousarray(block)
        return to_rgb8(block if block.shape[2] > 1 else block[..., 0], self._layout)

    def _on_bad_chunk(self, ty: int, tx: int, box: tuple[int, int, int, int], exc: Exception) -> np.ndarray:
        r0, c0, r1, c1 = box
        where = (
            f"{self._path}: the chunk at rows {r0}-{r1}, cols {c0}-{c1} of level {self._key[-1]} "
            f"fails to read ({one_line(exc)})"
        )
        if self.on_error == "raise":
            raise CorruptTileError(f"{where}. The folder is damaged: copy it again.") from exc
        with self._lock:
            first, self._warned = not self._warned, True
            self._filled.add((ty, tx))
        if first:
            warnings.warn(
                f"{where}; it is read as background (white). Further damaged chunks of this level are "
                "read as background without a warning each.",
                SlideDamageWarning,
                stacklevel=3,
            )
        return np.full((r1 - r0, c1 - c0, 3), self.fill, np.uint8)


# -- metadata ----------------------------------------------------------------------------------
def _image_group(root: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """The group holding the multiscale image and its NGFF metadata (0.5 nests it under ``ome``)."""
    meta = _ngff_attrs(root)
    if "multiscales" not in meta and "bioformats2raw.layout" in meta:
        try:
            series = root["0"]
        except Exception as exc:
            raise CorruptSlideError(
                f"{path}: a bioformats2raw folder without its first image (0/) ({one_line(exc)})."
            ) from exc
        return series, _ngff_attrs(series)
    if "multiscales" not in meta or not meta["multiscales"]:
        what = "an HCS plate" if "plate" in meta else "a well" if "well" in meta else "not an OME-Zarr image"
        raise UnsupportedFormatError(
            f"{path}: {what} (its Zarr metadata has no 'multiscales'). napari-histo opens OME-Zarr "
            "multiscale images; open one image of a plate (e.g. PLATE.zarr/A/1/0), or convert the file "
            "with bioformats2raw."
        )
    return root, meta


def _ngff_attrs(group: Any) -> dict[str, Any]:
    attrs = dict(group.attrs)
    if isinstance(attrs.get("ome"), dict):  # NGFF 0.5
        return dict(attrs["ome"])
    return attrs


def _axis_names(multiscale: dict[str, Any]) -> tuple[str, ...]:
    axes = multiscale.get("axes")
    if axes is None:
        return _DEFAULT_AXES
    names = tuple(str(a["name"] if isinstance(a, dict) else a).lower() for a in axes)
    if "y" not in names or "x" not in names:
        raise UnsupportedFormatError(f"OME-Zarr axes {names} have no y and x: not a 2D image")
    return names


def _axis_units(multiscale: dict[str, Any]) -> dict[str, str]:
    return {
        str(a["name"]).lower(): str(a.get("unit", "")).lower()
        for a in multiscale.get("axes") or []
        if isinstance(a, dict)
    }


def _scale(ds: dict[str, Any], multiscale: dict[str, Any], axes: tuple[str, ...]) -> dict[str, float] | None:
    """Physical size of one pixel along each axis (dataset scale times the multiscale's own scale)."""
    out = dict.fromkeys(axes, 1.0)
    found = False
    for transforms in (ds.get("coordinateTransformations"), multiscale.get("coordinateTransformations")):
        for t in transforms or []:
            if t.get("type") == "scale" and len(t.get("scale", ())) == len(axes):
                found = True
                for a, v in zip(axes, t["scale"]):
                    out[a] *= float(v)
    return out if found else None


def _downsample(
    s0: dict[str, float] | None, s: dict[str, float] | None, shape0: tuple[int, int], shape: tuple[int, int]
) -> float:
    if s0 and s and s0["x"] > 0 and s0["y"] > 0:
        return float((s["x"] / s0["x"] + s["y"] / s0["y"]) / 2)
    return float((shape0[0] / max(1, shape[0]) + shape0[1] / max(1, shape[1])) / 2)


def _calibration(scale0: dict[str, float] | None, units: dict[str, str]) -> Calibration:
    unit = units.get("x", "")
    if scale0 is None or unit not in _UM_PER_UNIT:
        return Calibration()
    mpp = plausible_mpp(scale0["x"] * _UM_PER_UNIT[unit])
    return Calibration(mpp, None, "OME-Zarr coordinateTransformations scale" if mpp else "none")


def _yx(array: Any, axes: tuple[str, ...]) -> tuple[int, int]:
    dims = dict(zip(axes, array.shape))
    return int(dims["y"]), int(dims["x"])


def _layout(array: Any, axes: tuple[str, ...], path: Path) -> PixelLayout:
    samples = int(dict(zip(axes, array.shape)).get("c", 1))
    dtype = np.dtype(array.dtype)
    extra = "alpha" if samples in (2, 4) else ""
    photometric = "rgb" if samples in (3, 4) else "minisblack"
    layout = PixelLayout(samples, dtype.name, photometric, extra)
    problem = layout.problem()
    if problem is not None:
        raise UnsupportedFormatError(f"{path} stores {layout.name} pixels: {problem[0]}. {problem[1]}.")
    return layout


def _codec_name(array: Any) -> str:
    try:
        compressors = array.compressors
    except Exception:  # noqa: BLE001 - the codec is only shown in `histo info`
        return "zarr"
    names = [
        str(getattr(c, "codec_name", None) or getattr(c, "codec_id", None) or type(c).__name__)
        for c in compressors
    ]
    return "zarr " + ("+".join(names) if names else "uncompressed")
