"""Pixel layouts: every slide reads as 8-bit RGB, converted with a warning or refused with the fix."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile
from make_tiffs import gradient_rgb

from napari_histo.core._image import PixelLayout, to_rgb8
from napari_histo.errors import InvalidImageError, UnsupportedFormatError
from napari_histo.io import open_slide
from napari_histo.io.slide import SlideWarning

RGB = gradient_rgb(128, 160)
GRAY = np.ascontiguousarray(RGB[..., 1])


def _open_converted(path, match):
    with pytest.warns(SlideWarning, match=match) as record:
        slide = open_slide(path)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    return slide


def _read(slide):
    pixels = slide.read_region((0, 0), 0, slide.dimensions)
    assert pixels.dtype == np.uint8 and pixels.shape == (*slide.dimensions, 3)
    assert slide.level_info[0].shape == (*slide.dimensions, 3)
    return pixels


def test_rgba_is_composited_over_white(tmp_path):
    alpha = np.full(RGB.shape[:2], 255, np.uint8)
    alpha[:, :32] = 0
    alpha[:, 32:64] = 128
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, np.dstack([RGB, alpha]), tile=(64, 64), photometric="rgb", extrasamples=[2])
    with _open_converted(path, r"RGBA 8-bit pixels.*over white") as slide:
        pixels = _read(slide)
        assert slide.pixel_layout == "RGBA 8-bit" and slide.info()["pixel_layout"] == "RGBA 8-bit"
        assert (pixels[:, :32] == 255).all()
        half = RGB[:, 32:64].astype(float) * 128 / 255 + 255 * (1 - 128 / 255)
        assert np.abs(pixels[:, 32:64] - half).max() <= 1
        assert (pixels[:, 64:] == RGB[:, 64:]).all()
        assert slide.levels[0].shape == (128, 160, 3)  # a dask view of the converted pixels, not raw zarr


def test_rgba_png_the_same(tmp_path):
    path = tmp_path / "rgba.png"
    path.write_bytes(imagecodecs.png_encode(np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])))
    with _open_converted(path, r"RGBA 8-bit") as slide:
        assert (_read(slide) == RGB).all()


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_16_bit_is_scaled(tmp_path, suffix):
    path = tmp_path / f"u16{suffix}"
    data = RGB.astype(np.uint16) * 257
    if suffix == ".tif":
        tifffile.imwrite(path, data, tile=(64, 64), compression="zlib", photometric="rgb")
    else:
        path.write_bytes(imagecodecs.png_encode(data))
    with _open_converted(path, r"RGB 16-bit pixels.*0-65,535 to 0-255") as slide:
        assert (_read(slide) == RGB).all()


def test_grayscale_is_repeated_and_miniswhite_inverted(tmp_path):
    tifffile.imwrite(tmp_path / "g.tif", GRAY, tile=(64, 64), photometric="minisblack")
    with _open_converted(tmp_path / "g.tif", r"grayscale 8-bit.*repeated as R, G and B") as slide:
        pixels = _read(slide)
        assert (pixels == GRAY[..., None]).all()
    tifffile.imwrite(tmp_path / "w.tif", GRAY, photometric="miniswhite")
    with _open_converted(tmp_path / "w.tif", r"inverted") as slide:
        assert (_read(slide) == 255 - GRAY[..., None]).all()


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (RGB.astype(np.float32), {"photometric": "rgb"}, r"RGB 32-bit float.*vips linear"),
        (np.dstack([RGB, GRAY]), {"photometric": "separated"}, r"CMYK 8-bit.*srgb"),
        (RGB[..., :2], {"photometric": "minisblack", "planarconfig": "contig"}, r"2-channel"),
        (RGB.astype(np.int16), {"photometric": "rgb"}, r"16-bit signed.*vips cast"),
        (GRAY > 100, {"photometric": "minisblack"}, r"1-bit"),
        (np.moveaxis(RGB, -1, 0), {"photometric": "rgb", "planarconfig": "separate"}, r"separate plane"),
    ],
)
def test_unreadable_layouts_are_refused_with_the_fix(tmp_path, data, kwargs, match):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, data, **kwargs)
    with pytest.raises(UnsupportedFormatError, match=match) as info:
        open_slide(path)
    assert "\n" not in str(info.value) and "x.tif" in str(info.value)


def test_to_rgb8_directly():
    layout = PixelLayout(2, "uint8", "minisblack", "alpha")
    pixels = np.dstack([np.full((2, 2), 100, np.uint8), np.array([[0, 255], [255, 0]], np.uint8)])
    out = to_rgb8(pixels, layout)
    assert out.shape == (2, 2, 3) and out[0, 0].tolist() == [255] * 3 and out[0, 1].tolist() == [100] * 3
    assert PixelLayout(3, "uint16", "rgb", bits=12).conversion() == "values are scaled from 0-4,095 to 0-255"
    assert to_rgb8(np.full((1, 1, 3), 4095, np.uint16), PixelLayout(3, "uint16", "rgb", bits=12)).max() == 255
    with pytest.raises(InvalidImageError, match="floating-point"):
        to_rgb8(np.zeros((2, 2, 3), np.float32), PixelLayout(3, "float32"))
