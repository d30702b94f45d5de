"""Label image → QuPath objects, as QuPath's ``ContourTracing.labelsToDetections`` does.

Every distinct non-zero label becomes one object whose geometry is the exact union of
its pixels' squares: boundaries run along pixel edges, holes are interior rings, and a
label split into several pieces becomes a MultiPolygon.  Rasterising the result with
:func:`~qupath_bridge.objects_to_labels` gives back the same label image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shapely
from scipy import ndimage

from qupath_bridge.errors import LabelImageError
from qupath_bridge.geometry import rc_to_xy
from qupath_bridge.objects import Classification, ObjectType, PathObject, class_color

__all__ = ["labels_to_objects", "trace_label"]


def labels_to_objects(
    labels: np.ndarray,
    *,
    downsample: float = 1.0,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    object_type: ObjectType | str = ObjectType.DETECTION,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    class_colors: Mapping[str, tuple[int, int, int]] | None = None,
    label_measurement: str | None = "Label",
) -> list[PathObject]:
    """Trace a label image into QuPath objects.

    Parameters
    ----------
    labels : numpy.ndarray, shape (rows, cols), integer dtype
        0 = background; any other value is one object (instance labels) or one class
        (class labels, with ``class_names``).
    downsample : float
        Level-0 pixels per label pixel (the pyramid level the labels were made at).
    origin_xy : (float, float)
        Level-0 ``(x, y)`` of the label image's top-left corner.
    object_type : ObjectType or str
        ``detection`` (default, as QuPath's ``labelsToDetections``), ``annotation``,
        ``tile``, ...
    class_names : sequence or mapping, optional
        Label → class: ``class_names[label - 1]`` for a sequence, ``class_names[label]``
        for a mapping.  Labels without a class stay unclassified.
    class_colors : mapping of str to (r, g, b), optional
        Class colours; default :func:`~qupath_bridge.objects.class_color`.
    label_measurement : str or None
        Measurement that stores each object's label value (None: none stored).

    Returns
    -------
    list of PathObject
        One object per label value, in increasing label order, geometry in level-0
        pixels along pixel edges.

    Raises
    ------
    LabelImageError
        Not 2-D, not an integer dtype, or negative labels.
    """
    labels = _check_labels(labels)
    object_type = ObjectType(object_type)
    classes = _class_lookup(class_names)
    colors = dict(class_colors or {})
    objects = []
    for index, region in enumerate(ndimage.find_objects(labels)):
        if region is None:
            continue
        value = index + 1
        geometry = trace_label(labels[region] == value, (region[0].start, region[1].start))
        geometry = _to_level0(geometry, downsample, origin_xy)
        name = classes.get(value)
        classification = (
            None if name is None else Classification.from_name(name, colors.get(name, class_color(name)))
        )
        measurements = {} if label_measurement is None else {label_measurement: float(value)}
        objects.append(
            PathObject(geometry, object_type, classification=classification, measurements=measurements)
        )
    return objects


def trace_label(mask: np.ndarray, offset_rc: tuple[int, int] = (0, 0)) -> shapely.Geometry:
    """Exact outline of the True pixels of a 2-D mask, in label-pixel *corner* coordinates.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (rows, cols)
    offset_rc : (int, int)
        Row and column of ``mask[0, 0]`` in the full image.

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        x = column edge, y = row edge (pixel ``(r, c)`` is the square
        ``[c, c + 1] × [r, r + 1]``); holes are interior rings; no collinear vertices.
    """
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    starts, ends = np.nonzero(step == 1), np.nonzero(step == -1)
    boxes = _stack_runs(starts[0] + offset_rc[0], starts[1] + offset_rc[1], ends[1] + offset_rc[1])
    merged = shapely.union_all(boxes)  # integer corners: the plain overlay is exact (and 6x faster)
    return shapely.simplify(merged, 0)  # drops the collinear vertices left where runs met


def _stack_runs(rows: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Boxes of the runs ``[c0, c1) × [row, row + 1)``, runs repeated on consecutive rows merged."""
    if len(rows) < 2:
        return shapely.box(c0, rows, c1, rows + 1)
    order = np.lexsort((rows, c1, c0))
    rows, c0, c1 = rows[order], c0[order], c1[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (c0[1:] != c0[:-1]) | (c1[1:] != c1[:-1]) | (rows[1:] != rows[:-1] + 1)
    group = np.cumsum(new) - 1
    top = rows[new]
    bottom = np.zeros(group[-1] + 1, dtype=rows.dtype)
    np.maximum.at(bottom, group, rows + 1)
    return shapely.box(c0[new], top, c1[new], bottom)


def _to_level0(
    geometry: shapely.Geometry, downsample: float, origin_xy: tuple[float, float]
) -> shapely.Geometry:
    # corner (row, col) of the label grid is pixel-centre (row - 0.5, col - 0.5): rc_to_xy does the rest
    return shapely.transform(
        geometry, lambda xy: rc_to_xy(xy[:, ::-1] - 0.5, downsample=downsample, origin_xy=origin_xy)
    )


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise LabelImageError(f"labels must be 2-D (rows, cols), got shape {labels.shape}; pass one plane")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise LabelImageError(
            f"labels must have an integer dtype, got {labels.dtype}; convert with labels.astype(np.uint32)"
        )
    if labels.size and labels.min() < 0:
        raise LabelImageError(f"labels must be >= 0, found {labels.min()}; 0 is background")
    return labels


def _class_lookup(class_names: Sequence[str] | Mapping[int, str] | None) -> dict[int, str]:
    if class_names is None:
        return {}
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items()}
    return {k + 1: str(name) for k, name in enumerate(class_names)}
