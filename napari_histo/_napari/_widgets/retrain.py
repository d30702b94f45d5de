"""Dock widget: correct the model, train on the corrections, predict again.

Paint a model's class map (the ``classes`` Labels layer from *Run a model*), or
draw annotations with a ``class`` feature (e.g. opened from QuPath), then
*Train on corrections*: the labelled tiles are exported as class folders,
``histo train`` fine-tunes the model in a child process (progress shown, napari
stays responsive), and the slide is predicted again with the new model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox, create_widget

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack
from napari_histo._napari._widgets._result_layers import add_prediction_layers
from napari_histo._napari._widgets._workers import start_with_cancel

__all__ = ["RetrainWidget", "corrected_tile_classes", "retrain_and_predict"]


def corrected_tile_classes(
    layer: Any, predictions: Any, class_names: tuple[str, ...], mpp: float
) -> np.ndarray:
    """Class index per tile of ``predictions.grid``: painted classes or classified shapes; -1 = none."""
    from napari.layers import Labels

    from napari_histo.core.viewport import tiles_in_polygons
    from napari_histo.models.engine import grid_cells

    grid = predictions.grid
    if isinstance(layer, Labels):
        _, cells = grid_cells(grid)
        return np.asarray(layer.data)[cells[:, 0], cells[:, 1]].astype(np.int64) - 1
    classes = np.full(len(grid), -1, np.int64)
    names = list(layer.features["class"]) if "class" in layer.features else []
    for shape, name in zip(layer.data, names):
        if name in class_names:
            polygon = np.asarray([layer.data_to_world(v) for v in shape])[:, -2:] / mpp
            classes[tiles_in_polygons(grid, [polygon])] = class_names.index(name)
    return classes


def retrain_and_predict(slide_path: str, slide_mpp: float | None, predictions: Any, model_dir: str,
                        tile_classes: np.ndarray, work_dir: str, epochs: int, lr: float):  # fmt: skip
    """Worker generator: yields (stage, done, total); returns (predictions, model, spec, new model dir)."""
    from napari_histo.io import open_slide
    from napari_histo.io.training_export import export_labelled_tiles
    from napari_histo.models import load_model
    from napari_histo.models.engine import InferenceConfig, InferenceProgress, predict_tiles
    from napari_histo.models.finetune import finetune_recipe, run_finetune
    from napari_histo.models.loading import resolve_model_dir

    spec = predictions.spec
    work = Path(work_dir)
    labelled = int((tile_classes >= 0).sum())
    if labelled < 4 or len(set(tile_classes[tile_classes >= 0].tolist())) < 2:
        raise ValueError("label at least a few tiles of at least two classes (paint the classes layer)")
    with open_slide(slide_path, mpp=slide_mpp, on_error="fill") as slide:
        export_labelled_tiles(slide, predictions.grid, tile_classes, spec.class_names, work / "tiles")
        yield "exported tiles", labelled, labelled
        recipe = finetune_recipe(spec, resolve_model_dir(model_dir), work / "tiles", work / "runs",
                                 epochs=epochs, lr=lr)  # fmt: skip
        training = run_finetune(recipe, work / "recipe.yaml")
        try:
            while True:
                done, total = next(training)
                yield "training", done, total
        except StopIteration as stop:
            new_model = stop.value
        model = load_model(new_model)
        config = InferenceConfig(batch_size=64)
        result = None
        for item in predict_tiles(slide, spec, predictions.grid, model, config=config):
            if isinstance(item, InferenceProgress):
                yield "predicting", item.done, item.total
            else:
                result = item
    return result, model, spec, new_model


class RetrainWidget(Container):
    """Corrections layer, epochs, learning rate → fine-tuned model → new class map."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.corrections = create_widget(annotation="napari.layers.Layer", label="corrections")
        self.epochs = SpinBox(value=3, min=1, max=200, label="epochs")
        self.lr = FloatSpinBox(value=1e-4, min=1e-6, max=1e-1, step=1e-5, label="learning rate")
        default_work = Path.home() / "napari-histo-finetune"
        self.work_dir = create_widget(
            annotation=Path, label="work folder", options={"mode": "d"}, value=default_work
        )
        self.run_button = PushButton(text="Train on corrections and predict again")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.stage = Label(value="", label="stage")
        self.progress = ProgressBar(min=0, max=1, value=0, label="progress")
        self.summary = Label(value="", label="result")
        super().__init__(widgets=[self.layer, self.corrections, self.epochs, self.lr, self.work_dir,
                                  self.run_button, self.cancel_button, self.stage, self.progress,
                                  self.summary])  # fmt: skip
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.new_model: Path | None = None

    def run(self) -> Any:
        from napari.qt.threading import create_worker

        slide_layer, classes_layer = self._layers()
        ensure_ml_stack()
        meta = slide_layer.metadata["napari_histo"]
        info = classes_layer.metadata["napari_histo"]
        predictions, model = info["predictions"], info["model"]
        corrections = self.corrections.value
        mpp = meta.get("mpp") or 1.0
        tile_classes = corrected_tile_classes(corrections, predictions, predictions.spec.class_names, mpp)
        self._worker = create_worker(
            retrain_and_predict, meta["path"], meta.get("mpp"), predictions, model, tile_classes,
            str(self.work_dir.value), self.epochs.value, self.lr.value, _start_thread=False,
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(
            lambda out: self._show(out, slide_layer, int((tile_classes >= 0).sum()))
        )
        self._worker.errored.connect(lambda exc: setattr(self.summary, "value", f"failed: {exc}"))
        return start_with_cancel(self._worker, self.cancel_button)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.summary.value = "cancelled"

    def _layers(self) -> tuple[Any, Any]:
        slide_layer = self.layer.value
        if slide_layer is None or "napari_histo" not in slide_layer.metadata:
            raise ValueError("choose the slide layer (opened by napari-histo)")
        for layer in reversed(self._viewer.layers):
            info = layer.metadata.get("napari_histo", {}) if hasattr(layer, "metadata") else {}
            if info.get("kind") == "tile classes" and "predictions" in info:
                return slide_layer, layer
        raise ValueError("run a model first (Run a model): the corrections refer to its tiles")

    def _on_progress(self, value: tuple[str, int, int]) -> None:
        stage, done, total = value
        self.stage.value = stage
        self.progress.max = max(1, total)
        self.progress.value = done

    def _show(self, out: tuple, slide_layer: Any, labelled: int) -> None:
        result, _model, _spec, new_model = out
        mpp = slide_layer.metadata["napari_histo"].get("mpp") or 1.0
        layers = add_prediction_layers(self._viewer, result, slide_layer, mpp)
        layers["classes"].name = f"{slide_layer.name} classes (fine-tuned)"
        layers["classes"].metadata["napari_histo"].update({"predictions": result, "model": str(new_model)})
        self.new_model = Path(new_model)
        self.summary.value = f"fine-tuned on {labelled} tiles; predicted again with {new_model}"
