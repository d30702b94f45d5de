"""README's "A pathologist's day", by clicking alone, on each real slide in ../shared/data.

The docks are opened as from the Plugins menu; every action is a mouse click on a
native button, a choice picked in a drop-down, text typed into a field, or a
stroke of the label brush (``Labels.paint``, what the brush calls).  No widget
method is called directly.  The TCGA slide has no µm/px: it is typed once into
the tissue dock, and every dock and the layer's scale use it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import shared_file
from user_actions import click as _click
from user_actions import pick as _pick
from user_actions import type_text as _type

pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL

pytestmark = [pytest.mark.qt, pytest.mark.slow]

SLIDES = {  # file, µm/px to type (None: the file has it), µm/px expected on the layer
    "cmu1-svs": ("CMU-1-Small-Region.svs", None, 0.499),
    "tcga-svs-without-mpp": ("tcga-cr-7395-01a-01-ts1.svs", "0.25", 0.25),
    "ndpi": ("test3-DAPI-2-387.ndpi", None, 0.2282),
}
DOCKS = ("Tissue and tiles", "Stain normalisation", "Run a model", "Correct and retrain")


def _no_warning(*labels) -> None:
    for label in labels:
        assert "⚠" not in label.value, label.value


@pytest.mark.parametrize("key", list(SLIDES))
def test_a_pathologists_day_by_clicking_alone(key, make_napari_viewer, qtbot, tmp_path):
    from napari.layers import Image, Labels, Shapes

    import qupath_bridge as qb

    name, typed_mpp, mpp = SLIDES[key]
    slide_path = shutil.copy(shared_file("wsi", name), tmp_path / name)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    slide = viewer.open(str(slide_path), plugin="napari-histo")[0]
    docks = {dock: viewer.window.add_plugin_dock_widget("napari-histo", dock)[1] for dock in DOCKS}
    tissue, stain, model, retrain = (docks[d] for d in DOCKS)

    # 1. tissue and tiles (the TCGA slide: its µm/px typed once, here)
    if typed_mpp:
        _type(qtbot, tissue.slide_mpp, typed_mpp)
    _click(qtbot, tissue.run_button)
    shapes = lambda: any(isinstance(la, Shapes) for la in viewer.layers)  # noqa: E731
    qtbot.waitUntil(lambda: shapes() or "⚠" in tissue.summary.value, timeout=120_000)
    _no_warning(tissue.summary)
    np.testing.assert_allclose(slide.scale[-2:], [mpp, mpp], rtol=1e-3)  # the layer is in µm now
    grid = next(la for la in viewer.layers if isinstance(la, Shapes))
    assert len(grid.data) > 5
    # the DAPI NDPI is told apart (the H&E detector found 0 tiles on it), the H&E slides are not
    assert ("looks like a fluorescence image" in tissue.summary.value) == (key == "ndpi")

    # 2. stain: Macenko on the overview, fitted on the slide itself
    _pick(stain.output, "whole image (overview)")
    _click(qtbot, stain.run_button)
    qtbot.waitUntil(lambda: any("(macenko)" in la.name for la in viewer.layers) or "⚠" in stain.summary.value,
                    timeout=120_000)  # fmt: skip
    _no_warning(stain.summary)

    # 3. run the shipped model (preselected), heatmap of a class, Grad-CAM of what is visible, export
    assert model.builtin.value == "pcam-mobilenetv2"
    _pick(model.device, "cpu")
    _click(qtbot, model.run_button)
    qtbot.waitUntil(lambda: model.export_button.enabled or "⚠" in model.summary.value, timeout=300_000)
    _no_warning(model.summary)
    classes = next(la for la in viewer.layers if isinstance(la, Labels) and la.name.endswith(" classes"))
    predicted = np.asarray(classes.data) > 0
    assert predicted.sum() > 5
    _pick(model.heatmap, "tumour")
    heat = next(la for la in viewer.layers if isinstance(la, Image) and la.name.endswith("p(tumour)"))
    assert heat.visible and 0 <= float(np.asarray(heat.data).min()) <= float(np.asarray(heat.data).max()) <= 1
    viewer.reset_view()
    _click(qtbot, model.gradcam_button)
    qtbot.waitUntil(lambda: any("Grad-CAM" in la.name for la in viewer.layers) or "⚠" in model.summary.value,
                    timeout=120_000)  # fmt: skip
    _no_warning(model.summary)
    _type(qtbot, model.export_path, str(tmp_path / "exported.geojson"))
    _click(qtbot, model.export_button)
    assert len(qb.read_geojson(tmp_path / "exported.geojson")) == int(predicted.sum())

    # 4. correct: brush three tiles of each class into the other class; retrain on them; predict again
    assert retrain.corrections.value is classes  # the new class map is offered, not the slide
    classes.brush_size = 1  # the layer controls' brush size: one tile per stroke
    predicted_classes = np.asarray(classes.data).copy()
    for target in (1, 2):
        cells = np.argwhere(predicted & (predicted_classes != target))[:3]
        for r, c in cells:
            classes.paint((r, c), target, refresh=True)
    corrected = int((np.asarray(classes.data) != predicted_classes).sum())
    if len(np.unique(predicted_classes[predicted])) == 1:  # the model called every tile one class
        _click(qtbot, retrain.run_button)  # corrections all in one class: the dock says what to do
        assert "choose 'train on: all labelled tiles'" in retrain.summary.value
        _pick(retrain.train_on, "all labelled tiles")
        corrected = int(predicted.sum())
    _type(qtbot, retrain.epochs, "1")
    _type(qtbot, retrain.work_dir, str(tmp_path / "work"))
    _click(qtbot, retrain.run_button)
    qtbot.waitUntil(lambda: retrain.stage.value == "done" or "⚠" in retrain.summary.value, timeout=600_000)
    _no_warning(retrain.summary)
    tuned = viewer.layers[f"{slide.name} classes (fine-tuned)"]
    assert int((np.asarray(tuned.data) > 0).sum()) == int(predicted.sum())
    assert f"fine-tuned on {corrected} tiles" in retrain.summary.value
