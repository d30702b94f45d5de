"""Dock widget: correct the model, train on the corrections, predict again.

Paint a model's class map (the ``classes`` Labels layer from *Run a model*), or
draw annotations with a ``class`` feature (e.g. opened from QuPath), then
*Train on corrections*: :func:`napari_histo.pipeline.finetune.finetune_and_predict`
exports the labelled tiles as class folders, fine-tunes the model in a child
process (progress shown, napari stays responsive) and predicts the slide again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_histo._napari._session import slide_session, world_to_level0
from napari_histo._napari._widgets._docking import tabify_when_docked
from napari_histo._napari._widgets._feedback import guarded, report, wrap_text
from napari_histo._napari._widgets._ml_stack import in_worker
from napari_histo._napari._widgets._result_layers import add_prediction_layers
from napari_histo._napari._widgets._workers import make_worker, start_with_cancel
from napari_histo.core.tiling import grid_cells
from napari_histo.core.viewport import tiles_in_polygons
from napari_histo.errors import InvalidParameterError
from napari_histo.pipeline.finetune import finetune_and_predict
from napari_histo.pipeline.model import resolve_model

__all__ = ["RetrainWidget", "corrected_tile_classes"]


#: what "Train on" offers: only the tiles whose class was changed, or every labelled tile
TRAIN_ON = ("corrected tiles only", "all labelled tiles")


def corrected_tile_classes(
    layer: Any, predictions: Any, slide_layer: Any, corrected_only: bool = True
) -> np.ndarray:
    """Class index per tile of ``predictions.grid`` from painted classes or classified shapes; -1 = none.

    On a painted class map, ``corrected_only`` keeps the tiles whose painted class
    differs from the model's call (the model's own calls are not training labels).
    """
    from napari.layers import Labels

    grid = predictions.grid
    class_names = list(predictions.spec.class_names)
    if isinstance(layer, Labels):
        _, cells = grid_cells(grid)
        painted = np.asarray(layer.data)[cells[:, 0], cells[:, 1]].astype(np.int64) - 1
        if corrected_only:
            painted[painted == predictions.classes] = -1
        return painted
    classes = np.full(len(grid), -1, np.int64)
    names = list(layer.features["class"]) if "class" in layer.features else []
    for shape, name in zip(layer.data, names):
        if name in class_names:
            polygon = world_to_level0(slide_layer, np.asarray([layer.data_to_world(v) for v in shape]))
            classes[tiles_in_polygons(grid, [polygon])] = class_names.index(name)
    return classes


class RetrainWidget(Container):
    """Corrections layer, epochs, learning rate → fine-tuned model → new class map."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.corrections = create_widget(annotation="napari.layers.Layer", label="corrections")
        self.train_on = ComboBox(choices=list(TRAIN_ON), value=TRAIN_ON[0], label="train on")
        self.epochs = SpinBox(value=3, min=1, max=200, label="epochs")
        self.lr = FloatSpinBox(value=1e-4, min=1e-6, max=1e-1, step=1e-5, label="learning rate")
        self.corrections.tooltip = "The class map you painted (from Run a model), or shapes with a 'class'."
        self.train_on.tooltip = "Only the tiles whose class you changed, or every tile with a class."
        self.epochs.tooltip = "Passes over the corrected tiles; 3 is usually enough for a correction."
        self.lr.tooltip = "How far each step moves the model; keep it small (1e-4) to fine-tune."
        default_work = Path.home() / "napari-histo-finetune"
        self.work_dir = create_widget(
            annotation=Path, label="work folder", options={"mode": "d"}, value=default_work
        )
        self.run_button = PushButton(text="Train on corrections and predict again")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.stage = Label(value="", label="stage")
        self.progress = ProgressBar(min=0, max=1, value=0, label="progress")
        self.summary = Label(value="", label="result")
        super().__init__(widgets=[self.layer, self.corrections, self.train_on, self.epochs, self.lr,
                                  self.work_dir, self.run_button, self.cancel_button, self.stage,
                                  self.progress, self.summary])  # fmt: skip
        tabify_when_docked(self)
        wrap_text(self.summary, self.stage)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.new_model: Path | None = None
        viewer.layers.events.inserted.connect(self._offer_new_class_map)
        for layer in viewer.layers:
            self._offer_new_class_map(layer)

    def _offer_new_class_map(self, event: Any) -> None:
        """A new class map from *Run a model* becomes the layer to correct (not the slide image)."""
        layer = getattr(event, "value", event)
        if _is_class_map(layer):
            self.corrections.reset_choices()
            self.corrections.value = layer

    @guarded(lambda self: self.summary)
    def run(self) -> Any:
        slide_layer, classes_layer = self._layers()
        session = slide_session(slide_layer)
        info = classes_layer.metadata["napari_histo"]
        if info.get("model") is None:
            raise InvalidParameterError(
                f"{classes_layer.name!r} records no model: run a model on the slide first"
            )
        predictions, model = info["predictions"], resolve_model(info["model"])
        corrected_only = self.train_on.value == TRAIN_ON[0]
        tile_classes = corrected_tile_classes(
            self.corrections.value, predictions, slide_layer, corrected_only
        )
        chosen = tile_classes[tile_classes >= 0]
        if corrected_only and chosen.size and len(set(chosen.tolist())) < 2:
            name = predictions.spec.class_names[int(chosen[0])]
            raise InvalidParameterError(
                f"all {chosen.size} corrected tiles are {name!r}: a model learns from at least two classes. "
                f"Correct some tiles into another class too, or choose 'train on: {TRAIN_ON[1]}' to keep "
                "the model's other calls as examples"
            )
        self._worker = make_worker(
            in_worker(finetune_and_predict), session, model, predictions, tile_classes,
            str(self.work_dir.value), epochs=self.epochs.value, lr=self.lr.value,
            on_error=lambda exc: report(self.summary, exc),
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(lambda out: self._show(out, slide_layer))
        self.summary.value = f"{int((tile_classes >= 0).sum())} corrected tiles: exporting, then training ..."
        self.progress.max = 0  # busy until the first step reports
        return start_with_cancel(self._worker, self.cancel_button)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.summary.value = "cancelled"

    def _layers(self) -> tuple[Any, Any]:
        """The slide layer and the class map whose tiles the corrections refer to."""
        from napari.layers import Labels, Shapes

        slide_layer = self.layer.value
        slide_session(slide_layer)
        corrections = self.corrections.value
        if _is_class_map(corrections):
            return slide_layer, corrections  # the painted class map itself
        if not isinstance(corrections, Labels | Shapes):
            raise InvalidParameterError(
                f"'corrections' is {getattr(corrections, 'name', 'empty')!r}: choose the painted classes "
                "layer (from Run a model) or a Shapes layer with a 'class' feature"
            )
        for layer in reversed(self._viewer.layers):
            if _is_class_map(layer):
                return slide_layer, layer
        raise InvalidParameterError("run a model first (Run a model): the corrections refer to its tiles")

    def _on_progress(self, item: Any) -> None:
        """Stage, and for training each batch with the time left; busy while the total is unknown."""
        left = getattr(item, "seconds_left", None)
        self.stage.value = item.stage + (f", ~{left:,.0f} s left" if left else "")
        self.progress.max = item.total if item.total > 0 else 0
        self.progress.value = min(item.done, item.total)

    def _show(self, out: Any, slide_layer: Any) -> None:
        add_prediction_layers(self._viewer, out.predictions, slide_layer, out.model, suffix=" (fine-tuned)")
        self.stage.value = "done"
        self.new_model = Path(out.model.directory)
        self.summary.value = (
            f"fine-tuned on {sum(out.tiles.values())} tiles; predicted again with {self.new_model}"
        )


def _is_class_map(layer: Any) -> bool:
    info = getattr(layer, "metadata", {}).get("napari_histo", {}) if layer is not None else {}
    return info.get("kind") == "tile classes" and "predictions" in info
