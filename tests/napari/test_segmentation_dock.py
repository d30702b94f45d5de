"""The model dock with a U-Net on the real CMU-1 slide: a stitched mask as one Labels layer, by clicking.

The dock is opened as from the Plugins menu and used with the mouse and keyboard
only (text typed into fields, choices picked, native buttons clicked): the model
folder of a tiny random-init U-Net is typed in, Run is clicked, and the stitched
mask must sit on the slide in µm, in the spec's class colours, with the class
areas in mm² in the dock — as ``histo predict`` computes them.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from user_actions import click as _click
from user_actions import pick as _pick
from user_actions import type_text as _type

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack

ensure_ml_stack()  # torch and timm as the docks load them (without triton), before a viewer loads OpenGL

from napari_histo.models import ModelSpec, create_network, save_model  # noqa: E402

pytestmark = [pytest.mark.qt]

SPEC = ModelSpec(
    architecture="unet:resnet18",
    task="segmentation",
    num_classes=3,
    class_names=("Tumor", "Stroma", "Fat"),
    patch_size_pixels=64,
    spacing_um_px=4.0,
    class_colors=((220, 0, 0), (0, 160, 0), (0, 0, 230)),
)


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return save_model(create_network(SPEC).eval(), SPEC, tmp_path_factory.mktemp("unet") / "tiny-unet")


def _wait_for(qtbot, dock, words: str) -> None:
    """Wait until the dock's message says ``words`` (or a failure)."""
    message = lambda: dock.summary.value  # noqa: E731
    qtbot.waitUntil(lambda: words in message() or "⚠" in message(), timeout=180_000)


def _edges_um(layer, shape_rc) -> tuple[np.ndarray, np.ndarray]:
    """World (µm) top-left and bottom-right pixel *edges* of a layer of ``shape_rc`` pixels."""
    scale = np.asarray(layer.scale[-2:], float)
    translate = np.asarray(layer.translate[-2:], float)
    return translate - scale / 2, translate + (np.asarray(shape_rc) - 0.5) * scale


def test_unet_dock_shows_one_stitched_labels_layer(make_napari_viewer, qtbot, unet_dir, tmp_path):
    from napari.layers import Labels

    import qupath_bridge as qb

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 1000)
    slide = viewer.open(str(shared_file("wsi", "CMU-1-Small-Region.svs")), plugin="napari-histo")[0]
    _, dock = viewer.window.add_plugin_dock_widget("napari-histo", "Run a model")
    _type(qtbot, dock.model_dir, str(unet_dir))
    _pick(dock.device, "cpu")
    _type(qtbot, dock.batch_size, "16")

    # a segmentation model segments the whole slide: another region is refused in one line
    _pick(dock.region, "visible region")
    _click(qtbot, dock.run_button)
    assert "segmentation model" in dock.summary.value and "whole slide" in dock.summary.value
    assert not [la for la in viewer.layers if isinstance(la, Labels)]
    _pick(dock.region, "whole slide")

    _click(qtbot, dock.run_button)
    _wait_for(qtbot, dock, "segmented in")
    assert "⚠" not in dock.summary.value, dock.summary.value
    labels = [la for la in viewer.layers if isinstance(la, Labels)]
    assert len(labels) == 1
    mask = labels[0]
    assert mask.name == f"{slide.name} tiny-unet segmentation"
    data = np.asarray(mask.data)
    assert mask.metadata["napari_histo"]["kind"] == "segmentation"

    # the mask covers the slide in µm: same top-left edge, bottom-right within one mask pixel
    mpp = 0.499
    np.testing.assert_allclose(mask.scale[-2:], [SPEC.spacing_um_px] * 2, rtol=2e-3)  # the model's µm/px
    slide_shape = (slide.data[0] if slide.multiscale else slide.data).shape[:2]
    (s0, s1), (m0, m1) = _edges_um(slide, slide_shape), _edges_um(mask, data.shape)
    np.testing.assert_allclose(m0, s0, atol=1e-6)
    assert (m1 >= s1 - 1e-6).all() and (m1 - s1 < np.asarray(mask.scale[-2:])).all()
    extent_um = np.asarray(data.shape) * np.asarray(mask.scale[-2:])
    assert (np.abs(extent_um - np.asarray(slide_shape) * mpp) <= np.asarray(mask.scale[-2:]) + 1e-6).all()

    # labels: 0 = not segmented (transparent), k + 1 = class k in the spec's colour
    values = set(np.unique(data).tolist())
    assert values <= {0, 1, 2, 3} and len(values - {0}) >= 1
    assert (data > 0).mean() > 0.3  # the tissue of CMU-1-Small-Region is segmented
    assert mask.colormap.map(0)[3] == 0
    for k, color in enumerate(SPEC.class_colors):
        assert tuple(np.round(mask.colormap.map(k + 1)[:3] * 255)) == color

    # class areas in mm², in the dock's message and table, from the mask's own pixels
    pixel_mm2 = (SPEC.spacing_um_px / 1000) ** 2
    table = dock.areas.to_dict("list")
    assert table["class"] == list(SPEC.class_names)
    for k, name in enumerate(SPEC.class_names):
        area = float((data == k + 1).sum()) * pixel_mm2
        assert f"{name} {area:.2f} mm²" in dock.summary.value
        assert table["area mm²"][k] == pytest.approx(area, abs=1e-4)
    assert "Tumor" in dock.legend.value

    # classifier-only tools are off, saying why
    for tool in (dock.heatmap, dock.gradcam_button, dock.cursor_cam):
        assert not tool.enabled
        assert "segmentation model" in tool.tooltip
    assert dock.export_button.enabled

    # the overlay lies on the tissue: a screenshot of the canvas shows the class colours there
    viewer.reset_view()
    shot = viewer.screenshot(path=str(tmp_path / "segmentation.png"), canvas_only=True)
    assert (tmp_path / "segmentation.png").stat().st_size > 0
    rgb = np.asarray(shot)[..., :3].astype(int)
    tinted = (np.abs(rgb[..., 0] - rgb[..., 1]) > 40) | (np.abs(rgb[..., 2] - rgb[..., 1]) > 40)
    assert tinted.mean() > 0.05

    # QuPath: one annotation per class present, covering the segmented area
    _type(qtbot, dock.export_path, str(tmp_path / "regions.geojson"))
    _click(qtbot, dock.export_button)
    _wait_for(qtbot, dock, "wrote")
    assert "⚠" not in dock.summary.value, dock.summary.value
    objects = qb.read_geojson(tmp_path / "regions.geojson")
    assert {o.classification.name for o in objects} == {SPEC.class_names[v - 1] for v in values - {0}}
    area_mm2 = sum(o.geometry.area for o in objects) * (mpp / 1000) ** 2
    assert area_mm2 == pytest.approx(float((data > 0).sum()) * pixel_mm2, rel=1e-2)

    # a second run updates the same layer: still one Labels layer
    _click(qtbot, dock.run_button)
    assert "segmented in" not in dock.summary.value
    _wait_for(qtbot, dock, "segmented in")
    assert "⚠" not in dock.summary.value, dock.summary.value
    assert [la.name for la in viewer.layers if isinstance(la, Labels)] == [mask.name]
    np.testing.assert_array_equal(np.asarray(mask.data), data)

    # live prediction refuses a segmentation model in one line, and unticks itself
    _click(qtbot, dock.live)
    assert "segmentation model" in dock.summary.value and "Run model" in dock.summary.value
    assert not dock.live.value
    assert [la.name for la in viewer.layers if isinstance(la, Labels)] == [mask.name]


def test_a_large_mask_is_shown_as_a_lazy_pyramid_and_replaced_in_place(make_napari_viewer, tmp_path):
    """Masks too large for memory become a multiscale Labels layer read from the zarr store."""
    import zarr
    from napari.layers import Labels

    from napari_histo._napari._widgets._result_layers import add_segmentation_layer, segmentation_labels
    from napari_histo.pipeline.model import resolve_model

    store = tmp_path / "slide.mask.zarr"
    group = zarr.open_group(str(store), mode="w")
    mask = np.full((5000, 300), -1, np.int16)
    mask[100:4000, 50:250] = 2
    group.create_array("labels", data=mask, chunks=(1024, 300))
    group.attrs["class_names"] = list(SPEC.class_names)

    pyramid = segmentation_labels(store, max_pixels=1000)
    assert isinstance(pyramid, list) and [level.shape for level in pyramid] == [(5000, 300), (2500, 150),
                                                                                (1250, 75)]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(pyramid[1]), (mask + 1)[::2, ::2])
    small = segmentation_labels(store)
    assert isinstance(small, np.ndarray) and small.dtype == np.uint8 and set(np.unique(small)) == {0, 3}

    viewer = make_napari_viewer()
    slide = viewer.add_image(np.zeros((40000, 2400), np.uint8), scale=(0.5, 0.5), name="slide")
    model = resolve_model(str(save_model(create_network(SPEC).eval(), SPEC, tmp_path / "m")), "cpu")
    layer = add_segmentation_layer(viewer, pyramid, 8.0, slide, model, {})
    assert layer.multiscale and tuple(layer.scale) == (4.0, 4.0)
    again = add_segmentation_layer(viewer, small, 8.0, slide, model, {})
    assert not again.multiscale
    assert [la for la in viewer.layers if isinstance(la, Labels)] == [again]
