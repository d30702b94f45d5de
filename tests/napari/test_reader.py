"""The napari reader: multiscale RGB layer in µm; None (never an exception) for other files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from napari_histo._napari.reader import get_slide_reader
from napari_histo.data.synthetic import write_synthetic_slide


def test_reader_declines_what_it_cannot_read(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert get_slide_reader(str(text)) is None
    fake_tif = tmp_path / "fake.tif"
    fake_tif.write_text("not a tiff")
    assert get_slide_reader(str(fake_tif)) is None
    assert get_slide_reader([str(fake_tif), str(text)]) is None


@pytest.mark.qt
def test_corrupt_slide_notifies_and_returns_none(tmp_path, make_napari_viewer):
    from napari.utils.notifications import notification_manager

    make_napari_viewer()
    bad = tmp_path / "truncated.svs"
    bad.write_bytes(shared_file("wsi", "CMU-1-Small-Region.svs").read_bytes()[:50_000])
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        assert get_slide_reader(str(bad)) is None
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert any("truncated" in str(n.message) for n in seen)


@pytest.mark.qt
def test_open_ndpi_in_viewer_as_multiscale_in_micrometres(make_napari_viewer):
    path = shared_file("wsi", "test3-DAPI-2-387.ndpi")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-histo")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.multiscale
    assert layer.rgb
    assert len(layer.data) == 4
    np.testing.assert_allclose(layer.scale, [0.22818, 0.22818], rtol=1e-4)
    assert layer.metadata["napari_histo"]["info"]["format"] == "hamamatsu-ndpi"
    # the layer is lazy: level 0 is a dask array chunked ~512 px
    assert layer.data[0].chunksize == (512, 512, 3)


@pytest.mark.qt
def test_synthetic_pyramid_renders_in_viewer(tmp_path, make_napari_viewer):
    path = write_synthetic_slide(tmp_path / "s.ome.tif", shape_rc=(2048, 3072), tile_px=256, downsamples=(4,))
    viewer = make_napari_viewer(show=True)
    layer = viewer.open(str(path), plugin="napari-histo")[0]
    assert layer.multiscale
    np.testing.assert_allclose(layer.scale, [0.5, 0.5])
    viewer.reset_view()
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    # tissue (pink/purple: green channel well below red) appears on a bright background
    pixels = screenshot[..., :3].reshape(-1, 3).astype(int)
    tissue = (pixels[:, 0] - pixels[:, 1]) > 40
    assert 0.05 < tissue.mean() < 0.95


@pytest.mark.qt
def test_slide_without_mpp_opens_in_pixels(make_napari_viewer):
    path = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    viewer = make_napari_viewer()
    layer = viewer.open(str(path), plugin="napari-histo")[0]
    np.testing.assert_allclose(layer.scale, [1.0, 1.0])
    assert layer.metadata["napari_histo"]["mpp"] is None


@pytest.mark.qt
def test_sample_data_synthetic(make_napari_viewer, monkeypatch):
    from napari_histo._napari import sample_data
    from napari_histo.data import samples

    def tiny_sample():
        path = samples.cache_dir() / "tiny.ome.tif"
        return write_synthetic_slide(path, shape_rc=(1024, 1024), tile_px=256, downsamples=(4,))

    monkeypatch.setattr(samples, "synthetic_slide_path", tiny_sample)
    monkeypatch.setattr(sample_data, "synthetic_slide_path", samples.synthetic_slide_path)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-histo", "synthetic-he")
    assert viewer.layers[0].multiscale
