"""Tile predictions → QuPath ``tile`` objects, as QuPath's WSInfer extension makes them.

Each tile becomes a square ``tile`` object with one measurement per class (the class
name → its probability) and the top-1 class as its classification, so QuPath's
measurement maps, classifiers and exports work on model output as on WSInfer's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shapely

from qupath_bridge.errors import LabelImageError
from qupath_bridge.geometry import rc_to_xy
from qupath_bridge.objects import Classification, ObjectType, PathObject, class_color

__all__ = ["probability_grid_to_tiles", "tiles_to_objects"]


def tiles_to_objects(
    tile_xy: np.ndarray,
    tile_size_px: float | tuple[float, float],
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    class_colors: Mapping[str, tuple[int, int, int]] | None = None,
    object_type: ObjectType | str = ObjectType.TILE,
    names: Sequence[str] | None = None,
) -> list[PathObject]:
    """QuPath tile objects from tile positions and per-class probabilities.

    Parameters
    ----------
    tile_xy : numpy.ndarray, shape (n_tiles, 2), float
        Level-0 ``(x, y)`` of each tile's top-left corner, pixels.
    tile_size_px : float or (float, float)
        Tile width (and height) in level-0 pixels.
    probabilities : numpy.ndarray, shape (n_tiles, n_classes), float
        Per-class scores, e.g. softmax output.  A row of all-NaN gives an unclassified tile.
    class_names : sequence of str, length n_classes
        Measurement names and classes, in column order.
    class_colors : mapping of str to (r, g, b), optional
        Default: :func:`~qupath_bridge.objects.class_color` (QuPath's colours for its
        standard classes).
    object_type : ObjectType or str
        ``tile`` (default, as the WSInfer extension) or ``detection``/``annotation``.
    names : sequence of str, optional
        Object names; default ``"Tile i"`` as WSInfer names them.

    Returns
    -------
    list of PathObject
        One per tile; measurements ``{class: probability}``; classification = the class
        with the highest probability (NaNs ignored).

    Raises
    ------
    LabelImageError
        Mismatched shapes or a non-positive tile size.
    """
    tile_xy = np.asarray(tile_xy, dtype=np.float64).reshape(-1, 2)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if isinstance(tile_size_px, Sequence | np.ndarray):
        width, height = tile_size_px
    else:
        width = height = tile_size_px
    if probabilities.shape != (len(tile_xy), len(class_names)):
        raise LabelImageError(
            f"probabilities must have shape (n_tiles, n_classes) = ({len(tile_xy)}, {len(class_names)}), "
            f"got {probabilities.shape}; one row per tile, one column per class name"
        )
    if not (width > 0 and height > 0):
        raise LabelImageError(f"tile_size_px must be > 0, got {tile_size_px!r}")
    colors = {name: (class_colors or {}).get(name, class_color(name)) for name in class_names}
    classes = [Classification.from_name(name, colors[name]) for name in class_names]
    scored = ~np.isnan(probabilities).all(axis=1)
    top = np.zeros(len(tile_xy), dtype=np.int64)
    if scored.any():
        top[scored] = np.nanargmax(probabilities[scored], axis=1)
    boxes = shapely.box(tile_xy[:, 0], tile_xy[:, 1], tile_xy[:, 0] + width, tile_xy[:, 1] + height)
    object_type = ObjectType(object_type)
    keys = [str(name) for name in class_names]
    return [
        PathObject(
            boxes[i],
            object_type,
            name=names[i] if names is not None else f"Tile {i + 1}",
            classification=classes[top[i]] if scored[i] else None,
            measurements=dict(zip(keys, probabilities[i].tolist())),
        )
        for i in range(len(tile_xy))
    ]


def probability_grid_to_tiles(
    probabilities: np.ndarray,
    tile_size_px: float,
    class_names: Sequence[str],
    *,
    stride_px: float | None = None,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    class_colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> list[PathObject]:
    """Tile objects from a grid of per-class probabilities (a tiled model's output map).

    Parameters
    ----------
    probabilities : numpy.ndarray, shape (grid_rows, grid_cols, n_classes), float
        Cell ``(i, j)`` holds the scores of the tile whose top-left corner is at
        ``origin + (j * stride, i * stride)`` level-0 pixels.  All-NaN cells (background,
        not tiled) give no object.
    tile_size_px : float
        Tile side in level-0 pixels.
    class_names : sequence of str
    stride_px : float, optional
        Distance between tile corners in level-0 pixels; default ``tile_size_px``.
    origin_xy : (float, float)
        Level-0 ``(x, y)`` of the top-left corner of tile ``(0, 0)``.
    class_colors : mapping, optional

    Returns
    -------
    list of PathObject
        Tiles in row-major grid order, named ``"Tile i"``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 3:
        raise LabelImageError(
            f"probabilities must be (grid_rows, grid_cols, n_classes), got shape {probabilities.shape}"
        )
    stride = tile_size_px if stride_px is None else stride_px
    rows, cols = np.nonzero(~np.isnan(probabilities).all(axis=2))
    # the corner of grid cell (i, j) is pixel-centre (i - 0.5, j - 0.5) of a grid with downsample = stride
    corners = rc_to_xy(np.column_stack([rows, cols]) - 0.5, downsample=stride, origin_xy=origin_xy)
    return tiles_to_objects(
        corners, tile_size_px, probabilities[rows, cols], class_names, class_colors=class_colors
    )
