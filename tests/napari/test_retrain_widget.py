"""Correct → train → predict again, in napari, on the real CMU-1 slide."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack  # noqa: E402

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL
pytest.importorskip("yaml")


@pytest.mark.qt
@pytest.mark.slow
def test_paint_corrections_retrain_and_repredict(make_napari_viewer, qtbot, tmp_path):
    from napari.layers import Labels

    from napari_histo._napari._widgets.inference import InferenceWidget
    from napari_histo._napari._widgets.retrain import RetrainWidget
    from napari_histo.models import ModelSpec, create_network, load_spec, save_model

    spec = ModelSpec("resnet18", 2, ("normal", "tumour"), patch_size_pixels=64, spacing_um_px=2.0)
    torch.manual_seed(0)
    save_model(create_network(spec), spec, tmp_path / "model")
    viewer = make_napari_viewer()
    slide = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    infer = InferenceWidget(viewer)
    infer.layer.value = slide
    infer.model_dir.value = tmp_path / "model"
    infer.device.value = "cpu"
    with qtbot.waitSignal(infer.run().finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: infer.export_button.enabled, timeout=10_000)
    classes = next(layer for layer in viewer.layers if isinstance(layer, Labels))

    # the pathologist paints: top half of the predicted tiles "normal", bottom half "tumour"
    data = np.asarray(classes.data).copy()
    rows = np.flatnonzero((data > 0).any(axis=1))
    middle = rows[len(rows) // 2]
    data[(data > 0) & (np.arange(data.shape[0])[:, None] < middle)] = 1
    data[(data > 0) & (np.arange(data.shape[0])[:, None] >= middle)] = 2
    classes.data = data

    retrain = RetrainWidget(viewer)
    retrain.layer.value = slide
    retrain.corrections.value = classes
    retrain.train_on.value = "all labelled tiles"  # the whole painted map, not only what changed
    retrain.epochs.value = 1
    retrain.work_dir.value = tmp_path / "work"
    stages = []
    worker = retrain.run()
    worker.yielded.connect(lambda item: stages.append(item.stage))
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    qtbot.waitUntil(lambda: retrain.new_model is not None, timeout=10_000)
    assert stages[0] == "exporting corrected tiles"
    assert any(s.startswith("training: epoch 1 of 1, batch ") for s in stages), stages  # per batch
    assert "training: done" in stages
    assert stages[-1] == "predicting"
    assert retrain.stage.value == "done"
    assert load_spec(retrain.new_model).class_names == ("normal", "tumour")
    tuned = [layer for layer in viewer.layers if layer.name.endswith("classes (fine-tuned)")]
    assert len(tuned) == 1
    assert int((np.asarray(tuned[0].data) > 0).sum()) == int((data > 0).sum())
    assert "fine-tuned on" in retrain.summary.value
