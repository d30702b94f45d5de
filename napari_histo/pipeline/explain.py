"""Why the model said so: Grad-CAM of predicted tiles, read from the open slide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_histo.core.tiling import TileGrid
from napari_histo.errors import InvalidParameterError
from napari_histo.io.regions import read_tile
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.session import SlideSession

__all__ = ["GradCamMosaic", "gradcam_mosaic", "gradcam_tiles"]


@dataclass(frozen=True)
class GradCamMosaic:
    """Grad-CAM maps of several tiles in one float32 image in [0, 1].

    ``top_rc`` is the level-0 pixel where the image starts and ``px_level0``
    the level-0 pixels per image pixel.
    """

    image: np.ndarray
    top_rc: np.ndarray
    px_level0: float


def gradcam_tiles(
    session: SlideSession, model: ModelHandle, grid: TileGrid, indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps (n, t, t) of tiles ``indices`` of ``grid`` and the class each explains (n,)."""
    from napari_histo.models.gradcam import grad_cam

    if len(indices) == 0:
        raise InvalidParameterError("no tile to explain: choose at least one predicted tile")
    tiles = np.stack([read_tile(session.slide, grid, int(i)) for i in indices])
    return grad_cam(model.network(), tiles, model.spec)


def gradcam_mosaic(
    session: SlideSession, model: ModelHandle, grid: TileGrid, indices: Sequence[int]
) -> GradCamMosaic:
    """Grad-CAM of tiles ``indices`` laid out where they are on the slide (overlaps keep the maximum)."""
    maps, _ = gradcam_tiles(session, model, grid, indices)
    origins_rc = grid.origins_rc[np.asarray(indices, dtype=np.int64)]
    t = maps.shape[1]
    px_l0 = grid.tile_px_level0 / t
    top = origins_rc.min(axis=0).astype(np.float64)
    span = origins_rc.max(axis=0) - top + grid.tile_px_level0
    mosaic = np.zeros(tuple(int(np.ceil(v / px_l0)) for v in span), np.float32)
    for (r, c), cam in zip(origins_rc, maps):
        y, x = round((r - top[0]) / px_l0), round((c - top[1]) / px_l0)
        window = mosaic[y : y + t, x : x + t]
        np.maximum(window, cam[: window.shape[0], : window.shape[1]], out=window)
    return GradCamMosaic(mosaic, top, px_l0)
