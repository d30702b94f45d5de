"""The demo's napari view: slide, stored predictions in class colours, the docks in order."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack  # noqa: E402

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL


@pytest.mark.qt
def test_show_journey_on_cmu1(make_napari_viewer, tmp_path):
    from napari.layers import Image, Labels

    from napari_histo._napari.journey_viewer import show_journey
    from napari_histo.models import ModelSpec, create_network, save_model

    spec = ModelSpec("resnet18", 2, ("normal", "tumour"), patch_size_pixels=64, spacing_um_px=2.0,
                     class_colors=((0, 114, 178), (213, 94, 0)))  # fmt: skip
    torch.manual_seed(0)
    model = save_model(create_network(spec), spec, tmp_path / "m")
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    from napari_histo.core.progress import run_to_end
    from napari_histo.models.engine import InferenceConfig
    from napari_histo.pipeline import SlideJob, resolve_model, run_slide_job
    from napari_histo.pipeline.slide_job import outputs_for

    job = SlideJob(slide, tmp_path / "out", InferenceConfig(device="cpu"))
    summary = run_to_end(run_slide_job(job, resolve_model(model, "cpu")))
    viewer = make_napari_viewer()
    show_journey(slide, outputs_for(slide, tmp_path / "out")["zarr"], block=False, viewer=viewer)
    names = [layer.name for layer in viewer.layers]
    assert names[0] == "CMU-1-Small-Region.svs"
    labels = next(layer for layer in viewer.layers if isinstance(layer, Labels))
    assert int((np.asarray(labels.data) > 0).sum()) == summary["n_tiles"]
    assert tuple(np.round(labels.colormap.map(2)[:3] * 255)) == (213, 94, 0)
    heatmaps = [layer for layer in viewer.layers if isinstance(layer, Image) and "p(" in layer.name]
    assert not heatmaps  # one layer per result: a heatmap only when asked for in the model dock
    docks = list(viewer.window.dock_widgets)
    assert docks[:4] == [
        "1. Tissue and tiles",
        "2. Stain normalisation",
        "3. Run a model",
        "4. Correct and retrain",
    ]


@pytest.mark.qt
def test_docks_are_in_napari_menus(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    menus = get_app_model().menus

    def histo_commands(menu_id):
        return [
            i.command.id for i in menus.get_menu(menu_id) if hasattr(i, "command") and "histo" in i.command.id
        ]

    assert histo_commands("napari/layers/segment") == ["napari-histo.tissue_tiles_widget"]
    assert histo_commands("napari/layers/filter") == ["napari-histo.stain_widget"]
    assert histo_commands("napari/layers/classify") == [
        "napari-histo.inference_widget",
        "napari-histo.retrain_widget",
    ]
