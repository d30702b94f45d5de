"""The OpenSlide back-end: the real SVS and NDPI read through OpenSlide 4 equal the tifffile back-end.

At every level both back-ends share, 100 random regions are compared.  Where
the level's downsample is a whole number (CMU-1-Small-Region, every NDPI
level, the TCGA slide's level 0) the pixels are identical.  The TCGA slide's
level 1 has a downsample of 2.0005 (2221 px under 4443): OpenSlide paints a
region from a level-0 coordinate divided by that downsample, so a region that
does not start on a whole level pixel is resampled by up to a quarter pixel.
That is OpenSlide's behaviour; there the test asserts identity at the origin
and a small mean difference elsewhere (the measured mean is ~2.4 of 255).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli, main
from napari_histo.errors import InvalidParameterError, MissingDependencyError, UnsupportedFormatError
from napari_histo.io import open_slide

pytest.importorskip("openslide", reason="the openslide extra is not installed")

SLIDES = ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs", "test3-DAPI-2-387.ndpi"]


def _random_regions(rng, shape, n=100):
    rows, cols = shape[:2]
    for _ in range(n):
        h = int(rng.integers(1, min(rows, 160) + 1))
        w = int(rng.integers(1, min(cols, 160) + 1))
        yield int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1)), h, w


@pytest.mark.parametrize("name", SLIDES)
def test_openslide_equals_tifffile_at_every_level(name):
    path = shared_file("wsi", name)
    rng = np.random.default_rng(14)
    with open_slide(path) as ref, open_slide(path, backend="openslide") as osl:
        assert ref.backend == "tifffile" and osl.backend == "openslide"
        assert osl.format == ref.format and osl.vendor == ref.vendor
        assert osl.dimensions == ref.dimensions
        assert osl.mpp == (pytest.approx(ref.mpp) if ref.mpp else None)
        assert osl.magnification == ref.magnification
        # OpenSlide adds levels (NDPI: JPEG-scaled 1/16 .. 1/64); the stored ones are the same
        assert osl.level_count >= ref.level_count
        for level in range(ref.level_count):
            info, other = ref.level_info[level], osl.level_info[level]
            assert other.shape == info.shape
            assert other.downsample == pytest.approx(info.downsample)
            ds = info.downsample
            whole = ds == round(ds)
            means = []
            for r, c, h, w in _random_regions(rng, info.shape):
                origin = (math.ceil(r * ds), math.ceil(c * ds))  # the level-0 point of level pixel (r, c)
                want = ref.read_region(origin, level, (h, w))
                got = osl.read_region(origin, level, (h, w))
                assert got.shape == want.shape and got.dtype == np.uint8
                if whole:
                    np.testing.assert_array_equal(
                        got, want, err_msg=f"{name} level {level} at {(r, c, h, w)}"
                    )
                else:
                    means.append(np.abs(got.astype(int) - want).mean())
            if not whole:  # sub-pixel resampling by OpenSlide (see the module docstring)
                assert float(np.mean(means)) < 6.0
                np.testing.assert_array_equal(
                    osl.read_region((0, 0), level, (200, 200)), ref.read_region((0, 0), level, (200, 200))
                )
        for level in range(ref.level_count, osl.level_count):  # OpenSlide's extra levels halve the last
            assert osl.level_info[level].shape[0] == math.ceil(osl.level_info[level - 1].shape[0] / 2)
            assert osl.read_region((0, 0), level, (8, 8)).shape == (8, 8, 3)


@pytest.mark.parametrize("name", SLIDES)
def test_openslide_levels_are_lazy_arrays_on_the_file_tiles_and_associated_images_match(name):
    path = shared_file("wsi", name)
    with open_slide(path) as ref, open_slide(path, backend="openslide") as osl:
        level = osl.levels[0]
        assert type(level).__module__.startswith("dask")
        tile = osl.level_info[0].tile_shape
        assert tile is not None
        # dask chunks are whole multiples of the file's tiles (strips: ~512 px)
        assert level.chunks[1][0] % tile[1] == 0 or tile[1] >= osl.dimensions[1]
        np.testing.assert_array_equal(np.asarray(level[:300, :300]), ref.read_region((0, 0), 0, (300, 300)))
        for key in set(osl.associated_names) & set(ref.associated_names):
            got, want = osl.associated_image(key), ref.associated_image(key)
            assert got.shape == (*want.shape[:2], 3)
            assert osl.info()["associated_images"][key] == list(got.shape)
            if want.ndim == 3 and want.shape[2] == 3:
                assert np.abs(got.astype(int) - want).max() <= 1  # label/macro: the same JPEG or LZW data
        assert osl.info()["backend"] == "openslide" and osl.info()["path"] == str(path)


def test_a_tiff_the_builtin_reader_refuses_falls_back_to_openslide(tmp_path):
    """A tiled TIFF with separate colour planes: tifffile's back-end refuses it, OpenSlide reads it."""
    real = tifffile.imread(shared_file("wsi", "CMU-1-Small-Region.svs"))[:512, :768]
    path = tmp_path / "planar.tif"
    tifffile.imwrite(
        path, np.moveaxis(real, -1, 0), photometric="rgb", planarconfig="separate", tile=(256, 256)
    )
    with pytest.raises(UnsupportedFormatError, match="separate plane"):
        open_slide(path, backend="tifffile")
    with open_slide(path) as slide:
        assert slide.backend == "openslide" and slide.format == "tiff"
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (512, 768)), real)


def test_openslide_background_is_white_outside_the_slide():
    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs"), backend="openslide") as slide:
        rows, cols = slide.dimensions
        region = slide.read_region((rows - 10, cols - 10), 0, (20, 20))
        assert (region[10:, :] == 255).all() and (region[:, 10:] == 255).all()


def test_vendor_files_without_the_extra_say_which_extra(tmp_path, monkeypatch, capsys):
    path = tmp_path / "slide.mrxs"
    path.write_text("[GENERAL]\n")
    monkeypatch.setitem(sys.modules, "openslide", None)  # as if openslide-python were not installed
    with pytest.raises(MissingDependencyError, match=r"napari-histo\[openslide\]"):
        open_slide(path)
    with pytest.raises(SystemExit) as ended:
        main(["info", str(path)])
    assert ended.value.code == 4  # the machine lacks a package
    assert "napari-histo[openslide]" in capsys.readouterr().err


def test_backend_choice_is_checked():
    from napari_histo.cli._options import BACKEND
    from napari_histo.io.slide import BACKENDS

    assert sorted(BACKEND.choices) == sorted(BACKENDS)  # --backend offers every back-end open_slide has
    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    with pytest.raises(InvalidParameterError, match="backend must be one of"):
        open_slide(path, backend="bioformats")
    with pytest.raises(InvalidParameterError, match="local files only"):
        open_slide("http://127.0.0.1:9/x.svs", backend="openslide")


def test_histo_info_backend_option():
    path = shared_file("wsi", "test3-DAPI-2-387.ndpi")
    result = CliRunner().invoke(cli, ["info", str(path), "--backend", "openslide", "--json"])
    assert result.exit_code == 0, result.output
    assert '"backend": "openslide"' in result.output and '"format": "hamamatsu-ndpi"' in result.output
    text = CliRunner().invoke(cli, ["info", str(path), "--backend", "openslide"]).output
    assert "(read by openslide)" in text


def test_napari_reader_reads_an_openslide_slide(tmp_path):
    pytest.importorskip("napari")
    from napari_histo._napari.reader import get_slide_reader

    real = tifffile.imread(shared_file("wsi", "CMU-1-Small-Region.svs"))[:512, :512]
    path = tmp_path / "planar.tif"
    tifffile.imwrite(
        path, np.moveaxis(real, -1, 0), photometric="rgb", planarconfig="separate", tile=(256, 256)
    )
    reader = get_slide_reader(str(path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image" and kwargs["metadata"]["napari_histo"]["info"]["backend"] == "openslide"
    np.testing.assert_array_equal(np.asarray(data), real)


def test_philips_tiff_is_routed_to_openslide(tmp_path):
    """A TIFF carrying Philips DP metadata goes to OpenSlide (which reads its sparse-tile layout)."""
    real = tifffile.imread(shared_file("wsi", "CMU-1-Small-Region.svs"))[:512, :512]
    path = tmp_path / "philips.tiff"
    xml = '<?xml version="1.0" encoding="UTF-8" ?><DataObject ObjectType="DPUfsImport"></DataObject>'
    tifffile.imwrite(
        path, real, tile=(256, 256), photometric="rgb", software="Philips DP v1.0", description=xml
    )
    with open_slide(path) as slide:  # OpenSlide reads this stub as a generic tiled TIFF
        assert slide.backend == "openslide"
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (512, 512)), real)
    with open_slide(path, backend="tifffile") as slide:  # forcing the built-in reader still works
        assert slide.backend == "tifffile"


@pytest.mark.slow
def test_histo_predict_with_the_openslide_backend_matches_and_records_it(tmp_path):
    """``histo predict --backend openslide`` gives the tifffile back-end's maps; the choice is a setting."""
    pytest.importorskip("torch")
    import json

    import zarr

    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    base = ["predict", str(slide), "--model", "pcam-mobilenetv2", "--device", "cpu"]
    maps = {}
    for backend in ("tifffile", "openslide"):
        out = tmp_path / backend
        result = CliRunner().invoke(cli, [*base, "--out", str(out), "--backend", backend])
        assert result.exit_code == 0, result.output
        group = zarr.open_group(str(out / "CMU-1-Small-Region.zarr"), mode="r")
        maps[backend] = np.asarray(group["probabilities"])
        settings = json.loads((out / "CMU-1-Small-Region.settings.json").read_text())
        assert settings["backend"] == backend
    np.testing.assert_allclose(maps["openslide"], maps["tifffile"], atol=1e-5)  # identical pixels
    again = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "openslide")])  # auto now
    assert again.exit_code != 0 and "--backend" in str(again.exception)
