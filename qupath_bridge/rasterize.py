"""Objects → label image at any pyramid level (what QuPath's LabeledImageServer does).

A pixel belongs to an object when its **centre** lies inside the object's area (holes
excluded), so an object traced from pixels by :func:`~qupath_bridge.labels_to_objects`
rasterises back to exactly those pixels.  The fill is a vectorised even-odd scanline
over every ring of every object at once, written in bounded chunks, so a slide-sized
label image does not need slide-sized temporary arrays.
"""

from __future__ import annotations

import enum
import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import shapely
from skimage.draw import line as draw_line

from qupath_bridge._report import short
from qupath_bridge.errors import GeoJSONWarning, LabelImageError, MemoryLimitError
from qupath_bridge.geometry import xy_to_rc
from qupath_bridge.objects import PathObject

__all__ = ["LabelMode", "objects_to_labels"]

_CHUNK_PX = 1 << 22  # pixels written per step: bounds the temporary index arrays (~64 MB)


class LabelMode(str, enum.Enum):
    """What a label value means."""

    INSTANCE = "instance"  # one value per object: its position in the list + 1 (or a measurement)
    CLASS = "class"  # one value per class: position in ``class_names`` + 1


def objects_to_labels(
    objects: Sequence[PathObject],
    shape: tuple[int, int],
    *,
    downsample: float = 1.0,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    mode: LabelMode | str = LabelMode.INSTANCE,
    class_names: Sequence[str] | None = None,
    labels_from: str | None = None,
    dtype: np.dtype | type | None = None,
    outside: str = "clip",
) -> np.ndarray:
    """Rasterise objects into a label image.

    Parameters
    ----------
    objects : sequence of PathObject
        Geometries in level-0 pixels.  Later objects overwrite earlier ones where they
        overlap.  Points and lines are drawn 1 pixel wide.
    shape : (int, int)
        ``(rows, cols)`` of the output at the target level.
    downsample : float
        Level-0 pixels per output pixel (the pyramid level's downsample).
    origin_xy : (float, float)
        Level-0 ``(x, y)`` of the output's top-left corner (for a tile or crop).
    mode : LabelMode or {"instance", "class"}
        ``instance``: object *i* gets ``i + 1`` (or its ``labels_from`` measurement);
        ``class``: an object of class ``class_names[k]`` gets ``k + 1``; unclassified
        objects are skipped with a warning.
    class_names : sequence of str, optional
        Class order for ``mode="class"``; default: sorted class names of ``objects``.
    labels_from : str, optional
        Instance mode: name of a measurement holding each object's label (e.g. the
        ``"Label"`` written by :func:`labels_to_objects`).
    dtype : numpy dtype, optional
        Default: the smallest unsigned integer type holding the largest label.
    outside : {"clip", "check"}
        ``clip`` (default, for tiles and crops): objects beyond the image are drawn only
        where they reach into it, silently.  ``check`` (a whole image at a pyramid level):
        raise :class:`LabelImageError` when objects were given and none reaches into the
        image (wrong level, downsample or image), and warn when some lie wholly or partly
        outside it; both messages give the objects' and the image's level-0 bounds.

    Returns
    -------
    numpy.ndarray, shape ``shape``
        0 = background.

    Raises
    ------
    LabelImageError
        A class not in ``class_names``, a missing or non-integer ``labels_from`` value, a
        bad ``shape``/``downsample``, or (``outside="check"``) no object inside the image.
    """
    if outside not in ("clip", "check"):
        raise LabelImageError(f"outside must be 'clip' or 'check', got {outside!r}")
    rows, cols = _check_shape(shape, downsample)
    values = _label_values(objects, LabelMode(mode), class_names, labels_from)
    dtype = np.dtype(dtype) if dtype is not None else _smallest_dtype(int(values.max(initial=0)))
    try:
        out = np.zeros((rows, cols), dtype=dtype)
    except (MemoryError, ValueError) as exc:  # numpy: ValueError beyond the address space
        size = rows * cols * dtype.itemsize / 2**30
        raise MemoryLimitError(
            f"a {rows:,} x {cols:,} {dtype} label image needs {size:,.1f} GiB, more memory than is free; "
            "use a coarser level or a larger downsample (or a smaller shape)"
        ) from exc
    areal: list[int] = []
    linear: list[int] = []
    for i, obj in enumerate(objects):
        if values[i] == 0 or obj.geometry is None or obj.geometry.is_empty:
            continue
        (areal if obj.geometry.geom_type in ("Polygon", "MultiPolygon") else linear).append(i)
    if outside == "check":
        _check_inside([objects[i] for i in sorted(areal + linear)], rows, cols, downsample, origin_xy)
    edges = _edges([objects[i].geometry for i in areal], np.array(areal), downsample, origin_xy)
    _fill(out, *_crossings(edges, rows), values)
    for i in linear:
        _draw_linear(out, objects[i].geometry, values[i], downsample, origin_xy)
    return out


def _check_inside(
    objects: list[PathObject], rows: int, cols: int, downsample: float, origin_xy: tuple[float, float]
) -> None:
    """Refuse when no object reaches into the image; warn when some lie (partly) outside it."""
    if not objects:
        return
    bounds = shapely.bounds(np.array([o.geometry for o in objects], dtype=object))
    x0, y0 = origin_xy
    x1, y1 = x0 + cols * downsample, y0 + rows * downsample
    minx, miny, maxx, maxy = bounds.T
    away = (maxx < x0) | (minx > x1) | (maxy < y0) | (miny > y1)
    beyond = (minx < x0) | (maxx > x1) | (miny < y0) | (maxy > y1)
    span = (
        f"the objects span x {minx.min():,.0f}..{maxx.max():,.0f}, y {miny.min():,.0f}..{maxy.max():,.0f} "
        f"(level-0 px); the image covers x {x0:,.0f}..{x1:,.0f}, y {y0:,.0f}..{y1:,.0f} "
        f"({rows:,} x {cols:,} px at downsample {downsample:g})"
    )
    if away.all():
        raise LabelImageError(
            f"none of the {len(objects):,} objects lies on the label image: {span}; were they drawn on "
            "another image, or is the level, downsample or shape wrong?"
        )
    if beyond.any():
        warnings.warn(
            f"{int(beyond.sum()):,} of {len(objects):,} objects lie wholly or partly "
            f"outside the label image, drawn only where they reach into it: {span}",
            GeoJSONWarning,
            stacklevel=3,
        )


def _check_shape(shape: tuple[int, int], downsample: float) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) < 0:
        raise LabelImageError(f"shape must be (rows, cols) >= 0, got {shape!r}")
    if not downsample > 0:
        raise LabelImageError(f"downsample must be > 0 (1 for level 0), got {downsample!r}")
    return int(shape[0]), int(shape[1])


def _label_values(
    objects: Sequence[PathObject], mode: LabelMode, class_names: Sequence[str] | None, labels_from: str | None
) -> np.ndarray:
    if mode is LabelMode.INSTANCE:
        if labels_from is None:
            return np.arange(1, len(objects) + 1, dtype=np.int64)
        values = []
        for i, obj in enumerate(objects):
            value = obj.measurements.get(labels_from)
            if value is None or not float(value).is_integer() or value < 0:
                raise LabelImageError(
                    f"object {i}: measurement {labels_from!r} = {value!r} is not a label (integer >= 0); "
                    f"pass labels_from=None to number objects 1..N"
                )
            values.append(int(value))
        return np.array(values, dtype=np.int64)
    names = (
        list(class_names)
        if class_names is not None
        else sorted({o.class_name for o in objects if o.class_name is not None})
    )
    index = {name: k + 1 for k, name in enumerate(names)}
    values, unclassified = [], 0
    for i, obj in enumerate(objects):
        if obj.class_name is None:
            unclassified += 1
            values.append(0)
        elif obj.class_name not in index:
            message = (
                f"object {i}: class {short(obj.class_name)} is not in class_names {short(names, 200)}; "
                "add it there"
            )
            raise LabelImageError(message)
        else:
            values.append(index[obj.class_name])
    if unclassified:
        warnings.warn(
            f"{unclassified} unclassified object(s) not drawn: class labels need a class",
            GeoJSONWarning,
            stacklevel=3,
        )
    return np.array(values, dtype=np.int64)


def _smallest_dtype(peak: int) -> np.dtype:
    for candidate in (np.uint8, np.uint16, np.uint32):
        if peak <= np.iinfo(candidate).max:
            return np.dtype(candidate)
    return np.dtype(np.uint64)


def _edges(geoms: list, owners: np.ndarray, downsample: float, origin_xy: tuple[float, float]) -> np.ndarray:
    """All ring edges as rows ``(owner, r0, c0, r1, c1)`` in pixel-centre coordinates."""
    if not geoms:
        return np.empty((0, 5))
    parts, part_owner = shapely.get_parts(np.array(geoms, dtype=object), return_index=True)
    ring_geoms, ring_part = shapely.get_rings(parts, return_index=True)
    ring_owner = part_owner[ring_part]
    coords, ring_of_point = shapely.get_coordinates(ring_geoms, return_index=True)
    rc = xy_to_rc(coords, downsample=downsample, origin_xy=origin_xy)
    same_ring = ring_of_point[1:] == ring_of_point[:-1]  # drop the edge joining two rings
    start, stop = rc[:-1][same_ring], rc[1:][same_ring]
    owner = owners[ring_owner[ring_of_point[:-1][same_ring]]]
    return np.column_stack([owner, start, stop])


def _crossings(edges: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scanline crossings at pixel-centre rows, paired into runs ``(owner, row, c_from, c_to)``."""
    owner, r0, c0, r1, c1 = edges.T if len(edges) else (np.empty(0),) * 5
    low, high = np.minimum(r0, r1), np.maximum(r0, r1)
    first = np.clip(np.ceil(low), 0, rows).astype(np.int64)  # rows i with low <= i < high
    last = np.clip(np.ceil(high), 0, rows).astype(np.int64)
    count = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(count)), count)
    row = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    t = (row - r0[edge]) / (r1[edge] - r0[edge])
    col = c0[edge] + t * (c1[edge] - c0[edge])
    order = np.lexsort((col, row, owner[edge]))
    who, row, col = owner[edge][order].astype(np.int64), row[order], col[order]
    return who[0::2], row[0::2], col[0::2], col[1::2]


def _fill(out: np.ndarray, who, row, c_from, c_to, values: np.ndarray) -> None:
    """Write runs ``[ceil(c_from), ceil(c_to))`` of each ``row`` with ``values[who]``."""
    cols = out.shape[1]
    j0 = np.clip(np.ceil(c_from), 0, cols).astype(np.int64)
    j1 = np.clip(np.ceil(c_to), 0, cols).astype(np.int64)
    keep = j1 > j0
    who, row, j0, length = who[keep], row[keep], j0[keep], (j1 - j0)[keep]
    flat = out.reshape(-1)
    ends = np.cumsum(length)
    start = 0
    while start < len(length):  # bounded chunks, in object order, so later objects win
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _CHUNK_PX, side="right"))
        stop = max(stop, start + 1)
        n = length[start:stop]
        offsets = np.repeat(row[start:stop] * cols + j0[start:stop] - (np.cumsum(n) - n), n)
        index = offsets + np.arange(int(n.sum()))
        value = np.repeat(values[who[start:stop]], n)
        last = len(index) - 1 - np.unique(index[::-1], return_index=True)[1]  # last write wins
        flat[index[last]] = value[last]
        start = stop


def _draw_linear(
    out: np.ndarray, geometry: shapely.Geometry, value: int, downsample: float, origin_xy: tuple[float, float]
) -> None:
    parts = getattr(geometry, "geoms", [geometry])
    for part in parts:
        rc = xy_to_rc(shapely.get_coordinates(part), downsample=downsample, origin_xy=origin_xy)
        rc = np.floor(rc + 0.5).astype(np.int64)  # the pixel whose square contains the point
        if part.geom_type in ("Point", "MultiPoint") or len(rc) == 1:
            rr, cc = rc[:, 0], rc[:, 1]
        else:
            segments = [draw_line(*a, *b) for a, b in itertools.pairwise(rc)]
            rr = np.concatenate([s[0] for s in segments])
            cc = np.concatenate([s[1] for s in segments])
        inside = (rr >= 0) & (rr < out.shape[0]) & (cc >= 0) & (cc < out.shape[1])
        out[rr[inside], cc[inside]] = value
