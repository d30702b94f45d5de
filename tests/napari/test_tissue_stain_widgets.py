import numpy as np
import pytest
from conftest import shared_file

from napari_histo._napari.reader import slide_layer_data
from napari_histo.data.synthetic import write_synthetic_slide
from napari_histo.io import open_slide

pytestmark = pytest.mark.qt


@pytest.fixture
def slide_layer(make_napari_viewer, tmp_path):
    path = write_synthetic_slide(tmp_path / "s.ome.tif", shape_rc=(2048, 3072))
    viewer = make_napari_viewer()
    data, kwargs, _ = slide_layer_data(open_slide(path))
    return viewer, viewer.add_image(data, **kwargs)


def test_tissue_tiles_widget_adds_mask_and_grid(slide_layer, qtbot):
    from napari_histo._napari._widgets.tissue_tiles import TissueTilesWidget

    viewer, layer = slide_layer
    widget = TissueTilesWidget(viewer)
    widget.layer.value = layer
    widget.target_mpp.value, widget.tile_px.value = 1.0, 128
    with qtbot.waitSignal(widget.run().finished, timeout=30000):
        pass
    labels = [lay for lay in viewer.layers if lay.name.endswith("tissue")]
    shapes = [lay for lay in viewer.layers if "tiles (" in lay.name]
    assert labels and 0 < labels[0].data.mean() < 1
    assert shapes and len(shapes[0].data) > 0
    assert shapes[0].features["tissue_fraction"].min() >= 0.5
    assert widget.progress.value == 3
    assert widget.summary.value.startswith(f"{len(shapes[0].data):,} of ")


@pytest.fixture
def reference_image(shared_data):
    import imagecodecs

    return imagecodecs.imread(shared_data / "he_images" / "tiatoolbox_target_image.png")[..., :3]


def test_stain_widget_normalises_visible_region(slide_layer, qtbot, reference_image):
    from napari_histo._napari._widgets.stain import StainWidget

    viewer, layer = slide_layer
    ref_layer = viewer.add_image(reference_image, rgb=True, name="reference")
    widget = StainWidget(viewer)
    widget.image.value, widget.reference.value = layer, ref_layer
    with qtbot.waitSignal(widget.run().finished, timeout=60000):
        pass
    out = viewer.layers[-1]
    assert out.name.endswith("(macenko)") and out.data.dtype == np.uint8 and out.data.ndim == 3
    assert widget.target is not None and widget.save_button.enabled


def test_stain_widget_region_reference_overview_and_json(slide_layer, qtbot, reference_image, tmp_path):
    from napari_histo._napari._widgets.stain import StainOutput, StainWidget
    from napari_histo.core.stain import fit_stain

    viewer, layer = slide_layer
    ref_layer = viewer.add_image(reference_image, rgb=True, name="reference")
    region = viewer.add_shapes([np.array([[100, 200], [600, 700]])], shape_type="rectangle", name="roi")
    widget = StainWidget(viewer)
    widget.image.value, widget.reference.value, widget.region.value = layer, ref_layer, region
    widget.method.value, widget.output.value = "reinhard", StainOutput.OVERVIEW.value
    with qtbot.waitSignal(widget.run().finished, timeout=60000):
        pass
    expected = fit_stain(reference_image[100:600, 200:700], "reinhard")
    np.testing.assert_allclose(widget.target.lab_mean, expected.lab_mean)
    out = viewer.layers[-1]
    assert out.data.shape[:2] == layer.data[-1].shape[:2] or max(out.data.shape[:2]) <= 2048
    widget.save_path.value = tmp_path / "ref.json"
    saved = widget.save_reference()
    widget.params_file.value = saved
    widget.method.value = "macenko"  # the JSON decides the method
    with qtbot.waitSignal(widget.run().finished, timeout=60000):
        pass
    assert "(reinhard)" in viewer.layers[-1].name


def test_cancel_stops_the_worker_before_results(slide_layer, qtbot, monkeypatch):
    import time

    from napari_histo._napari._widgets import tissue_tiles
    from napari_histo.core.progress import Progress

    def slow(*args, **kwargs):
        for step in range(1000):
            time.sleep(0.01)
            yield Progress(step % 3, 3)
        raise AssertionError("the worker was not cancelled")

    monkeypatch.setattr(tissue_tiles, "tissue_grid", slow)
    viewer, layer = slide_layer
    widget = tissue_tiles.TissueTilesWidget(viewer)
    widget.layer.value = layer
    worker = widget.run()
    assert widget.cancel_button.enabled
    with qtbot.waitSignal(worker.finished, timeout=10000):
        widget.cancel()
    assert [lay.name for lay in viewer.layers] == [layer.name]
    assert not widget.cancel_button.enabled


def test_slide_without_mpp_gets_it_from_the_dock_and_results_land_on_the_slide(make_napari_viewer, qtbot):
    """The TCGA frozen section has no µm/px: typed into the dock, it rescales the slide; the grid fits."""
    from qtpy.QtCore import Qt

    from napari_histo._napari._session import slide_session
    from napari_histo._napari._widgets.tissue_tiles import TissueTilesWidget

    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")), plugin="napari-histo")[0]
    assert slide_session(layer).mpp is None and tuple(layer.scale) == (1.0, 1.0)
    widget = TissueTilesWidget(viewer)
    widget.layer.value = layer
    widget.slide_mpp.native.clear()
    qtbot.keyClicks(widget.slide_mpp.native, "0.25")  # typed as a user does
    assert widget.slide_mpp.value == pytest.approx(0.25)
    widget.target_mpp.value, widget.tile_px.value = 1.0, 256
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any("tiles (" in lay.name for lay in viewer.layers), timeout=60_000)
    assert slide_session(layer).mpp == 0.25 and tuple(layer.scale) == (0.25, 0.25)
    rows, cols = slide_session(layer).slide.dimensions
    mask = next(lay for lay in viewer.layers if lay.name.endswith("tissue"))
    tiles = next(lay for lay in viewer.layers if "tiles (" in lay.name)
    # the mask spans the whole slide in µm (it was 4x too small with a silent 1 µm/px), and so do the tiles
    mask_extent = np.asarray(mask.data.shape) * np.asarray(mask.scale)
    np.testing.assert_allclose(mask_extent, np.asarray([rows, cols]) * 0.25, rtol=0.02)
    corners = np.concatenate(tiles.data)
    assert corners.max(axis=0)[0] <= rows * 0.25 + 1 and corners.max(axis=0)[1] <= cols * 0.25 + 1
    assert corners.max(axis=0)[1] > cols * 0.25 / 2  # tiles reach across the slide, not into a corner
    np.testing.assert_allclose(np.ptp(tiles.data[0], axis=0), 256 * 1.0, rtol=1e-6)  # 256 px at 1 µm/px


def test_visible_region_of_a_fully_visible_image_is_the_whole_image_not_one_pixel_short(make_napari_viewer):
    from napari_histo._napari._widgets.stain import visible_region

    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(np.zeros((300, 400, 3), np.uint8), rgb=True)
    viewer.reset_view()
    pixels, offset, level = visible_region(layer)
    assert pixels.shape == (300, 400, 3) and offset == (0, 0) and level == 0
