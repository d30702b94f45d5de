"""Grad-CAM of the tile under the mouse cursor, computed in a worker as the cursor moves.

Moving over a predicted tile starts one small worker (read the tile, one
backward pass); while it runs, further moves only remember the latest tile,
which is done next — so the viewer never queues work or stalls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo._napari._session import slide_session, world_per_px, world_to_level0
from napari_histo._napari._widgets._ml_stack import in_worker
from napari_histo._napari._widgets._workers import make_worker
from napari_histo.core.viewport import tile_at
from napari_histo.pipeline.explain import gradcam_tiles

__all__ = ["CursorGradCam"]


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
        point_rc = world_to_level0(self.last["layer"], np.asarray(event.position))
        index = tile_at(self.last["result"].grid, point_rc)
        if index is None or index == self.shown:
            return
        self._pending = index
        if not self._busy:
            self._start()

    def _start(self) -> None:
        index, self._pending = self._pending, None
        session = slide_session(self.last["layer"])
        self._busy = True
        grid = self.last["result"].grid
        worker = make_worker(in_worker(gradcam_tiles), session, self.last["model"], grid, [index])
        worker.returned.connect(lambda out, index=index: self._show(index, out))
        worker.finished.connect(self._done)
        worker.start()

    def _done(self) -> None:
        self._busy = False
        if self._pending is not None and self._pending != self.shown:
            self._start()
        else:
            self._pending = None

    def _show(self, index: int, out: tuple) -> None:
        maps, classes = out
        cam, klass = maps[0], int(classes[0])
        layer, grid = self.last["layer"], self.last["result"].grid
        s = world_per_px(layer)
        px_um = grid.tile_px_level0 / cam.shape[0] * s
        corner = np.asarray(layer.translate[-2:], float) + (grid.origins_rc[index] - 0.5) * s
        translate = tuple(corner + px_um / 2)
        name = f"Grad-CAM under cursor ({self.last['model'].spec.class_names[klass]})"
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_image(cam, colormap="turbo", opacity=0.55, contrast_limits=(0, 1),
                                               scale=(px_um, px_um), translate=translate, name=name,
                                               units=layer.units)  # fmt: skip
        else:
            self.layer.data = cam
            self.layer.translate = translate
            self.layer.name = name
        self.shown = index
