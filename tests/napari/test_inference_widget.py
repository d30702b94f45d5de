"""The model dock widget on the real CMU-1 slide: Labels in class colours, heatmaps, Grad-CAM, QuPath."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

pytest.importorskip("torch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL

from napari_histo.models import ModelSpec, create_network, save_model  # noqa: E402

SPEC = ModelSpec(
    architecture="resnet18",
    num_classes=2,
    class_names=("Tumor", "Stroma"),
    patch_size_pixels=64,
    spacing_um_px=2.0,
    class_colors=((220, 0, 0), (0, 160, 0)),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return save_model(create_network(SPEC), SPEC, tmp_path_factory.mktemp("m") / "tiny")


@pytest.mark.qt
def test_run_model_shows_classes_heatmaps_gradcam_and_exports(make_napari_viewer, qtbot, model_dir, tmp_path):
    from napari.layers import Image, Labels
    from qtpy.QtCore import Qt

    from napari_histo._napari._widgets.inference import InferenceWidget
    from qupath_bridge import read_geojson

    viewer = make_napari_viewer(show=True)
    slide_layer = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = slide_layer
    widget.model_dir.value = model_dir
    widget.device.value = "cpu"
    widget.batch_size.value = 16
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.export_button.enabled, timeout=10_000)

    labels = [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert len(labels) == 1
    data = np.asarray(labels[0].data)
    n_tiles = int((data > 0).sum())
    assert n_tiles > 10
    assert set(np.unique(data)) <= {0, 1, 2}
    # class colours come from the spec; cells sit over their tiles in µm
    assert tuple(np.round(labels[0].colormap.map(1)[:3] * 255)) == (220, 0, 0)
    np.testing.assert_allclose(labels[0].scale, [64 * 2.0 / 0.499 * 0.499] * 2, rtol=1e-3)
    assert not [layer for layer in viewer.layers if isinstance(layer, Image) and "p(" in layer.name]
    assert widget.heatmap.choices == ("none", "Tumor", "Stroma")
    total = 0
    for name in ("Tumor", "Stroma"):  # one heatmap layer, switched between classes as a user picks them
        widget.heatmap.native.setCurrentText(name)
        heatmaps = [layer for layer in viewer.layers if isinstance(layer, Image) and "p(" in layer.name]
        assert [layer.name.split()[-1] for layer in heatmaps] == [f"p({name})"] and heatmaps[0].visible
        total = total + np.asarray(heatmaps[0].data)
    np.testing.assert_allclose(total[data > 0], 1.0, atol=1e-5)
    widget.heatmap.native.setCurrentText("none")
    assert not heatmaps[0].visible
    assert f"{n_tiles:,} tiles" in widget.summary.value

    viewer.reset_view()
    qtbot.mouseClick(widget.gradcam_button.native, Qt.MouseButton.LeftButton)  # as a user does
    qtbot.waitUntil(lambda: any("Grad-CAM" in layer.name for layer in viewer.layers), timeout=60_000)
    cam = next(layer for layer in viewer.layers if "Grad-CAM" in layer.name)
    assert 0 <= float(np.min(cam.data)) and float(np.max(cam.data)) <= 1 and np.ptp(cam.data) > 0

    widget.export_path.value = tmp_path / "tiles.geojson"
    path = widget.export_qupath()
    objects = read_geojson(path)
    assert len(objects) == n_tiles
    assert {o.classification.name for o in objects} <= {"Tumor", "Stroma"}


@pytest.mark.qt
def test_run_model_on_a_drawn_roi_only(make_napari_viewer, qtbot, model_dir):
    from napari.layers import Labels

    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    slide_layer = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    # a 400 x 400 µm rectangle in the middle of the tissue, drawn in world (µm) coordinates
    roi = viewer.add_shapes(
        [np.array([[500, 300], [500, 700], [900, 700], [900, 300]])], shape_type="polygon"
    )
    widget = InferenceWidget(viewer)
    widget.layer.value = slide_layer
    widget.model_dir.value = model_dir
    widget.device.value = "cpu"
    widget.min_tissue.value = 0.0
    widget.region.value = "drawn ROI"
    widget.roi_layer.value = roi
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.export_button.enabled, timeout=10_000)
    labels = next(layer for layer in viewer.layers if isinstance(layer, Labels))
    cells = np.argwhere(np.asarray(labels.data) > 0)
    tile_um = 64 * 2.0  # 128 µm tiles: centres inside the 400 µm box -> about 3 x 3 tiles
    centres_um = (cells + 0.5) * tile_um
    assert 4 <= len(cells) <= 16
    assert (centres_um[:, 0] >= 500).all()
    assert (centres_um[:, 0] <= 900).all()
    assert (centres_um[:, 1] >= 300).all()
    assert (centres_um[:, 1] <= 700).all()


@pytest.mark.qt
def test_gradcam_follows_the_cursor(make_napari_viewer, qtbot, model_dir):
    from types import SimpleNamespace

    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    slide_layer = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    widget = InferenceWidget(viewer)
    widget.layer.value = slide_layer
    widget.model_dir.value = model_dir
    widget.device.value = "cpu"
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.cursor_cam.enabled, timeout=10_000)
    assert "Tumor" in widget.legend.value
    table = widget.areas.to_dict("list")
    assert sum(table["tiles"]) == len(widget._last["result"].classes)
    widget.cursor_cam.value = True
    follower = widget.cursor_gradcam
    grid = widget._last["result"].grid
    r, c = grid.origins_rc[3] + grid.tile_px_level0 / 2  # the centre of tile 3, level-0 px
    follower._on_move(viewer, SimpleNamespace(position=(r * 0.499, c * 0.499)))
    qtbot.waitUntil(follower.is_idle, timeout=30_000)
    assert follower.shown == 3
    assert follower.layer.data.shape == (64, 64)
    np.testing.assert_allclose(
        follower.layer.translate[0], (grid.origins_rc[3][0] - 0.5) * 0.499 + 1, atol=0.01
    )
    widget.cursor_cam.value = False
    assert follower._on_move not in viewer.mouse_move_callbacks


@pytest.mark.qt
def test_keyboard_shortcuts_are_bound(make_napari_viewer):
    from app_model.types import KeyBinding

    from napari_histo._napari._widgets.inference import InferenceWidget

    viewer = make_napari_viewer()
    widget = InferenceWidget(viewer)
    for key in ("Shift-P", "Shift-L", "Shift-G"):
        assert KeyBinding.from_str(key) in viewer.keymap
    viewer.keymap[KeyBinding.from_str("Shift-G")](viewer)  # before a run: nothing to explain, no error
    assert widget.cursor_cam.value is False
    assert widget.run_button.tooltip == "Shift-P"
