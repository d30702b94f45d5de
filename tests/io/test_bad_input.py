"""Damaged and wrong files give the project's errors, which also match builtins."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile
from make_tiffs import gradient_rgb

from napari_histo.errors import (
    CorruptSlideError,
    CorruptTileError,
    HistoError,
    SlideNotFoundError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from napari_histo.io import open_slide


@pytest.fixture
def jpeg_tiff(tmp_path):
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, gradient_rgb(512, 768), tile=(256, 256), compression="jpeg", photometric="rgb")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(SlideNotFoundError, match="no such file") as info:
        open_slide(tmp_path / "nope.svs")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="is a directory"):
        open_slide(tmp_path)


def test_not_a_tiff(tmp_path):
    path = tmp_path / "notes.svs"
    path.write_text("this is not a slide")
    with pytest.raises(UnsupportedFormatError, match="not a TIFF, PNG or JPEG") as info:
        open_slide(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HistoError)
    assert "notes.svs" in str(info.value) and "bfconvert" in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.ndpi"
    path.write_bytes(b"")
    with pytest.raises(CorruptSlideError, match="empty"):
        open_slide(path)


def test_truncated_file_is_caught_at_open(jpeg_tiff, tmp_path):
    data = jpeg_tiff.read_bytes()
    with tifffile.TiffFile(jpeg_tiff) as tif:
        offsets = tif.pages[0].dataoffsets
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: offsets[-1] + 10])  # the IFD (written first) survives, the last tile does not
    with pytest.raises(CorruptSlideError, match="truncated") as info:
        open_slide(cut)
    assert isinstance(info.value, OSError)
    assert "copy the slide again" in str(info.value)


def test_truncated_header(tmp_path, jpeg_tiff):
    cut = tmp_path / "header.tif"
    cut.write_bytes(jpeg_tiff.read_bytes()[:6])
    with pytest.raises(CorruptSlideError, match="cannot be read"):
        open_slide(cut)


def test_corrupt_tile_raises_or_fills(jpeg_tiff, tmp_path):
    with tifffile.TiffFile(jpeg_tiff) as tif:
        start, count = tif.pages[0].dataoffsets[4], tif.pages[0].databytecounts[4]  # tile row 1, col 1
    data = bytearray(jpeg_tiff.read_bytes())
    data[start : start + count] = b"\x00" * count
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    with open_slide(bad) as slide:
        good = slide.read_region((0, 0), 0, (256, 256))  # untouched tile still reads
        assert good.std() > 10
        with pytest.raises(CorruptTileError, match="tile 4 of level 0") as info:
            slide.read_region((300, 300), 0, (10, 10))
        assert "on_error='fill'" in str(info.value)
    with open_slide(bad, on_error="fill") as slide:
        with pytest.warns(RuntimeWarning, match="showing it as background"):
            region = slide.read_region((256, 256), 0, (256, 256))
        assert (region == 255).all()


def test_unsupported_compression(tmp_path):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, gradient_rgb(256, 256), tile=(128, 128), compression="zlib", photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        entry = tif.pages[0].tags["Compression"].offset
    data = bytearray(path.read_bytes())
    data[entry + 8 : entry + 10] = struct.pack("<H", 34999)  # an unregistered compression code
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedCompressionError, match="34999") as info:
        open_slide(path)
    assert isinstance(info.value, NotImplementedError)
    assert "imagecodecs" in str(info.value)


def test_multichannel_ome_is_refused_with_advice(tmp_path):
    path = tmp_path / "fluo.ome.tif"
    tifffile.imwrite(path, np.zeros((5, 64, 64), np.uint16), metadata={"axes": "CYX"})
    with pytest.raises(UnsupportedFormatError, match="axes 'CYX'"):
        open_slide(path)
