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
from napari_histo.io.slide import SlideDamageWarning


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
        assert "copy it again" in str(info.value) and "\n" not in str(info.value)
    with open_slide(bad, on_error="fill") as slide:
        with pytest.warns(RuntimeWarning, match="tile 4 of level 0.*read as background") as record:
            region = slide.read_region((256, 256), 0, (256, 256))
        assert (region == 255).all()
        assert len(record) == 1 and "\n" not in str(record[0].message)
        assert issubclass(record[0].category, SlideDamageWarning) and slide.filled_tiles == 1


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


def _set_tag(path, name, value):
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[name]
        fmt, offset = {3: "<H", 4: "<I"}[int(tag.dtype)], tag.valueoffset
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def test_a_header_claiming_a_million_pixels_is_refused_before_reading(jpeg_tiff, tmp_path):
    for name in ("ImageWidth", "ImageLength"):
        _set_tag(jpeg_tiff, name, 1_000_000)
    with pytest.raises(CorruptSlideError, match=r"1,000,000 x 1,000,000 px.*tile table lists 6"):
        open_slide(jpeg_tiff)
    strip = tmp_path / "strip.tif"
    tifffile.imwrite(strip, gradient_rgb(256, 256), rowsperstrip=256, compression="zlib", photometric="rgb")
    for name, value in (("ImageWidth", 10**6), ("ImageLength", 10**6), ("RowsPerStrip", 10**6)):
        _set_tag(strip, name, value)
    with pytest.raises(CorruptSlideError, match=r"2\.7 TiB of pixels.*far too few"):
        open_slide(strip)


def test_reads_beyond_the_memory_budget_are_refused_first(jpeg_tiff, monkeypatch):
    from napari_histo.errors import MemoryBudgetError

    monkeypatch.setenv("NAPARI_HISTO_MEMORY_BUDGET", "400K")
    with open_slide(jpeg_tiff) as slide:
        slide.read_region((0, 0), 0, (64, 64))  # 12 KiB, from one tile of 192 KiB: fine
        with pytest.raises(
            MemoryBudgetError, match=r"768 x 512 px of level 0 needs 1\.1 MiB .* 400 KiB allowed"
        ) as info:
            slide.read_region((0, 0), 0, (512, 768))
        assert isinstance(info.value, MemoryError)


def test_tiles_past_the_end_raise_or_are_filled_and_counted(jpeg_tiff, tmp_path):
    with tifffile.TiffFile(jpeg_tiff) as tif:
        cut = int(tif.pages[0].dataoffsets[4]) + 10  # tiles 4 and 5 cut off
    short = tmp_path / "short.tif"
    short.write_bytes(jpeg_tiff.read_bytes()[:cut])
    with pytest.raises(CorruptSlideError, match="truncated"):
        open_slide(short)
    with pytest.warns(SlideDamageWarning, match=r"level 0: 2 of 6 tiles lie past its end") as record:
        slide = open_slide(short, on_error="fill")
    assert len(record) == 1
    with slide:
        assert (slide.read_region((256, 256), 0, (256, 512)) == 255).all()  # no further warning
        assert slide.filled_tiles == 2


def test_a_lost_page_directory_raises_or_warns_and_tifffile_stays_quiet(tmp_path, capsys, caplog):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(gradient_rgb(256, 256), tile=(128, 128), compression="jpeg", photometric="rgb")
        tif.write(
            gradient_rgb(128, 128), tile=(128, 128), compression="jpeg", photometric="rgb", subfiletype=1
        )
    with tifffile.TiffFile(path) as tif:
        cut = tif.pages[1].offset
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CorruptSlideError, match=r"truncated or damaged: .* starts at byte .* past its end"):
        open_slide(path)
    with pytest.warns(SlideDamageWarning, match="Reading what is there"):
        with open_slide(path, on_error="fill") as slide:
            assert slide.level_count == 1
    assert "tifffile" not in capsys.readouterr().err
    assert not [r for r in caplog.records if r.name == "tifffile"]


def test_odd_paths_say_what_they_are(tmp_path, monkeypatch):
    import os

    from napari_histo.errors import FileAccessError

    os.symlink(tmp_path / "b.svs", tmp_path / "a.svs")
    os.symlink(tmp_path / "a.svs", tmp_path / "b.svs")
    with pytest.raises(SlideNotFoundError, match="symbolic link that loops"):
        open_slide(tmp_path / "a.svs")
    os.symlink(tmp_path / "gone.svs", tmp_path / "dangling.svs")
    with pytest.raises(SlideNotFoundError, match=r"symbolic link to .*gone\.svs, which does not exist"):
        open_slide(tmp_path / "dangling.svs")
    os.mkfifo(tmp_path / "pipe.svs")
    with pytest.raises(SlideNotFoundError, match=r"named pipe \(FIFO\)"):
        open_slide(tmp_path / "pipe.svs")  # refused before open(), which would block
    (tmp_path / "f.svs").write_bytes(b"II*\x00")
    with pytest.raises(SlideNotFoundError, match="before the file name is a file"):
        open_slide(tmp_path / "f.svs" / "x.svs")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as a user without read permission
    with pytest.raises(FileAccessError, match=r"permission denied.*chmod a\+r") as info:
        open_slide(tmp_path / "f.svs")
    assert isinstance(info.value, PermissionError)


def test_zero_sized_and_lying_plain_images(tmp_path):
    import imagecodecs

    png = bytearray(imagecodecs.png_encode(gradient_rgb(32, 32)))
    struct.pack_into(">II", png, 16, 0, 32)
    (tmp_path / "zero.png").write_bytes(bytes(png))
    with pytest.raises(CorruptSlideError, match="0 x 32 px: it has no pixels"):
        open_slide(tmp_path / "zero.png")
    struct.pack_into(">II", png, 16, 100_000, 100_000)
    (tmp_path / "big.png").write_bytes(bytes(png))
    with pytest.raises(CorruptSlideError, match="far too few"):
        open_slide(tmp_path / "big.png")


def test_a_long_thin_image_gets_computed_levels(tmp_path):
    path = tmp_path / "thin.tif"
    tifffile.imwrite(path, gradient_rgb(3, 6000), photometric="rgb")
    with open_slide(path) as slide:
        assert min(info.shape[0] for info in slide.level_info) >= 1
        assert slide.thumbnail(256).shape[2] == 3
