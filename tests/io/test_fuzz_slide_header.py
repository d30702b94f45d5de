"""Property-based fuzzing of the slide header parser: damaged files open or raise a HistoError, nothing else.

Small TIFFs (tiled JPEG, deflate strips, uncompressed, BigTIFF, a two-level
pyramid), PNGs and JPEGs are written once; hypothesis then overwrites bytes,
truncates them, or makes random files with a TIFF, PNG or JPEG signature (a
few seconds by default; ``HISTO_FUZZ_EXAMPLES=5000`` searches longer).  ``open_slide``
must either open the result or raise a :class:`~napari_histo.errors.HistoError`
(never another exception, never a hang: each example has a deadline), and a
slide that opens must read a region and its thumbnail, or raise a HistoError.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_histo.errors import HistoError
from napari_histo.io import open_slide
from napari_histo.io.slide import SlideWarning

# HISTO_FUZZ_EXAMPLES=5000 searches longer, with fresh random examples each run
_EXAMPLES = os.environ.get("HISTO_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 150),
    deadline=3000,  # ms per example: a parser loop or a huge allocation would blow it
    derandomize=_EXAMPLES is None,  # by default the same examples on every run (CI stays reproducible)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pixels(rows: int, cols: int) -> np.ndarray:
    rr, cc = np.mgrid[0:rows, 0:cols]
    return np.stack([rr * 3 % 256, cc * 5 % 256, (rr + cc) % 256], -1).astype(np.uint8)


def _tiff_bytes(kind: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.tif"
        image = _pixels(96, 128)
        if kind == "jpeg-tiles":
            tifffile.imwrite(path, image, tile=(32, 32), compression="jpeg", photometric="rgb")
        elif kind == "zlib-strips":
            tifffile.imwrite(path, image, rowsperstrip=16, compression="zlib", photometric="rgb")
        elif kind == "raw":
            tifffile.imwrite(path, image, photometric="rgb")
        elif kind == "bigtiff":
            tifffile.imwrite(path, image, tile=(32, 32), compression="zlib", photometric="rgb", bigtiff=True)
        else:  # a two-level pyramid with a label page, as the scanners write
            with tifffile.TiffWriter(path) as tif:
                tif.write(image, tile=(32, 32), compression="jpeg", photometric="rgb")
                tif.write(
                    image[::2, ::2], tile=(32, 32), compression="jpeg", photometric="rgb", subfiletype=1
                )
                tif.write(_pixels(16, 24), photometric="rgb", subfiletype=1, description="label")
        return path.read_bytes()


SEEDS = {
    **{
        f"{kind}.tif": _tiff_bytes(kind)
        for kind in ("jpeg-tiles", "zlib-strips", "raw", "bigtiff", "pyramid")
    },
    "s.png": bytes(imagecodecs.png_encode(_pixels(40, 56))),
    "s.jpg": bytes(imagecodecs.jpeg8_encode(_pixels(40, 56))),
}


def _exercise(name: str, data: bytes) -> None:
    """Open ``data`` as a slide and read from it; only HistoError may escape."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        for on_error in ("raise", "fill"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SlideWarning)  # conversions and damage read around: expected
                try:
                    with open_slide(path, on_error=on_error) as slide:
                        rows, cols = slide.dimensions
                        region = slide.read_region((0, 0), 0, (min(rows, 48), min(cols, 48)))
                        assert region.dtype == np.uint8 and region.shape[2:] == (3,)
                        thumb = slide.thumbnail(64)
                        assert thumb.ndim == 3 and thumb.shape[2] == 3
                        slide.info()
                except HistoError:
                    pass


# every edit: (position as a fraction of the file, new bytes); most land in the header and IFDs
EDIT = st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8))


@FUZZ
@given(
    name=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(EDIT, min_size=1, max_size=6),
    header_bias=st.booleans(),
)
def test_overwritten_bytes_open_or_raise_a_histo_error(name, edits, header_bias):
    data = bytearray(SEEDS[name])
    for where, new in edits:
        span = min(len(data), 512) if header_bias else len(data)
        start = min(int(where * span), len(data) - 1)
        data[start : start + len(new)] = new[: len(data) - start]
    _exercise(name, bytes(data))


@FUZZ
@given(name=st.sampled_from(sorted(SEEDS)), keep=st.floats(0, 1))
def test_truncated_files_open_or_raise_a_histo_error(name, keep):
    data = SEEDS[name]
    _exercise(name, data[: int(len(data) * keep)])


@FUZZ
@given(
    magic=st.sampled_from([b"II*\x00", b"MM\x00*", b"II+\x00", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b""]),
    body=st.binary(max_size=600),
)
def test_random_bytes_open_or_raise_a_histo_error(magic, body):
    _exercise("r.tif", magic + body)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_seeds_themselves_open(name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(SEEDS[name])
        with open_slide(path) as slide:
            assert slide.read_region((0, 0), 0, (8, 8)).shape == (8, 8, 3)
