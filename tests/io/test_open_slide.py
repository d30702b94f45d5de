"""open_slide on synthetic pyramids written with tifffile: levels, µm/px, pixels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from make_tiffs import block_mean, gradient_rgb, write_aperio_like, write_generic_pyramid

from napari_histo.data.synthetic import write_synthetic_slide
from napari_histo.io import open_slide


@pytest.fixture(scope="module")
def ome_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("ome") / "synthetic.ome.tif"
    return write_synthetic_slide(path, shape_rc=(1024, 1536), tile_px=256, downsamples=(2, 4), mpp=0.25)


def test_ome_subifd_levels_mpp_and_pixels(ome_slide):
    with open_slide(ome_slide) as slide:
        assert slide.format == "ome-tiff"
        assert slide.mpp == pytest.approx(0.25)
        assert slide.mpp_source == "OME PhysicalSizeX"
        assert [info.shape for info in slide.level_info] == [(1024, 1536, 3), (512, 768, 3), (256, 384, 3)]
        assert slide.level_downsamples == [1.0, 2.0, 4.0]
        assert [info.tile_shape for info in slide.level_info] == [(256, 256)] * 3
        assert slide.level_mpp(2) == pytest.approx(1.0)
        for level in range(3):
            expected = tifffile.imread(ome_slide, series=0, level=level)
            assert isinstance(slide.levels[level], zarr.Array)
            np.testing.assert_array_equal(np.asarray(slide.levels[level]), expected)
            np.testing.assert_array_equal(slide.to_dask(level).compute(), expected)
        # a region across tile borders, in level-0 coordinates, read from level 1
        region = slide.read_region((300, 410), 1, (200, 300))
        expected = tifffile.imread(ome_slide, series=0, level=1)[150:350, 205:505]
        np.testing.assert_array_equal(region, expected)


def test_read_region_outside_the_slide_is_filled(ome_slide):
    with open_slide(ome_slide) as slide:
        region = slide.read_region((-10, 1500), 0, (50, 60), fill=7)
        level0 = tifffile.imread(ome_slide, series=0, level=0)
        np.testing.assert_array_equal(region[10:, :36], level0[0:40, 1500:1536])
        assert (region[:10] == 7).all() and (region[:, 36:] == 7).all()


def test_aperio_description_mpp_levels_and_associated_images(tmp_path):
    image = gradient_rgb(1024, 1280)
    path = write_aperio_like(tmp_path / "aperio.svs", image, mpp=0.2527, mag=40)
    with open_slide(path) as slide:
        assert slide.format == "aperio-svs"
        assert slide.vendor == "aperio"
        assert slide.mpp == pytest.approx(0.2527)
        assert slide.magnification == 40
        assert slide.properties["ScanScope ID"] == "SS1234"
        assert [info.shape[:2] for info in slide.level_info] == [(1024, 1280), (256, 320)]
        assert slide.level_downsamples == [4.0 / 4, 4.0]
        assert set(slide.associated_names) == {"thumbnail", "label", "macro"}
        assert slide.associated_image("label").shape == (60, 80, 3)
        assert slide.associated_image("Macro").mean() == pytest.approx(100, abs=2)
        with pytest.raises(KeyError, match="has no associated image 'overview'"):
            slide.associated_image("overview")
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (1024, 1280)), tifffile.imread(path, series=0, level=0)
        )


def test_generic_pyramid_of_reduced_pages(tmp_path):
    image = gradient_rgb(800, 1100, seed=3)
    path = write_generic_pyramid(tmp_path / "generic.tif", image, factors=(2, 4), dpi_cm=20_000)
    with open_slide(path) as slide:
        assert slide.format == "tiff"
        assert slide.level_count == 3
        assert slide.mpp == pytest.approx(0.5)  # 20,000 px/cm
        assert slide.mpp_source == "TIFF XResolution"
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (800, 1100)), image)  # lossless zlib
        np.testing.assert_array_equal(slide.read_region((0, 0), 2, (200, 275)), block_mean(image, 4))


def test_big_single_level_tiff_gets_lazy_levels(tmp_path):
    image = gradient_rgb(4608, 5120, seed=5)
    path = tmp_path / "single.tif"
    tifffile.imwrite(path, image, tile=(512, 512), compression="zlib", photometric="rgb")
    with open_slide(path) as slide:
        stored = [info.stored for info in slide.level_info]
        assert stored[0] and not any(stored[1:])
        assert max(slide.level_info[-1].shape[:2]) <= 1024
        assert slide.level_info[1].shape == (2304, 2560, 3)
        np.testing.assert_array_equal(
            slide.to_dask(1)[:300, :400].compute(), block_mean(image, 2)[:300, :400]
        )
        deepest = slide.level_count - 1
        factor = 2**deepest
        np.testing.assert_allclose(
            slide.read_region((0, 0), deepest, (64, 64)).astype(float),
            block_mean(image, factor)[:64, :64].astype(float),
            atol=1.0,  # repeated 2x2 rounding differs from one big block mean by < 1 grey level
        )


def test_single_level_small_tiff_has_no_computed_levels(tmp_path):
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, gradient_rgb(300, 400), photometric="rgb")
    with open_slide(path) as slide:
        assert slide.level_count == 1
        assert slide.mpp is None


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_plain_png_and_jpeg(tmp_path, kind):
    import imagecodecs

    image = gradient_rgb(300, 500)
    encoded = imagecodecs.png_encode(image) if kind == "png" else imagecodecs.jpeg8_encode(image, level=95)
    path = tmp_path / f"image.{'png' if kind == 'png' else 'jpg'}"
    path.write_bytes(encoded)
    with open_slide(path, mpp=0.5) as slide:
        assert slide.format == kind
        assert slide.dimensions == (300, 500)
        assert slide.mpp == 0.5 and slide.mpp_source == "user"
        decoded = imagecodecs.imread(encoded)
        np.testing.assert_array_equal(slide.read_region((10, 20), 0, (100, 200)), decoded[10:110, 20:220])


def test_mpp_override_and_validation(ome_slide):
    with open_slide(ome_slide, mpp=0.3) as slide:
        assert slide.mpp == 0.3 and slide.mpp_source == "user"
    with pytest.raises(ValueError, match="positive number"):
        open_slide(ome_slide, mpp=-1)


def test_dask_chunks_follow_tiles_and_thumbnail(ome_slide):
    with open_slide(ome_slide) as slide:
        level0 = slide.to_dask(0)
        assert level0.chunksize == (512, 512, 3)  # 256 px tiles grouped by 2
        assert len(slide.to_dask()) == 3
        thumb = slide.thumbnail(200)
        assert max(thumb.shape[:2]) == 200 and thumb.dtype == np.uint8


def test_tile_cache_is_bounded(ome_slide):
    with open_slide(ome_slide, cache_bytes=3 * 256 * 256 * 3) as slide:
        slide.read_region((0, 0), 0, (1024, 1536))
        assert slide._readers[0]._cache.nbytes <= 3 * 256 * 256 * 3


def test_computed_levels_read_in_bounded_bands():
    from napari_histo.io._tile_reader import ArrayLevel, DownsampledLevel

    image = gradient_rgb(1000, 1200, seed=9)
    level = DownsampledLevel(ArrayLevel(lambda: image, image.shape, image.dtype), 2)
    level._BAND_BYTES = 1  # force one output row per band
    np.testing.assert_array_equal(level.read_window(3, 5, 400, 590), block_mean(image, 2)[3:400, 5:590])


def test_reserving_tile_rows_decodes_each_tile_once(ome_slide, monkeypatch):
    from napari_histo.io._tile_reader import TiffLevelReader

    decoded = []
    original = TiffLevelReader._read_tile

    def counting(self, index, ty, tx):
        decoded.append(index)
        return original(self, index, ty, tx)

    monkeypatch.setattr(TiffLevelReader, "_read_tile", counting)
    with open_slide(ome_slide, cache_bytes=0) as slide:
        budget = slide.reserve_tile_rows(0, rows=2)
        assert budget >= 2 * 256 * 1536 * 3
        # 224 px patches over 256 px tiles, row by row: neighbours share tiles
        for r in range(0, 1024 - 224 + 1, 224):
            for c in range(0, 1536 - 224 + 1, 224):
                slide.read_region((r, c), 0, (224, 224))
    assert len(decoded) == len(set(decoded))
