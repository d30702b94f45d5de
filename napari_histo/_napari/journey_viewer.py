"""Open the journey's results in napari: the slide, the model's classes and heatmaps, the docks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_histo._napari._widgets._result_layers import add_prediction_layers
from napari_histo._napari.reader import slide_layer_data
from napari_histo._napari.viewer import show_scale_bar
from napari_histo.pipeline.session import open_session

__all__ = ["show_journey"]


def show_journey(slide_path: str | Path, predictions: str | Path | None, model: str | None = None,
                 block: bool = True, viewer: Any = None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """A viewer with the slide, the stored predictions (if any) and the napari-histo docks in order.

    Returns the viewer and the dock widgets by role: ``tissue``, ``stain``, ``infer``, ``retrain``.
    """
    import napari

    from napari_histo._napari._widgets.inference import InferenceWidget
    from napari_histo._napari._widgets.retrain import RetrainWidget
    from napari_histo._napari._widgets.stain import StainWidget
    from napari_histo._napari._widgets.tissue_tiles import TissueTilesWidget

    viewer = viewer or napari.Viewer(title="napari-histo")
    data, kwargs, _ = slide_layer_data(open_session(slide_path))
    slide_layer = viewer.add_image(data, **kwargs)
    if predictions is not None and Path(predictions).exists():
        from napari_histo.models.engine import load_tile_predictions

        result = load_tile_predictions(predictions)
        add_prediction_layers(viewer, result, slide_layer, model)
    docks = [
        ("tissue", "1. Tissue and tiles", TissueTilesWidget),
        ("stain", "2. Stain normalisation", StainWidget),
        ("infer", "3. Run a model", InferenceWidget),
        ("retrain", "4. Correct and retrain", RetrainWidget),
    ]
    widgets = {}
    for role, name, cls in docks:
        widgets[role] = cls(viewer)
        chooser = widgets[role].image if role == "stain" else widgets[role].layer
        chooser.value = slide_layer
        viewer.window.add_dock_widget(widgets[role], name=name, area="right", tabify=True)
    inference = widgets["infer"]
    if model and model in inference.builtin.choices:
        inference.builtin.value = model
    show_scale_bar(viewer)
    viewer.reset_view()
    if block:
        napari.run()
    return viewer, widgets
