"""The real slides in ../shared/data/wsi: shapes, levels, µm/px and pixels equal tifffile's decode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from conftest import shared_file

from napari_histo.io import open_slide


def _check_levels_against_tifffile(slide, path, rng):
    for level, info in enumerate(slide.level_info):
        expected = tifffile.imread(path, series=0, level=level)
        assert info.shape == expected.shape
        rows, cols = expected.shape[:2]
        for _ in range(3):
            r = int(rng.integers(0, rows - 100))
            c = int(rng.integers(0, cols - 100))
            ds = slide.level_downsamples[level]
            # ceil: the level-0 point whose level pixel (floor of point / downsample) is (r, c)
            got = slide.read_region((math.ceil(r * ds), math.ceil(c * ds)), level, (100, 100))
            np.testing.assert_array_equal(got, expected[r : r + 100, c : c + 100])
        np.testing.assert_array_equal(slide.to_dask(level)[:600, :600].compute(), expected[:600, :600])


def test_cmu1_small_region_aperio_jpeg():
    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    with open_slide(path) as slide:
        assert slide.format == "aperio-svs"
        assert slide.dimensions == (2967, 2220)
        assert slide.level_count == 1
        assert slide.level_info[0].tile_shape == (240, 240)
        assert slide.level_info[0].compression == "JPEG"
        assert slide.mpp == pytest.approx(0.499)
        assert slide.magnification == 20
        assert slide.associated_names == ["label", "macro", "thumbnail"]
        assert slide.associated_image("macro").shape == (431, 1280, 3)
        _check_levels_against_tifffile(slide, path, np.random.default_rng(0))


def test_tcga_jpeg2000_has_no_mpp():
    path = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.mpp_source == "none"
        assert slide.level_info[0].compression == "APERIO_JP2000_RGB"
        assert [info.shape for info in slide.level_info] == [(3567, 4443, 3), (1783, 2221, 3)]
        assert slide.level_downsamples[1] == pytest.approx(2.0, abs=0.01)
        _check_levels_against_tifffile(slide, path, np.random.default_rng(1))
    with open_slide(path, mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "user"


def test_ndpi_levels_mpp_and_rechunked_strips():
    path = shared_file("wsi", "test3-DAPI-2-387.ndpi")
    with open_slide(path) as slide:
        assert slide.format == "hamamatsu-ndpi" and slide.vendor == "hamamatsu"
        assert slide.mpp == pytest.approx(0.2282, abs=1e-4)
        assert slide.magnification == 40
        assert [info.shape[:2] for info in slide.level_info] == [
            (4864, 3968), (2432, 1984), (1216, 992), (608, 496),
        ]  # fmt: skip
        assert slide.level_info[0].tile_shape == (8, 3968)  # JPEG restart-marker strips
        assert slide.to_dask(0).chunksize == (512, 512, 3)  # rechunked for panning
        assert "macro" in slide.associated_names
        _check_levels_against_tifffile(slide, path, np.random.default_rng(2))
