"""ICC profiles: found in real SVS files; sRGB is identity; other profiles convert the expected way."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import tifffile
from conftest import shared_file

from napari_histo.errors import InvalidParameterError
from napari_histo.io._icc import (
    SrgbLevel,
    apply_color,
    icc_profile_of,
    icc_transform,
    is_srgb_profile,
    profile_description,
)
from napari_histo.io._metadata import Calibration
from napari_histo.io._slide_parts import LevelInfo, SlideParts
from napari_histo.io._tile_reader import ArrayLevel, SlideWarning

# D50-adapted colorants (as in the published profiles) of sRGB and Adobe RGB (1998)
SRGB_PRIMARIES = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
ADOBE_PRIMARIES = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
D50 = (0.9642, 1.0, 0.8249)


def rgb_profile(primaries, gamma: float | None, name: str = "test RGB") -> bytes:
    """A minimal ICC v2 matrix/TRC display profile (what cameras and Adobe RGB are).

    ``gamma=None`` gives sRGB's own tone curve (a parametric curve), else a pure power curve.
    """

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    text = name.encode() + b"\0"
    desc = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67
    )
    if gamma is None:  # sRGB: Y = ((X + 0.055) / 1.055) ** 2.4 above 0.04045, X / 12.92 below
        params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
        curve = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(s15(v) for v in params)
    else:
        curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz(D50)), (b"rXYZ", xyz(primaries[0])), (b"gXYZ", xyz(primaries[1])),
            (b"bXYZ", xyz(primaries[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
            (b"cprt", b"text\0\0\0\0no copyright\0")]  # fmt: skip
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12
              + b"acsp" + b"\0" * 28 + b"".join(s15(c) for c in D50) + b"\0" * 48)  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def test_real_svs_profile_is_found_and_srgb_is_identity():
    svs = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    profile = icc_profile_of(svs)
    assert profile is not None and len(profile) == 3144
    with tifffile.TiffFile(svs) as tif:  # the same bytes through a page and a file
        assert icc_profile_of(tif.pages[0]) == profile == icc_profile_of(tif)
        assert icc_profile_of(tif.pages[1]) is None  # the thumbnail page carries none
        region = tif.pages[1].asarray()[:256, :256]  # the thumbnail: small to decode
    assert "sRGB" in profile_description(profile) and is_srgb_profile(profile)
    out = icc_transform(profile)(region)
    assert out.shape == region.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - region).max() <= 1


def test_cmu_svs_has_no_profile():
    assert icc_profile_of(shared_file("wsi", "CMU-1-Small-Region.svs")) is None


def test_not_a_profile():
    assert icc_profile_of(b"not a profile" * 20) is None
    with pytest.raises(TypeError):
        icc_profile_of(3.5)
    with pytest.raises(InvalidParameterError, match="cannot be used"):
        icc_transform(b"\0" * 36 + b"acsp" + b"\0" * 200)


def test_built_srgb_profile_is_identity():
    profile = rgb_profile(SRGB_PRIMARIES, None, "built sRGB")
    assert profile_description(profile) == "built sRGB" and is_srgb_profile(profile)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.abs(icc_transform(profile)(pixels).astype(int) - pixels).max() <= 1


def test_linear_profile_brightens_midtones():
    """Values stored linearly (gamma 1) are brighter once encoded for an sRGB display."""
    convert = icc_transform(rgb_profile(SRGB_PRIMARIES, 1.0))
    mid = np.full((4, 4, 3), 64, np.uint8)
    out = convert(mid)
    assert (out > 120).all() and np.ptp(out) <= 1  # 64/255 linear is ~137 in sRGB; gray stays gray
    assert (
        convert(np.zeros((1, 1, 3), np.uint8)).max() <= 1
        and convert(np.full((1, 1, 3), 255, np.uint8)).min() >= 254
    )


def test_wide_gamut_profile_saturates_colours_and_keeps_grays():
    convert = icc_transform(rgb_profile(ADOBE_PRIMARIES, 563 / 256, "Adobe-like"))
    assert not is_srgb_profile(rgb_profile(ADOBE_PRIMARIES, 563 / 256))
    he = np.array(
        [[[200, 120, 170], [150, 90, 200], [230, 180, 210]]], np.uint8
    )  # eosin / haematoxylin tones
    out = convert(he).astype(int)
    assert (np.ptp(out, axis=-1) > np.ptp(he.astype(int), axis=-1)).all()  # more saturated in sRGB
    gray = np.full((1, 3, 3), [[96], [128], [220]], np.uint8)  # (gamma 2.2 and sRGB differ in dark shades)
    assert np.abs(convert(gray).astype(int) - gray).max() <= 2
    # any batch shape converts; the transform is cached per profile
    assert convert(he[0]).shape == (3, 3) and convert(np.zeros((0, 3), np.uint8)).shape == (0, 3)


def _parts(image: np.ndarray) -> SlideParts:
    reader = ArrayLevel(lambda: image, image.shape, np.uint8)
    info = LevelInfo(image.shape, 1.0, None, "none")
    return SlideParts("tiff", None, Calibration(), (info,), {}, (reader,), zarr_factory=lambda i: image)


def test_apply_color_raw_keeps_pixels_and_says_so():
    image = np.full((8, 8, 3), 64, np.uint8)
    linear = rgb_profile(SRGB_PRIMARIES, 1.0, "linear camera")
    raw = apply_color(_parts(image), linear, "raw")
    assert raw.properties["color"] == "raw" and raw.properties["icc_profile"] == "linear camera"
    assert "not applied" in raw.properties["color_note"]
    assert raw.readers[0].read_window(0, 0, 8, 8).max() == 64 and raw.zarr_factory is not None


def test_apply_color_srgb_converts_regions():
    image = np.full((8, 8, 3), 64, np.uint8)
    parts = apply_color(_parts(image), rgb_profile(SRGB_PRIMARIES, 1.0, "linear camera"), "srgb")
    assert parts.properties["color"] == "srgb" and "converted" in parts.properties["color_note"]
    reader = parts.readers[0]
    assert isinstance(reader, SrgbLevel) and reader.shape == (8, 8, 3) and reader.filled_tiles == 0
    assert (reader[2:4, 2:5] > 120).all() and reader[2:4, 2:5].shape == (2, 3, 3)
    assert parts.zarr_factory is None  # Slide.levels then serve the converted pixels


def test_apply_color_srgb_without_or_with_srgb_profile():
    image = np.full((4, 4, 3), 64, np.uint8)
    same = apply_color(_parts(image), None, "srgb")
    assert same.properties["icc_profile"] == "none" and same.readers[0].read_window(0, 0, 4, 4).max() == 64
    assert same.notes and same.notes[0][0] is SlideWarning
    srgb = icc_profile_of(shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs"))
    kept = apply_color(_parts(image), srgb, "srgb")
    assert not isinstance(kept.readers[0], SrgbLevel) and "unchanged" in kept.properties["color_note"]
    with pytest.raises(InvalidParameterError, match="raw"):
        apply_color(_parts(image), None, "p3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_color(_parts(image), None, "raw")


def test_open_slide_color_raw_by_default_and_srgb_converts_through_the_embedded_profile(tmp_path):
    """A real H&E region saved as a tiled TIFF carrying a wide-gamut profile, opened both ways."""
    from napari_histo.io import open_slide

    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as slide:
        region = slide.read_region((600, 800), 0, (512, 512))
    profile = rgb_profile(ADOBE_PRIMARIES, 2.2, "wide gamut test")
    path = tmp_path / "wide.tif"
    tifffile.imwrite(
        path, region, tile=(256, 256), photometric="rgb", extratags=[(34675, 7, len(profile), profile, True)]
    )
    with open_slide(path) as raw:
        assert raw.properties["color"] == "raw" and raw.properties["icc_profile"] == "wide gamut test"
        assert "not applied" in raw.properties["color_note"]
        np.testing.assert_array_equal(raw.read_region((0, 0), 0, (512, 512)), region)
    expected = icc_transform(profile)(region)
    with open_slide(path, color="srgb") as srgb:
        assert srgb.properties["color"] == "srgb"
        shown = srgb.read_region((0, 0), 0, (512, 512))
    np.testing.assert_array_equal(shown, expected)
    assert np.abs(shown.astype(int) - region).mean() > 2  # the profile really changed the colours
    with pytest.raises(InvalidParameterError, match="color must be 'raw' or 'srgb'"):
        open_slide(path, color="adobe")
