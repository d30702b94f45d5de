"""The docks as a user meets them: real clicks on native buttons, typed values, real slides.

Each test is named after a bug a user met (issue 11) and fails on the code that had it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import shared_file

pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL

pytestmark = pytest.mark.qt


def _click(qtbot, button) -> None:
    from qtpy.QtCore import Qt

    qtbot.mouseClick(button.native, Qt.MouseButton.LeftButton)


@pytest.fixture
def cmu_copy(tmp_path):
    """CMU-1-Small-Region in a folder of the test's own (exports beside the slide land here)."""
    return shutil.copy(shared_file("wsi", "CMU-1-Small-Region.svs"), tmp_path / "CMU-1-Small-Region.svs")


def test_run_with_the_defaults_uses_the_shipped_model_and_export_with_the_default_file_works(
    make_napari_viewer, qtbot, cmu_copy, tmp_path
):
    from napari.layers import Image, Labels

    import qupath_bridge as qb
    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    layer = viewer.open(str(cmu_copy), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = layer
    assert widget.builtin.value == "pcam-mobilenetv2"  # preselected
    _click(qtbot, widget.run_button)
    qtbot.waitUntil(lambda: widget.export_button.enabled, timeout=180_000)
    assert "⚠" not in widget.summary.value and "tiles in" in widget.summary.value
    labels = [lay for lay in viewer.layers if isinstance(lay, Labels)]
    heat = [lay for lay in viewer.layers if isinstance(lay, Image) and "p(" in lay.name]
    assert len(labels) == 1 and not heat  # one layer per run: only what the legend explains is shown
    assert list(labels[0].features["class"]) == ["none", "normal", "tumour"]
    _click(qtbot, widget.export_button)  # the file field still says "."
    written = tmp_path / "CMU-1-Small-Region.geojson"
    assert written.exists() and str(written) in widget.summary.value
    assert len(qb.read_geojson(written)) == int((np.asarray(labels[0].data) > 0).sum())

    _click(qtbot, widget.run_button)  # a re-run replaces the result layers instead of adding more
    qtbot.waitUntil(lambda: widget._worker is not None and not widget._worker.is_running, timeout=180_000)
    qtbot.waitUntil(lambda: "tiles in" in widget.summary.value, timeout=10_000)
    assert len(viewer.layers) == 1 + 1


def test_a_folder_without_model_json_is_one_line_in_the_dock_not_a_traceback(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = layer
    widget.builtin.value = None
    widget.model_dir.value = tmp_path  # a folder, but not a model
    _click(qtbot, widget.run_button)  # must not raise out of the click
    assert widget.summary.value.startswith("⚠") and "model.json" in widget.summary.value
    assert "Traceback" not in widget.summary.value and widget._worker is None


def test_live_that_cannot_start_unticks_its_checkbox_and_says_why(make_napari_viewer, qtbot):
    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = layer
    widget.live.native.click()  # the slide has no µm/px and none was given
    assert widget.live.value is False and widget.live_predictor is None
    assert "µm/px" in widget.summary.value and widget.summary.value.startswith("⚠")


def test_model_dock_takes_the_slide_mpp_of_a_slide_without_one(make_napari_viewer, qtbot):
    from napari.layers import Labels

    from napari_histo._napari._session import slide_session
    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = layer
    widget.slide_mpp.native.clear()
    qtbot.keyClicks(widget.slide_mpp.native, "0.5")
    _click(qtbot, widget.run_button)
    qtbot.waitUntil(lambda: widget.export_button.enabled, timeout=180_000)
    assert slide_session(layer).mpp == 0.5 and tuple(layer.scale) == (0.5, 0.5)
    classes = next(lay for lay in viewer.layers if isinstance(lay, Labels))
    rows, cols = slide_session(layer).slide.dimensions
    extent = np.asarray(classes.data.shape) * np.asarray(classes.scale)
    assert (extent <= np.asarray([rows, cols]) * 0.5 + 1e-6).all() and (
        extent > np.asarray([rows, cols]) * 0.4
    ).all()


def test_retraining_uses_only_the_corrected_tiles_of_the_painted_layer(
    make_napari_viewer, qtbot, cmu_copy, tmp_path
):
    from napari.layers import Labels

    from napari_histo._napari._widgets.inference import InferenceWidget
    from napari_histo._napari._widgets.retrain import RetrainWidget

    viewer = make_napari_viewer()
    slide = viewer.open(str(cmu_copy), plugin="napari-histo")[0]
    infer = InferenceWidget(viewer)
    infer.layer.value = slide
    retrain = RetrainWidget(viewer)  # made before the run: it must offer the class map, not the slide
    retrain.layer.value = slide
    _click(qtbot, infer.run_button)
    qtbot.waitUntil(lambda: infer.export_button.enabled, timeout=180_000)
    classes = next(lay for lay in viewer.layers if isinstance(lay, Labels))
    assert retrain.corrections.value is classes
    predicted = np.asarray(classes.data).copy()
    painted = predicted.copy()
    normal, tumour = np.argwhere(predicted == 1), np.argwhere(predicted == 2)
    flip = np.concatenate(
        [normal[:3], tumour[:3]]
    )  # the pathologist corrects six tiles, each to the other class
    painted[flip[:, 0], flip[:, 1]] = 3 - predicted[flip[:, 0], flip[:, 1]]
    keep = normal[3:5]  # and confirms two in place (painted with the class they had): not corrections
    painted[keep[:, 0], keep[:, 1]] = predicted[keep[:, 0], keep[:, 1]]
    classes.data = painted
    retrain.epochs.value = 1
    retrain.work_dir.value = tmp_path / "work"
    _click(qtbot, retrain.run_button)
    qtbot.waitUntil(lambda: retrain.new_model is not None or "⚠" in retrain.summary.value, timeout=300_000)
    assert retrain.new_model is not None, retrain.summary.value
    exported = sorted((tmp_path / "work" / "tiles").glob("*/*.png"))
    assert len(exported) == 6  # only what was corrected, not the model's own calls
    assert retrain.stage.value == "done" and "fine-tuned on 6 tiles" in retrain.summary.value
    assert any(lay.name.endswith("classes (fine-tuned)") for lay in viewer.layers)


def test_a_long_result_message_wraps_instead_of_widening_the_dock(make_napari_viewer):
    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    widget = InferenceWidget(viewer)
    widget.summary.value = "⚠ " + "a long message that names a file and its fix " * 40
    # without word wrap the label asks for the whole line (~10,000 px here), pushing the dock wide
    assert widget.summary.native.minimumSizeHint().width() < 300


def test_docks_opened_from_the_plugins_menu_are_tabs_not_a_stack_past_a_1080_px_screen(
    make_napari_viewer, qtbot
):
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1400, 900)
    names = ["Tissue and tiles", "Stain normalisation", "Run a model", "Correct and retrain"]
    for name in names:  # what Plugins › napari-histo › NAME does
        viewer.window.add_plugin_dock_widget("napari-histo", name)
        qtbot.wait(50)
    docks = [d for d in window.findChildren(QDockWidget) if any(n in d.windowTitle() for n in names)]
    assert len(docks) == 4
    tabbed = set(window.tabifiedDockWidgets(docks[0])) | {docks[0]}
    assert tabbed == set(docks), [d.windowTitle() for d in docks]
    assert window.height() <= 1080 and window.sizeHint().height() <= 1080
    assert docks[-1].visibleRegion().isEmpty() is False  # the last one opened is the tab in front
