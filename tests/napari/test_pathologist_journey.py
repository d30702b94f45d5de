"""A pathologist's day, driven through the napari docks on the real CMU-1 slide with the shipped model.

open (as `histo demo` does) → tissue and tiles → stain → run the model → inspect (legend, areas,
heatmap, Grad-CAM under the cursor) → export to QuPath → open the export again.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import shared_file

torch = pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack  # noqa: E402

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL
pytest.importorskip("yaml")

DEFAULT_MODEL = "pcam-mobilenetv2"


@pytest.mark.qt
@pytest.mark.slow
def test_the_whole_journey_in_napari(make_napari_viewer, qtbot, tmp_path):
    from napari.layers import Image, Labels, Shapes

    from napari_histo._napari.journey_viewer import show_journey
    from napari_histo.models.loading import resolve_model_dir

    resolve_model_dir(DEFAULT_MODEL)  # the shipped model must be there
    slide_path = shared_file("wsi", "CMU-1-Small-Region.svs")
    viewer = make_napari_viewer(show=True)

    # 1. open: the slide with the ordered docks, nothing predicted yet
    _, widgets = show_journey(slide_path, None, DEFAULT_MODEL, block=False, viewer=viewer)
    slide = viewer.layers["CMU-1-Small-Region.svs"]
    np.testing.assert_allclose(slide.scale, [0.499, 0.499])
    assert widgets["infer"].builtin.value == DEFAULT_MODEL

    # 2. tissue and tiles at the model's scale
    t = widgets["tissue"]
    t.layer.value = slide
    t.target_mpp.value = 1.0
    t.tile_px.value = 96
    with qtbot.waitSignal(t.run().finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: any(isinstance(layer, Shapes) for layer in viewer.layers), timeout=10_000)
    mask = next(layer for layer in viewer.layers if isinstance(layer, Labels) and "tissue" in layer.name)
    assert 0.1 < np.asarray(mask.data).mean() < 0.9
    tiles = next(layer for layer in viewer.layers if isinstance(layer, Shapes))
    assert len(tiles.data) > 20

    # 3. stain: Macenko on the overview, fitted on the slide itself
    s = widgets["stain"]
    s.image.value = slide
    s.output.value = "whole image (overview)"
    with qtbot.waitSignal(s.run().finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: any("(macenko)" in layer.name for layer in viewer.layers), timeout=10_000)

    # 4. run the shipped model
    m = widgets["infer"]
    m.layer.value = slide
    m.builtin.value = DEFAULT_MODEL
    m.device.value = "cpu"
    with qtbot.waitSignal(m.run().finished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: m.export_button.enabled, timeout=10_000)
    classes = next(layer for layer in viewer.layers if layer.name.endswith(" classes"))
    predicted = np.asarray(classes.data) > 0
    assert predicted.sum() == len(m._last["result"].classes) > 20
    heatmaps = [layer for layer in viewer.layers if isinstance(layer, Image) and "p(" in layer.name]
    assert not heatmaps  # on demand only
    m.heatmap.native.setCurrentText("tumour")  # as a user picks it in the drop-down
    heat = next(layer for layer in viewer.layers if isinstance(layer, Image) and "p(tumour)" in layer.name)
    p_tumour = m._last["result"].probabilities[:, 1]
    np.testing.assert_allclose(np.asarray(heat.data)[predicted], p_tumour, atol=1e-6)
    m.heatmap.native.setCurrentText("normal")  # the same layer now shows p(normal)
    assert heat.name.endswith("p(normal)") and heat in viewer.layers

    # 5. inspect: legend, area table, Grad-CAM of the tile under the cursor
    assert "tumour" in m.legend.value
    assert sum(m.areas.to_dict("list")["tiles"]) == int(predicted.sum())
    m.cursor_cam.value = True
    grid = m._last["result"].grid
    r, c = grid.origins_rc[0] + grid.tile_px_level0 / 2
    m.cursor_gradcam._on_move(viewer, SimpleNamespace(position=(r * 0.499, c * 0.499)))
    qtbot.waitUntil(m.cursor_gradcam.is_idle, timeout=30_000)
    assert m.cursor_gradcam.layer.data.shape == (96, 96)

    # 6. correcting and retraining by clicks: tests/napari/test_click_walk.py, on all three real slides

    # 7. export to QuPath and open the export again
    m.export_path.value = tmp_path / "cmu1-tiles.geojson"
    path = m.export_qupath()
    reopened = viewer.open(str(path), plugin="napari-histo")
    assert reopened
    assert sum(len(layer.data) for layer in reopened) == int(predicted.sum())
