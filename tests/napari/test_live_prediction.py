"""Live prediction on the real CMU-1 slide: the view is predicted first, centre first; panning adds more."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL

from napari_histo.models import ModelSpec, create_network, save_model  # noqa: E402

SPEC = ModelSpec("resnet18", 2, ("Tumor", "Stroma"), patch_size_pixels=64, spacing_um_px=2.0)


@pytest.mark.qt
def test_live_prediction_follows_the_view(make_napari_viewer, qtbot, tmp_path):
    import torch

    from napari_histo._napari._widgets._view import viewer_camera, visible_bounds_rc
    from napari_histo._napari._widgets.inference import InferenceWidget
    from napari_histo.core.viewport import tiles_in_view

    torch.manual_seed(0)
    save_model(create_network(SPEC), SPEC, tmp_path / "m")
    viewer = make_napari_viewer(show=True)
    layer = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    viewer.reset_view()
    camera = viewer_camera(viewer)
    camera.zoom *= 3  # look at the middle third of the slide
    widget = InferenceWidget(viewer)
    widget.layer.value = layer
    widget.model_dir.value = tmp_path / "m"
    widget.device.value = "cpu"
    widget.min_tissue.value = 0.0  # every tile in view counts
    widget.live.value = True  # the checkbox starts live prediction
    live = widget.live_predictor
    qtbot.waitUntil(live.is_idle, timeout=60_000)
    grid = live.state["grid"]
    bounds = visible_bounds_rc(viewer, layer)
    in_view = set(tiles_in_view(grid, bounds).tolist())
    first = set(live.predicted_order)
    assert first == in_view  # the visible tiles, and only those
    assert len(first) < len(grid)
    # centre first: the first tile predicted is the one nearest the view's centre
    centre = np.array([(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2])
    distances = np.hypot(*(grid.centres_rc()[live.predicted_order] - centre).T)
    assert distances[0] == distances.min()
    assert (np.asarray(live.labels_layer.data) > 0).sum() == len(first)

    camera.center = (camera.center[0] + 500, camera.center[1])  # pan down 500 µm
    qtbot.waitUntil(lambda: len(live.predicted_order) > len(first), timeout=60_000)
    qtbot.waitUntil(live.is_idle, timeout=60_000)
    assert len(set(live.predicted_order)) == len(live.predicted_order)  # never predicted twice
    widget.live.value = False
    assert widget.live_predictor is None
