"""OME-Zarr (OME-NGFF) output: prediction maps and label images as multiscale pyramids in micrometres.

``histo predict --ome-zarr`` writes ``<name>.ome.zarr`` beside today's ``<name>.zarr``
(or ``<name>.mask.zarr``) store, for viewers that read OME-NGFF: QuPath 0.6+
(File > Open, through Bio-Formats' OME-Zarr reader), napari with ``napari-ome-zarr``,
``ome-zarr``'s Python reader, the OME-NGFF validator.

Layout (one image with one label image)::

    NAME.ome.zarr/              multiscale image, axes (c, y, x)
        0, 1, 2 ...             pyramid levels, each 2x coarser (2x2 mean)
        labels/classes/         multiscale label image, axes (y, x), same µm grid
            0, 1, 2 ...         (2x2 mode; labelled pixels win over unlabelled ones)

* a classifier's store gives the class probabilities (one channel per class,
  float32, NaN where no tile was predicted), one pixel per tile stride;
* a segmentation mask gives its ``confidence`` (one uint8 channel, 0-255) at
  the model's µm/px.

Label values are **class index + 1**; 0 means "not predicted" (OME-NGFF,
napari and QuPath treat 0 as background).  ``image-label`` metadata gives each
value its class colour and a ``class`` property with the class name.

Format version: NGFF **0.4 on Zarr v2** by default (``version="0.4"``): it is
what QuPath 0.6 (Bio-Formats' zarr reader), napari-ome-zarr with any
``ome-zarr`` and most other tools read; NGFF 0.5 (Zarr v3) is written with
``version="0.5"`` for readers that have moved on.  Arrays are chunked
(1024² px, one channel per chunk), Blosc-LZ4 compressed (as bioformats2raw
writes, which Java readers decode), ``/``-separated chunk keys.  Everything is
written to ``<name>.ome.zarr.partial`` and renamed when complete, so a
``.ome.zarr`` folder is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "NGFF_VERSIONS",
    "NgffVersion",
    "ome_zarr_from_mask_store",
    "ome_zarr_from_prediction_store",
    "write_ome_zarr",
]

NgffVersion = Literal["0.4", "0.5"]

#: the Zarr format each OME-NGFF version is stored in
NGFF_VERSIONS: dict[str, int] = {"0.4": 2, "0.5": 3}

_CHUNK_PX = 1024
_MIN_LEVEL_PX = 256  # levels stop once the longer side is at most this
_LABELS_NAME = "classes"


def write_ome_zarr(
    path: str | os.PathLike[str],
    image: Any,
    mpp: float,
    *,
    channel_names: Sequence[str],
    channel_colors: Sequence[Sequence[float]] | None = None,
    labels: Any = None,
    label_names: Sequence[str] = (),
    label_colors: Sequence[Sequence[float]] | None = None,
    name: str = "",
    version: NgffVersion = "0.4",
    chunk_px: int = _CHUNK_PX,
    min_level_px: int = _MIN_LEVEL_PX,
) -> Path:
    """Write ``image`` (and ``labels``) as an OME-Zarr multiscale image; returns the final path.

    Parameters
    ----------
    path : path-like
        The ``.ome.zarr`` folder to make (an existing one is replaced once the new one is complete).
    image : array-like, shape (C, Y, X)
        float32 (NaN allowed: not predicted) or uint8; read in chunks, so a zarr array works.
    mpp : float
        Micrometres per pixel of ``image`` (level 0); level ``k`` is ``mpp * 2**k``.
    channel_names, channel_colors
        One name (and optional 0-255 RGB colour) per channel (``omero`` metadata).
    labels : array-like, shape (Y, X), optional
        Class indices, negative = not predicted; stored as index + 1 (0 = not predicted).
    label_names, label_colors
        Class names and 0-255 RGB colours, by class index.
    version : {"0.4", "0.5"}
        OME-NGFF version: 0.4 on Zarr v2 (default, widest support) or 0.5 on Zarr v3.
    """
    import zarr

    if version not in NGFF_VERSIONS:
        raise ValueError(f"OME-NGFF version must be one of {sorted(NGFF_VERSIONS)}, got {version!r}")
    if not (np.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive number of micrometres per pixel, got {mpp!r}")
    if len(image.shape) != 3 or image.shape[0] != len(channel_names):
        raise ValueError(
            f"image must be (channels, rows, cols) with {len(channel_names)} channels, got {image.shape}"
        )
    if labels is not None and tuple(labels.shape) != tuple(image.shape[1:]):
        raise ValueError(f"labels {labels.shape} and image {image.shape} differ in (rows, cols)")
    final = Path(path)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    fmt = NGFF_VERSIONS[version]
    root = zarr.open_group(str(partial), mode="w", zarr_format=fmt)  # type: ignore[arg-type]
    dtype = np.dtype(image.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise ValueError(f"image must be float32 or uint8, got {dtype}")
    n_levels = _n_levels(image.shape[1:], min_level_px)
    _write_pyramid(root, image, dtype, n_levels, chunk_px, fmt, reduce="mean")
    meta: dict[str, Any] = {
        "multiscales": [
            _multiscale(name or final.name.split(".")[0], ("c", "y", "x"), mpp, n_levels, version, "mean")
        ],
        "omero": _omero(channel_names, channel_colors, dtype),
    }
    if labels is not None:
        meta["labels"] = [_LABELS_NAME]
    _set_ome_attrs(root, meta, version)
    if labels is not None:
        group = root.create_group("labels")
        _set_ome_attrs(group, {"labels": [_LABELS_NAME]}, version)
        label_group = group.create_group(_LABELS_NAME)
        label_dtype = np.dtype(np.uint8 if len(label_names) < 255 else np.uint16)
        _write_pyramid(label_group, labels, label_dtype, n_levels, chunk_px, fmt, reduce="mode")
        _set_ome_attrs(
            label_group,
            {
                "multiscales": [_multiscale(_LABELS_NAME, ("y", "x"), mpp, n_levels, version, "mode")],
                "image-label": _image_label(label_names, label_colors, version),
            },
            version,
        )
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


def ome_zarr_from_prediction_store(
    store_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    class_colors: Sequence[Sequence[float]] | None = None,
    version: NgffVersion = "0.4",
) -> Path:
    """A finished ``histo predict`` classifier store (``NAME.zarr``) as ``NAME.ome.zarr``.

    The probability map (one channel per class) at one pixel per tile stride
    (``stride_px_level0 * slide_mpp`` µm), with the top class as the label image.
    Class colours default to the ones recorded in the store's model spec.
    """
    import zarr

    group = zarr.open_group(str(store_path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    grid, spec = attrs["grid"], attrs.get("spec") or {}
    names = list(attrs["class_names"])
    colors = class_colors if class_colors is not None else spec.get("class_colors")
    mpp = float(grid["stride_px_level0"]) * float(grid["slide_mpp"])
    return write_ome_zarr(
        path, group["probability_map"], mpp, channel_names=names, channel_colors=colors,
        labels=group["class_map"], label_names=names, label_colors=colors,
        name=Path(store_path).name.split(".")[0], version=version,
    )  # fmt: skip


def ome_zarr_from_mask_store(
    mask_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    class_colors: Sequence[Sequence[float]] | None = None,
    version: NgffVersion = "0.4",
) -> Path:
    """A finished segmentation mask (``NAME.mask.zarr``) as ``NAME.ome.zarr`` at the model's µm/px.

    The ``confidence`` (uint8) is the image, the stitched ``labels`` the label image.
    """
    import zarr

    group = zarr.open_group(str(mask_path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    spec = attrs.get("spec") or {}
    names = list(class_names if class_names is not None else attrs.get("class_names") or [])
    colors = class_colors if class_colors is not None else spec.get("class_colors")
    confidence = group["confidence"]
    image = _AddAxis(confidence)
    return write_ome_zarr(
        path, image, float(attrs["mpp"]), channel_names=["confidence"], channel_colors=[(255, 255, 255)],
        labels=group["labels"], label_names=names, label_colors=colors,
        name=Path(mask_path).name.split(".")[0], version=version,
    )  # fmt: skip


class _AddAxis:
    """A (Y, X) array read as (1, Y, X) without loading it."""

    def __init__(self, array: Any):
        self._array = array
        self.shape = (1, *array.shape)
        self.dtype = array.dtype

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        return np.asarray(self._array[key[1:]])[np.newaxis]


# -- pyramid -----------------------------------------------------------------------------------
def _n_levels(shape_yx: Sequence[int], min_level_px: int) -> int:
    rows, cols = (int(n) for n in shape_yx)
    n = 1
    while max(rows, cols) > min_level_px and min(rows, cols) >= 2:
        rows, cols = -(-rows // 2), -(-cols // 2)
        n += 1
    return n


def _write_pyramid(
    group: Any, source: Any, dtype: np.dtype, n_levels: int, chunk_px: int, fmt: int, reduce: str
) -> None:
    """Level 0 from ``source`` (converted), then each level from the one before, chunk by chunk."""
    previous: Any = None
    for level in range(n_levels):
        if level == 0:
            shape = tuple(int(n) for n in source.shape)
        else:
            shape = (*previous.shape[:-2], -(-previous.shape[-2] // 2), -(-previous.shape[-1] // 2))
        chunks = (*(1 for _ in shape[:-2]), min(chunk_px, shape[-2]), min(chunk_px, shape[-1]))
        array = group.create_array(str(level), **_array_options(shape, chunks, dtype, fmt))
        rows, cols = shape[-2], shape[-1]
        for r0 in range(0, rows, chunks[-2]):
            r1 = min(rows, r0 + chunks[-2])
            for c0 in range(0, cols, chunks[-1]):
                c1 = min(cols, c0 + chunks[-1])
                if level == 0:
                    block = _convert(np.asarray(source[..., r0:r1, c0:c1]), dtype, reduce)
                else:
                    parent = np.asarray(previous[..., 2 * r0 : 2 * r1, 2 * c0 : 2 * c1])
                    block = _mean2(parent, dtype) if reduce == "mean" else _mode2(parent)
                array[..., r0:r1, c0:c1] = block
        previous = array


def _array_options(
    shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype, fmt: int
) -> dict[str, Any]:
    options: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype, "fill_value": 0}
    if fmt == 2:
        # numcodecs' Blosc by its JSON config (Zarr v2 metadata): LZ4, byte shuffle
        options["compressors"] = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
        options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        from zarr.codecs import BloscCodec

        options["compressors"] = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
        options["dimension_names"] = ("c", "y", "x")[-len(shape) :]
    return options


def _convert(block: np.ndarray, dtype: np.dtype, reduce: str) -> np.ndarray:
    if reduce == "mode":  # class indices -> label values, negative (not predicted) -> 0
        return np.where(block >= 0, block.astype(np.int64) + 1, 0).astype(dtype)
    if dtype == np.uint8 and block.dtype != np.uint8:  # probabilities 0-1 -> 0-255
        return np.rint(np.nan_to_num(block, nan=0.0).clip(0, 1) * 255).astype(np.uint8)
    return block.astype(dtype, copy=False)


def _quads(block: np.ndarray, pad: float) -> list[np.ndarray]:
    """The four pixels of each 2x2 block of ``block`` (..., Y, X) as four (..., Y/2, X/2) views.

    Odd edges are padded with ``pad`` (NaN for means, 0 = unlabelled for modes).
    """
    rows, cols = block.shape[-2:]
    if rows % 2 or cols % 2:
        widths = [(0, 0)] * (block.ndim - 2) + [(0, rows % 2), (0, cols % 2)]
        block = np.pad(block, widths, constant_values=pad)
    return [block[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]


def _mean2(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """2x2 means of the values inside the image that are not NaN (all NaN stays NaN)."""
    total = np.zeros((*block.shape[:-2], -(-block.shape[-2] // 2), -(-block.shape[-1] // 2)), np.float32)
    count = np.zeros(total.shape, np.uint8)
    for values in _quads(block.astype(np.float32, copy=False), np.nan):
        finite = np.isfinite(values)
        total += np.where(finite, values, 0)
        count += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
    return np.rint(mean).astype(np.uint8) if dtype == np.uint8 else mean


def _mode2(block: np.ndarray) -> np.ndarray:
    """The commonest label of each 2x2 block; labelled values beat 0, ties go to the smaller value."""
    quads = [q.astype(np.int32) for q in _quads(block, 0)]

    def score(values: np.ndarray) -> np.ndarray:
        votes = sum((values == other).astype(np.int32) for other in quads)  # counts itself too
        return np.where(values == 0, -1, votes * 2**16 - values)

    best, best_score = quads[0], score(quads[0])
    for values in quads[1:]:
        candidate = score(values)
        take = candidate > best_score
        best, best_score = np.where(take, values, best), np.where(take, candidate, best_score)
    return best.astype(block.dtype)


# -- metadata ----------------------------------------------------------------------------------
def _multiscale(
    name: str, axes: Sequence[str], mpp: float, n_levels: int, version: str, method: str
) -> dict[str, Any]:
    described = [
        {"name": a, "type": "channel"} if a == "c" else {"name": a, "type": "space", "unit": "micrometer"}
        for a in axes
    ]
    datasets = []
    for level in range(n_levels):
        scale = [1.0 if a == "c" else mpp * 2**level for a in axes]
        datasets.append(
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    # "type": how the levels were made (2x2 mean for images, 2x2 mode for labels)
    out: dict[str, Any] = {"name": name, "axes": described, "datasets": datasets, "type": method}
    if version == "0.4":
        out["version"] = "0.4"
    return out


def _hex(color: Sequence[float] | None) -> str:
    if color is None:
        return "FFFFFF"
    r, g, b = (int(round(float(v))) for v in list(color)[:3])
    return f"{r:02X}{g:02X}{b:02X}"


def _omero(names: Sequence[str], colors: Sequence[Sequence[float]] | None, dtype: np.dtype) -> dict[str, Any]:
    top = 1.0 if dtype.kind == "f" else 255.0
    return {
        "channels": [
            {
                "label": str(name),
                "color": _hex(colors[i] if colors is not None and i < len(colors) else None),
                "active": True,
                "window": {"start": 0.0, "end": top, "min": 0.0, "max": top},
            }
            for i, name in enumerate(names)
        ],
        "rdefs": {"model": "color"},
    }


def _image_label(
    names: Sequence[str], colors: Sequence[Sequence[float]] | None, version: str
) -> dict[str, Any]:
    colours, properties = [], []
    for i, name in enumerate(names):
        rgb = [int(round(float(v))) for v in list(colors[i])[:3]] if colors and i < len(colors) else [255] * 3
        colours.append({"label-value": i + 1, "rgba": [*rgb, 255]})
        properties.append({"label-value": i + 1, "class": str(name)})
    out: dict[str, Any] = {"colors": colours, "properties": properties, "source": {"image": "../../"}}
    if version == "0.4":
        out["version"] = "0.4"
    return out


def _set_ome_attrs(group: Any, meta: dict[str, Any], version: str) -> None:
    meta = json.loads(json.dumps(meta))
    if version == "0.4":
        group.attrs.update(meta)
    else:  # NGFF 0.5 keeps its metadata under "ome", with the version once
        group.attrs.update({"ome": {"version": version, **meta}})
