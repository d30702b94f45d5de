"""OME-Zarr slides as input: NGFF images written by ``ome-zarr``'s writer (and by hand) read lazily as RGB.

``open_slide`` dispatches OME-Zarr folders to :func:`open_omezarr_parts` once wired;
these tests call it directly and build a ``Slide`` from its parts as ``open_slide`` does.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import zarr
from conftest import shared_file

from napari_histo.errors import CorruptSlideError, CorruptTileError, UnsupportedFormatError
from napari_histo.io._omezarr_parts import OmeZarrLevel, is_omezarr, open_omezarr_parts
from napari_histo.io._tile_reader import SlideDamageWarning, SlideWarning, TileCache
from napari_histo.io.ome_zarr import write_ome_zarr

ome_writer = pytest.importorskip("ome_zarr.writer")
ome_format = pytest.importorskip("ome_zarr.format")

MPP = 0.499


@pytest.fixture(scope="module")
def rgb():
    """A real H&E region (CMU-1-Small-Region, level 0), 1000 x 1300 px."""
    from napari_histo.io.slide import open_slide

    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as slide:
        return slide.read_region((500, 600), 0, (1000, 1300))


def write_with_ome_zarr(path, image_cyx, version="0.4", scale_factors=(2, 4)):
    """The image written by ``ome-zarr``'s own writer (axes c, y, x, µm), as other tools write it."""
    fmt = ome_format.FormatV04() if version == "0.4" else ome_format.FormatV05()
    zarr_format = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    ome_writer.write_image(
        image_cyx, group, scale_factors=list(scale_factors), fmt=fmt, axes="cyx",
        scale={"c": 1.0, "y": MPP, "x": MPP}, axes_units={"y": "micrometer", "x": "micrometer"},
        storage_options={"chunks": (1, 256, 256)},
    )  # fmt: skip
    return path


def build_slide(path, parts, cache):
    """A ``Slide`` made the way ``open_slide`` makes one from a format opener's parts."""
    from napari_histo.io.slide import _build_slide

    return _build_slide(path, parts, cache, None)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_writer_output_reads_as_the_slide(tmp_path, rgb, version):
    path = write_with_ome_zarr(tmp_path / "he.ome.zarr", np.moveaxis(rgb, -1, 0), version)
    assert is_omezarr(path)
    cache = TileCache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = open_omezarr_parts(path, cache)
    assert parts.format == "ome-zarr" and parts.pixel_layout == "RGB 8-bit" and not parts.notes
    assert parts.calibration.mpp == pytest.approx(MPP)
    assert parts.properties["ome-zarr.version"] == version
    assert parts.properties["ome-zarr.axes"] == "c,y,x"
    assert [i.shape for i in parts.level_info] == [(1000, 1300, 3), (500, 650, 3), (250, 325, 3)]
    assert [i.downsample for i in parts.level_info] == pytest.approx([1, 2, 4])
    assert parts.level_info[0].tile_shape == (256, 256)
    reader = parts.readers[0]
    np.testing.assert_array_equal(reader.read_window(0, 0, 1000, 1300), rgb)
    np.testing.assert_array_equal(reader[300:700:2, 10:990], rgb[300:700:2, 10:990])
    assert cache.nbytes > 0  # chunks decoded once into the slide's cache

    slide = build_slide(path, parts, cache)
    assert slide.mpp == pytest.approx(MPP) and slide.mpp_source.startswith("OME-Zarr")
    assert slide.level_count == 3 and slide.dimensions == (1000, 1300)
    np.testing.assert_array_equal(slide.read_region((100, 200), 0, (64, 80)), rgb[100:164, 200:280])
    outside = slide.read_region((-10, 1290), 0, (20, 20))
    assert (outside[:10] == 255).all() and (outside[10:, 10:] == 255).all()
    np.testing.assert_array_equal(np.asarray(slide.to_dask(0)[:50, :60]), rgb[:50, :60])
    assert slide.thumbnail(200).shape[2] == 3


def test_our_writer_round_trips_and_yxc_axes(tmp_path, rgb):
    """An RGB image through :func:`write_ome_zarr`, and a (y, x, c) image written by hand."""
    path = write_ome_zarr(
        tmp_path / "w.ome.zarr", np.moveaxis(rgb, -1, 0), 0.25, channel_names=["R", "G", "B"]
    )
    parts = open_omezarr_parts(path, TileCache())
    assert parts.calibration.mpp == pytest.approx(0.25) and len(parts.readers) == 4  # down to <= 256 px
    np.testing.assert_array_equal(parts.readers[0].read_window(0, 0, 1000, 1300), rgb)

    yxc = tmp_path / "yxc.zarr"
    group = zarr.open_group(str(yxc), mode="w", zarr_format=2)
    group.create_array("0", data=rgb, chunks=(300, 300, 3))
    nm = {"type": "space", "unit": "nanometer"}
    axes = [{"name": "y", **nm}, {"name": "x", **nm}, {"name": "c", "type": "channel"}]
    ds = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [500.0, 500.0, 1.0]}]}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": ds}]
    parts = open_omezarr_parts(yxc, TileCache())
    assert parts.calibration.mpp == pytest.approx(0.5)  # 500 nm
    assert parts.level_info[0].tile_shape == (300, 300)
    np.testing.assert_array_equal(parts.readers[0][123:456, 7:800], rgb[123:456, 7:800])


def test_bioformats2raw_layout_and_uint16_grayscale(tmp_path, rgb):
    """bioformats2raw: the image is series 0/; 16-bit gray is converted (with a note), t and z read at 0."""
    root = zarr.open_group(str(tmp_path / "b2r.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    series = root.create_group("0")
    gray16 = (rgb[..., 1].astype(np.uint16) * 257)[np.newaxis, np.newaxis, np.newaxis]  # t, c, z, y, x
    series.create_array("0", data=gray16, chunks=(1, 1, 1, 512, 512))
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}, {"name": "z", "type": "space"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]  # fmt: skip
    series.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    parts = open_omezarr_parts(tmp_path / "b2r.zarr", TileCache())
    assert parts.pixel_layout == "grayscale 16-bit" and parts.calibration.mpp is None  # no unit: unknown
    assert parts.notes and parts.notes[0][0] is SlideWarning and "scaled" in parts.notes[0][1]
    region = parts.readers[0].read_window(0, 0, 40, 50)
    assert region.shape == (40, 50, 3) and region.dtype == np.uint8
    np.testing.assert_array_equal(region[..., 0], rgb[:40, :50, 1])
    np.testing.assert_array_equal(region[..., 2], region[..., 0])


def test_what_is_not_a_slide(tmp_path):
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("x", shape=(4, 4), dtype="uint8")
    with pytest.raises(UnsupportedFormatError, match="multiscales"):
        open_omezarr_parts(tmp_path / "plain.zarr", TileCache())
    plate = zarr.open_group(str(tmp_path / "plate.zarr"), mode="w", zarr_format=2)
    plate.attrs["plate"] = {"rows": []}
    with pytest.raises(UnsupportedFormatError, match="plate"):
        open_omezarr_parts(tmp_path / "plate.zarr", TileCache())
    five = zarr.open_group(str(tmp_path / "five.zarr"), mode="w", zarr_format=2)
    five.create_array("0", shape=(5, 8, 8), dtype="uint8")
    five.attrs["multiscales"] = [{"version": "0.4", "axes": ["c", "y", "x"], "datasets": [{"path": "0"}]}]
    with pytest.raises(UnsupportedFormatError, match="5 channels"):
        open_omezarr_parts(tmp_path / "five.zarr", TileCache())
    five.attrs["multiscales"] = [{"version": "0.4", "axes": ["c", "y", "x"], "datasets": [{"path": "9"}]}]
    with pytest.raises(CorruptSlideError, match="'9'"):
        open_omezarr_parts(tmp_path / "five.zarr", TileCache())
    assert not is_omezarr(tmp_path / "missing.zarr") and not is_omezarr(tmp_path / "plain.zarr" / "x" / "c")


def test_a_damaged_chunk_raises_or_reads_as_background(tmp_path, rgb):
    image = np.moveaxis(rgb, -1, 0)
    path = write_ome_zarr(tmp_path / "d.ome.zarr", image, 0.5, channel_names=["R", "G", "B"], chunk_px=256)
    (path / "0" / "0" / "1" / "1").write_bytes(b"not blosc")  # channel 0, chunk row 1, col 1
    with pytest.raises(CorruptTileError, match="rows 256-512, cols 256-512"):
        open_omezarr_parts(path, TileCache()).readers[0].read_window(300, 300, 310, 310)
    reader = open_omezarr_parts(path, TileCache(), on_error="fill").readers[0]
    assert isinstance(reader, OmeZarrLevel)
    with pytest.warns(SlideDamageWarning, match="background"):
        window = reader.read_window(250, 250, 300, 300)
    assert (window[6:, 6:] == 255).all() and reader.filled_tiles == 1
    np.testing.assert_array_equal(window[:6], rgb[250:256, 250:300])
    meta = json.loads((path / ".zattrs").read_text())
    assert meta["multiscales"][0]["axes"][0]["name"] == "c"


def test_open_slide_picks_the_omezarr_backend_for_an_ngff_folder(tmp_path, rgb):
    """Through ``open_slide`` (auto and forced), ``histo info`` and the napari reader."""
    from click.testing import CliRunner

    from napari_histo._napari.reader import get_slide_reader
    from napari_histo.cli.main import cli
    from napari_histo.io import open_slide

    path = write_with_ome_zarr(tmp_path / "he.ome.zarr", np.moveaxis(rgb, -1, 0))
    for backend in ("auto", "omezarr"):
        with open_slide(path, backend=backend) as slide:
            assert slide.backend == "omezarr" and slide.format == "ome-zarr"
            assert slide.mpp == pytest.approx(MPP) and slide.level_count == 3
            np.testing.assert_array_equal(slide.read_region((100, 200), 0, (64, 80)), rgb[100:164, 200:280])
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["backend"] == "omezarr" and info["mpp"] == pytest.approx(MPP)
    reader = get_slide_reader(str(path))
    assert reader is not None
    data, meta, kind = reader(str(path))[0]
    assert kind == "image" and meta["multiscale"] and len(data) == 3
    assert meta["scale"][-1] == pytest.approx(MPP)  # napari shows it in µm
