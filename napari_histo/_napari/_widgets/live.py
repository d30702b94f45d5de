"""Live prediction: the model follows the view — visible tiles first, centre first, refined as you pan.

A :class:`LivePredictor` listens to the camera; 250 ms after the view stops
moving it predicts the visible tissue tiles that have no prediction yet, in
a thread worker, nearest the centre first, and paints each batch into a Labels
layer (class colours) and a heatmap as it arrives.  Panning again cancels the
run in flight (after its current batch) and starts on the new view; tiles
already predicted are never predicted twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo._napari._session import slide_session
from napari_histo._napari._widgets._ml_stack import in_worker
from napari_histo._napari._widgets._result_layers import label_colormap
from napari_histo._napari._widgets._view import grid_layer_placement, viewer_camera, visible_bounds_rc
from napari_histo._napari._widgets._workers import make_worker
from napari_histo.core.tiling import grid_cells
from napari_histo.core.viewport import view_order
from napari_histo.errors import InvalidParameterError
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.predict import plan_live, predict_in_order

__all__ = ["LivePredictor"]


class LivePredictor:
    """Keeps a Labels layer and a heatmap of the model's output for whatever the viewer shows."""

    def __init__(self, viewer: Any, slide_layer: Any, model: ModelHandle, *, batch_size: int = 16,
                 min_tissue: float = 0.5, debounce_ms: int = 250, on_error: Any = None):  # fmt: skip
        from qtpy.QtCore import QTimer

        from napari_histo.models.engine import InferenceConfig

        if model.spec.task.value == "segmentation":
            raise InvalidParameterError(
                f"live prediction follows the view tile by tile with a classifier; {model.name} is a "
                "segmentation model: untick live and press Run model to segment the whole slide"
            )
        self.viewer = viewer
        self.slide_layer = slide_layer
        self.session = slide_session(slide_layer)
        self.model = model
        self.min_tissue = min_tissue
        self.on_error = on_error  # called with the exception when preparing or predicting fails
        self.config = InferenceConfig(device=model.device, batch_size=batch_size, workers=4)
        self.state: dict | None = None
        self.worker: Any = None
        self.labels_layer: Any = None
        self.heat_layer: Any = None
        self.predicted_order: list[int] = []  # every tile predicted, in the order it was done
        self._running = 0  # prediction workers started and not yet finished
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.refresh)

    # -- lifetime -------------------------------------------------------------------------
    def start(self) -> Any:
        """Prepare (in a worker), then predict the current view; returns the preparing worker."""
        worker = make_worker(in_worker(plan_live), self.session, self.model, self.min_tissue,
                             on_error=self.on_error)  # fmt: skip
        worker.returned.connect(self._ready)
        worker.start()
        return worker

    def stop(self) -> None:
        camera = viewer_camera(self.viewer)
        for signal in (camera.events.center, camera.events.zoom):
            try:
                signal.disconnect(self._schedule)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._timer.stop()
        if self.worker is not None:
            self.worker.quit()

    # -- events ---------------------------------------------------------------------------
    def _ready(self, grid: Any) -> None:
        spec = self.model.spec
        shape, cells = grid_cells(grid)
        self.state = {
            "grid": grid,
            "cells": cells,
            "probabilities": np.full((len(grid), spec.num_classes), np.nan, np.float32),
            "done": np.zeros(len(grid), bool),
        }
        placement = grid_layer_placement(grid, self.slide_layer)
        name, units = self.slide_layer.name, self.slide_layer.units
        self.labels_layer = self.viewer.add_labels(
            np.zeros(shape, np.uint8), name=f"{name} live classes", opacity=0.45, units=units,
            colormap=label_colormap(spec), **placement,
        )  # fmt: skip
        self.heat_layer = self.viewer.add_image(
            np.zeros(shape, np.float32), name=f"{name} live p({spec.class_names[-1]})", colormap="inferno",
            contrast_limits=(0, 1), opacity=0.6, blending="additive", units=units, visible=False, **placement,
        )  # fmt: skip
        camera = viewer_camera(self.viewer)
        camera.events.center.connect(self._schedule)
        camera.events.zoom.connect(self._schedule)
        self.refresh()

    def _schedule(self, event: Any = None) -> None:
        self._timer.start()  # restarts: fires once the view has been still for the interval

    def refresh(self) -> Any:
        """Predict the visible tiles that have no prediction yet (cancels a run in flight)."""
        if self.state is None:
            return None
        if self.worker is not None:
            self.worker.quit()
        bounds = visible_bounds_rc(self.viewer, self.slide_layer)
        order = view_order(self.state["grid"], bounds, self.state["done"])
        if order.size == 0:
            self.worker = None
            return None
        self.worker = make_worker(predict_in_order, self.session, self.model, self.state["grid"], order,
                                  config=self.config, on_error=self.on_error)  # fmt: skip
        self.worker.yielded.connect(self._paint)
        self.worker.finished.connect(self._on_finished)
        self._running += 1
        self.worker.start()
        return self.worker

    def _on_finished(self) -> None:
        self._running -= 1

    def is_idle(self) -> bool:
        """Ready, and no prediction running or waiting for the view to settle."""
        return self.state is not None and self._running == 0 and not self._timer.isActive()

    def _paint(self, item: Any) -> None:
        indices, probabilities = item.batch_indices, item.batch_probabilities
        state = self.state
        fresh = ~state["done"][indices]
        indices, probabilities = indices[fresh], probabilities[fresh]
        state["probabilities"][indices] = probabilities
        state["done"][indices] = True
        self.predicted_order.extend(indices.tolist())
        rows, cols = state["cells"][indices].T
        self.labels_layer.data[rows, cols] = probabilities.argmax(axis=1) + 1
        self.heat_layer.data[rows, cols] = probabilities[:, -1]
        self.labels_layer.refresh()
        self.heat_layer.refresh()
