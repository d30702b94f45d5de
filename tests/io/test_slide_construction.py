"""A Slide is built once by open_slide, complete and immutable; io modules import one way."""

from __future__ import annotations

import dataclasses

import dask.array as da
import pytest
import tifffile
from conftest import shared_file
from make_tiffs import gradient_rgb, write_aperio_like

from napari_histo.io import open_slide
from napari_histo.io import slide as slide_module


@pytest.fixture
def aperio(tmp_path):
    return write_aperio_like(tmp_path / "aperio.svs", gradient_rgb(512, 768), mpp=0.2527, mag=40)


def test_a_slide_cannot_be_mutated(aperio):
    with open_slide(aperio) as slide:
        with pytest.raises(dataclasses.FrozenInstanceError):
            slide.mpp = 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            slide.mpp_source = "user"
        with pytest.raises(dataclasses.FrozenInstanceError):
            slide._cache = None
        with pytest.raises(AttributeError):  # levels are a tuple: none can be appended
            slide.level_info.append(slide.level_info[0])
        assert slide.mpp == pytest.approx(0.2527) and slide.level_count == 2


def test_user_mpp_wins_on_a_real_slide():
    path = shared_file("wsi", "CMU-1-Small-Region.svs")  # the file says 0.499 µm/px, 20x
    with open_slide(path, mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "user"
        assert slide.magnification == 20  # the rest of the file's calibration stays
        assert slide.level_mpp(0) == 0.5
    with open_slide(path) as slide:
        assert slide.mpp == pytest.approx(0.499) and slide.mpp_source == "Aperio ImageDescription MPP"


def test_user_mpp_wins_on_a_synthetic_slide(aperio):
    with open_slide(aperio, mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "user"
        assert slide.magnification == 40
        assert slide.info()["mpp"] == 0.5 and slide.info()["mpp_source"] == "user"


def test_computed_levels_and_cache_are_given_at_construction(tmp_path, monkeypatch):
    monkeypatch.setattr(slide_module, "_LAZY_PYRAMID_ABOVE_PX", 256)
    monkeypatch.setattr(slide_module, "_LAZY_PYRAMID_DOWN_TO_PX", 64)
    path = tmp_path / "single.tif"
    tifffile.imwrite(path, gradient_rgb(300, 400), tile=(128, 128), compression="zlib", photometric="rgb")
    with open_slide(path, cache_bytes=12345) as slide:
        assert [info.stored for info in slide.level_info] == [True, False, False, False]
        assert [info.shape[:2] for info in slide.level_info] == [(300, 400), (150, 200), (75, 100), (37, 50)]
        assert slide._cache is not None and slide._cache.max_bytes == 12345
        levels = slide.levels
        assert slide.levels is levels  # built once, on first access
        assert all(isinstance(level, da.Array) for level in levels[1:])


def test_close_is_idempotent_and_a_failed_build_closes_the_file(aperio, monkeypatch):
    from napari_histo.io import _tiff_pyramid

    closed = []
    original = _tiff_pyramid._close_file
    monkeypatch.setattr(_tiff_pyramid, "_close_file", lambda tif, fd: closed.append(fd) or original(tif, fd))
    slide = open_slide(aperio)
    slide.close()
    slide.close()
    assert len(closed) == 1

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(slide_module, "_with_lazy_levels", broken)
    closed_before_cleanup = None
    try:
        open_slide(aperio)
    except RuntimeError:  # the traceback still holds open_slide's frame: no garbage collection yet
        closed_before_cleanup = len(closed)
    assert closed_before_cleanup == 2


def test_slide_modules_import_one_way():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("napari_histo", cache_dir=None)  # a shared on-disk cache can be stale
    ours = [
        "napari_histo.io.slide",
        "napari_histo.io._tiff_pyramid",
        "napari_histo.io._tile_reader",
        "napari_histo.io._metadata",
        "napari_histo.io._slide_parts",
    ]
    for importer in ours:
        for imported in graph.find_modules_directly_imported_by(importer):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            assert chain is None, f"import cycle: {importer} -> {imported} -> ... -> {importer}: {chain}"
