"""The model dock with a slide-level (MIL) model on the real CMU-1 slide, by clicking: the slide call and its
probability in the dock's message, the attention as a heatmap layer on the slide.

The MIL model is randomly initialised on the shipped encoder's embeddings: the code path, not a result.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from user_actions import click as _click
from user_actions import pick as _pick
from user_actions import type_text as _type

pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them, before a viewer loads OpenGL

pytestmark = [pytest.mark.qt]


@pytest.fixture
def mil_dir(tmp_path):
    import torch

    from napari_histo.io.files import file_digest
    from napari_histo.models.loading import BUILTIN_MODELS_DIR
    from napari_histo.models.mil import build_mil_network, save_mil_model
    from napari_histo.models.spec import ModelSpec, Task

    torch.manual_seed(0)
    weights = BUILTIN_MODELS_DIR / "pcam-mobilenetv2" / "weights.safetensors"
    encoder = {"name": "pcam-mobilenetv2", "mpp": 2.0, "tile_px": 96, "hash": file_digest(weights)}
    spec = ModelSpec("abmil", 2, ("benign", "tumour"), 96, 2.0, task=Task.MIL, name="tiny-mil",
                     provenance={"mil": {"in_features": 1280, "hidden": 16, "dropout": 0.0},
                                 "encoder": encoder})  # fmt: skip
    network = build_mil_network("abmil", 1280, 2, hidden=16, dropout=0.0)
    return save_mil_model(network, spec, tmp_path / "tiny-mil")


def test_mil_model_gives_a_slide_call_and_an_attention_heatmap(make_napari_viewer, qtbot, mil_dir):
    from napari.layers import Image

    viewer = make_napari_viewer(show=True)
    slide = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    _, dock = viewer.window.add_plugin_dock_widget("napari-histo", "Run a model")
    _type(qtbot, dock.model_dir, str(mil_dir))
    _pick(dock.device, "cpu")
    _click(qtbot, dock.run_button)
    qtbot.waitUntil(lambda: "slide call" in dock.summary.value or "⚠" in dock.summary.value, timeout=180_000)
    message = dock.summary.value
    assert "⚠" not in message, message
    assert "slide call: benign" in message or "slide call: tumour" in message
    assert "(p=" in message
    heat = [la for la in viewer.layers if isinstance(la, Image) and "attention" in la.name]
    assert len(heat) == 1 and heat[0] is not slide
    data = np.asarray(heat[0].data)
    assert data.max() == pytest.approx(1.0) and (data > 0).sum() > 5  # every embedded tile has a weight
    call = heat[0].metadata["napari_histo"]["slide_call"]
    assert call["model"] == "tiny-mil" and call["call"] in message
    assert not dock.heatmap.enabled  # the classifier-only tools are off
