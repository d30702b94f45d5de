"""Grad-CAM of the tile under the mouse cursor, computed in a worker as the cursor moves.

Moving over a predicted tile starts one small worker (read the tile, one
backward pass); while it runs, further moves only remember the latest tile,
which is done next — so the viewer never queues work or stalls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CursorGradCam", "tile_at"]


def tile_at(grid: Any, point_rc: np.ndarray) -> int | None:
    """Index of the tile containing a level-0 (row, col) point, or ``None``."""
    b = grid.bounds_rc()
    r, c = point_rc
    hits = np.flatnonzero((b[:, 0] <= r) & (r < b[:, 2]) & (b[:, 1] <= c) & (c < b[:, 3]))
    return int(hits[0]) if hits.size else None


def _cam_for_tile(path: str, slide_mpp: float | None, grid: Any, index: int, model: Any, spec: Any) -> tuple:
    from napari_histo.io import open_slide
    from napari_histo.io.patches import read_tile
    from napari_histo.models.gradcam import grad_cam

    with open_slide(path, mpp=slide_mpp) as slide:
        tile = read_tile(slide, grid, index)
    maps, classes = grad_cam(model, tile[None], spec)
    return index, maps[0], int(classes[0])


class CursorGradCam:
    """Follows the cursor over the last prediction and shows that tile's Grad-CAM."""

    def __init__(self, viewer: Any, last: dict[str, Any]):
        self.viewer = viewer
        self.last = last
        self.layer: Any = None
        self.shown: int | None = None
        self._pending: int | None = None
        self._busy = False

    def enable(self) -> None:
        self.viewer.mouse_move_callbacks.append(self._on_move)

    def disable(self) -> None:
        if self._on_move in self.viewer.mouse_move_callbacks:
            self.viewer.mouse_move_callbacks.remove(self._on_move)

    def is_idle(self) -> bool:
        return not self._busy and self._pending is None

    def _on_move(self, viewer: Any, event: Any) -> None:
        point_rc = np.asarray(event.position[-2:], float) / self.last["mpp"]
        index = tile_at(self.last["result"].grid, point_rc)
        if index is None or index == self.shown:
            return
        self._pending = index
        if not self._busy:
            self._start()

    def _start(self) -> None:
        from napari.qt.threading import create_worker

        index, self._pending = self._pending, None
        meta = self.last["layer"].metadata["napari_histo"]
        self._busy = True
        worker = create_worker(_cam_for_tile, meta["path"], meta.get("mpp"), self.last["result"].grid, index,
                               self.last["model"], self.last["spec"], _start_thread=False)  # fmt: skip
        worker.returned.connect(self._show)
        worker.finished.connect(self._done)
        worker.start()

    def _done(self) -> None:
        self._busy = False
        if self._pending is not None and self._pending != self.shown:
            self._start()
        else:
            self._pending = None

    def _show(self, out: tuple) -> None:
        index, cam, klass = out
        grid, mpp = self.last["result"].grid, self.last["mpp"]
        px_um = grid.tile_px_level0 / cam.shape[0] * mpp
        r, c = grid.origins_rc[index]
        translate = ((r - 0.5) * mpp + px_um / 2, (c - 0.5) * mpp + px_um / 2)
        name = f"Grad-CAM under cursor ({self.last['spec'].class_names[klass]})"
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_image(cam, colormap="turbo", opacity=0.55, contrast_limits=(0, 1),
                                               scale=(px_um, px_um), translate=translate, name=name,
                                               units=self.last["layer"].units)  # fmt: skip
        else:
            self.layer.data = cam
            self.layer.translate = translate
            self.layer.name = name
        self.shown = index
