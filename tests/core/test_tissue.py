import csv

import imagecodecs
import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.tissue import TissueConfig, TissueMethod, detect_pen, detect_tissue, tissue_fraction
from napari_histo.errors import InvalidImageError

# a tile counts as tissue when at least this fraction of it is detected as tissue
TILE_TISSUE_FRACTION = 0.05


def _labelled_tiles():
    labels = shared_file("tiles", "labels.csv")
    with open(labels, newline="") as fh:
        for row in csv.DictReader(fh):
            rgba = imagecodecs.imread(labels.parent / row["file"])
            yield row, rgba[..., :3]


@pytest.mark.parametrize(("method", "floor"), [(TissueMethod.HSV, 0.96), (TissueMethod.OTSU, 0.92)])
def test_accuracy_on_real_tiles(method, floor):
    results = []
    for row, rgb in _labelled_tiles():
        predicted = tissue_fraction(detect_tissue(rgb, method)) >= TILE_TISSUE_FRACTION
        results.append(predicted == (row["filename_tissue_label"] == "1"))
    assert len(results) == 25
    accuracy = float(np.mean(results))
    print(f"{method.value}: tissue accuracy {accuracy:.3f} on {len(results)} real tiles")
    assert accuracy >= floor


def test_pen_only_tiles_are_not_tissue():
    for row, rgb in _labelled_tiles():
        if row["file"] in ("no-tissue-green-pen.png", "no-tissue-line.png"):
            assert tissue_fraction(detect_tissue(rgb)) < 0.01, row["file"]
        if row["file"] == "no-tissue-green-pen.png":
            assert detect_pen(rgb).mean() > 0.5


def test_background_black_and_stained_synthetic():
    rgb = np.full((64, 64, 3), 245, np.uint8)
    rgb[10:40, 10:40] = (180, 100, 170)  # purple H&E
    rgb[50:60, 50:60] = (5, 5, 5)  # black artefact
    mask = detect_tissue(rgb)
    assert mask[20:30, 20:30].all()
    assert not mask[50:60, 50:60].any()
    assert not mask[:5].any()
    assert detect_tissue(rgb, "otsu")[25, 25]


def test_small_specks_removed_and_input_untouched():
    rgb = np.full((64, 64, 3), 245, np.uint8)
    rgb[5:7, 5:7] = (180, 100, 170)
    before = rgb.copy()
    assert not detect_tissue(rgb, config=TissueConfig(min_area_px=20, blur_sigma_px=0)).any()
    assert np.array_equal(rgb, before)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((32, 32), np.uint8), "grayscale"),
        (np.zeros((32, 32, 4), np.uint8), "RGBA"),
        (np.zeros((32, 32, 3), np.uint16), "uint8"),
        (np.zeros((32, 32, 3), np.float32), "img_as_ubyte"),
    ],
)
def test_bad_input_is_named(image, match):
    with pytest.raises(InvalidImageError, match=match):
        detect_tissue(image)


def test_config_rejects_impossible_thresholds():
    with pytest.raises(ValueError, match="min_value"):
        TissueConfig(min_value=0.9, max_value=0.8)


def test_hsv_shortcuts_match_skimage():
    from skimage.color import rgb2hsv

    from napari_histo.core._image import hue_between_green_and_blue, saturation_value

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    rgb[:5] = rgb[:5, :, :1]  # grey pixels (all channels equal)
    rgb[5:10, :, 1] = rgb[5:10, :, 0]  # red = green ties
    hsv = rgb2hsv(rgb)
    sat, value = saturation_value(rgb)
    np.testing.assert_allclose(sat, hsv[..., 1], atol=1e-6)
    np.testing.assert_array_equal(value, np.rint(hsv[..., 2] * 255))
    inside = (hsv[..., 0] > 0.2) & (hsv[..., 0] < 0.7)
    exact = (np.abs(hsv[..., 0] - 0.2) > 1e-9) & (np.abs(hsv[..., 0] - 0.7) > 1e-9)  # skimage rounds there
    assert exact.mean() > 0.99
    np.testing.assert_array_equal(hue_between_green_and_blue(rgb)[exact], inside[exact])


def test_cross_dilation_matches_scipy():
    from scipy import ndimage

    from napari_histo.core.tissue import _dilate_cross

    mask = np.random.default_rng(1).random((50, 70)) > 0.97
    np.testing.assert_array_equal(_dilate_cross(mask), ndimage.binary_dilation(mask))
