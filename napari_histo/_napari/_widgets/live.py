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

from napari_histo._napari._widgets.inference import grid_layer_placement, viewer_camera, visible_bounds_rc

__all__ = ["LivePredictor", "prepare_live"]


def prepare_live(path: str, slide_mpp: float | None, model_dir: str, device: str, min_tissue: float) -> dict:
    """Open the slide, load the model, plan the tissue grid (runs in a worker)."""
    from napari_histo.io import open_slide
    from napari_histo.io.patches import tissue_tile_grid
    from napari_histo.models import load_model, load_spec
    from napari_histo.models.loading import resolve_model_dir

    model_path = resolve_model_dir(model_dir)
    spec = load_spec(model_path)
    model = load_model(model_path, device=device)
    slide = open_slide(path, mpp=slide_mpp, on_error="fill")
    grid, _ = tissue_tile_grid(slide, spec.spacing_um_px, spec.patch_size_pixels, min_tissue)
    return {"slide": slide, "spec": spec, "model": model, "grid": grid}


def predict_in_order(state: dict, order: np.ndarray, device: str, batch_size: int):
    """Worker generator: yields (tile indices, probabilities) batch by batch, in ``order``."""
    from napari_histo.core.tiling import select_tiles
    from napari_histo.models.engine import InferenceConfig, InferenceProgress, predict_tiles

    subgrid = select_tiles(state["grid"], order)
    config = InferenceConfig(device=device, batch_size=batch_size, workers=4)
    for item in predict_tiles(state["slide"], state["spec"], subgrid, state["model"], config=config):
        if isinstance(item, InferenceProgress) and item.batch_indices is not None:
            yield order[item.batch_indices], item.batch_probabilities


class LivePredictor:
    """Keeps a Labels layer and a heatmap of the model's output for whatever the viewer shows."""

    def __init__(self, viewer: Any, slide_layer: Any, model_dir: str, *, device: str = "auto",
                 batch_size: int = 16, min_tissue: float = 0.5, debounce_ms: int = 250):  # fmt: skip
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.slide_layer = slide_layer
        meta = slide_layer.metadata["napari_histo"]
        self.mpp = meta.get("mpp") or 1.0
        self._args = (meta["path"], meta.get("mpp"), str(model_dir), device, min_tissue)
        self.device, self.batch_size = device, batch_size
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
        from napari.qt.threading import create_worker

        worker = create_worker(prepare_live, *self._args, _start_thread=False)
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
        if self.state is not None:
            self.state["slide"].close()

    # -- events ---------------------------------------------------------------------------
    def _ready(self, state: dict) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        from napari_histo.models.engine import grid_cells

        self.state = state
        spec, grid = state["spec"], state["grid"]
        shape, cells = grid_cells(grid)
        state["cells"] = cells
        state["probabilities"] = np.full((len(grid), spec.num_classes), np.nan, np.float32)
        state["done"] = np.zeros(len(grid), bool)
        colors = {0: (0, 0, 0, 0), None: (0, 0, 0, 0)}
        colors.update({i + 1: (*np.asarray(c) / 255, 1.0) for i, c in enumerate(spec.class_colors)})
        placement = grid_layer_placement(grid, self.mpp)
        name = self.slide_layer.name
        units = self.slide_layer.units
        self.labels_layer = self.viewer.add_labels(
            np.zeros(shape, np.uint8), name=f"{name} live classes", opacity=0.45, units=units,
            colormap=DirectLabelColormap(color_dict=colors), **placement,
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
        from napari.qt.threading import create_worker

        from napari_histo.core.viewport import view_order

        if self.state is None:
            return None
        if self.worker is not None:
            self.worker.quit()
        bounds = visible_bounds_rc(self.viewer, self.mpp)
        order = view_order(self.state["grid"], bounds, self.state["done"])
        if order.size == 0:
            self.worker = None
            return None
        self.worker = create_worker(predict_in_order, self.state, order, self.device, self.batch_size,
                                    _start_thread=False)  # fmt: skip
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

    def _paint(self, batch: tuple[np.ndarray, np.ndarray]) -> None:
        indices, probabilities = batch
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
