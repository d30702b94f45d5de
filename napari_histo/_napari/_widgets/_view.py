"""Where the viewer looks and where grid results go, in the slide layer's own coordinates."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo._napari._session import world_per_px, world_to_level0

__all__ = ["canvas_size_hw", "grid_layer_placement", "viewer_camera", "visible_bounds_rc"]


def viewer_camera(viewer: Any) -> Any:
    """The canvas camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def canvas_size_hw(viewer: Any) -> tuple[int, int]:
    """The canvas (height, width) in screen pixels, through public API only.

    Plugin docks get a viewer proxy on which private attributes (``window._qt_viewer``)
    warn and will stop working in napari 0.10; ``viewer.canvas.size`` is public since 0.9.
    """
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and getattr(canvas, "size", None) is not None:
        h, w = canvas.size
    else:  # napari < 0.9
        h, w = viewer._canvas_size
    return int(h), int(w)


def visible_bounds_rc(viewer: Any, slide_layer: Any) -> tuple[float, float, float, float]:
    """Level-0 (row0, col0, row1, col1) pixels of the slide that the canvas shows now."""
    camera = viewer_camera(viewer)
    centre = np.asarray(camera.center[-2:], float)
    size = np.asarray(canvas_size_hw(viewer), float) / camera.zoom
    (r0, c0), (r1, c1) = world_to_level0(slide_layer, np.stack([centre - size / 2, centre + size / 2]))
    return float(r0), float(c0), float(r1), float(c1)


def grid_layer_placement(grid: Any, slide_layer: Any) -> dict[str, tuple[float, ...]]:
    """``scale``/``translate`` putting grid cell (i, j) over its tile on the slide layer.

    Level-0 pixel centres are at ``i * s`` in the world (``s``: the layer's
    scale); a tile from pixel ``r`` spans ``[(r - 0.5) s, (r + size - 0.5) s]``,
    so cell (0, 0)'s centre is at ``(size/2 - 0.5) s``.
    """
    s = world_per_px(slide_layer)
    stride = grid.stride_px_level0 * s
    offset = np.asarray(slide_layer.translate[-2:], float) + (grid.tile_px_level0 / 2 - 0.5) * s
    return {"scale": (stride, stride), "translate": tuple(float(v) for v in offset)}
