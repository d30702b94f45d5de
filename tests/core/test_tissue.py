import csv
from dataclasses import replace

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


def _tissue_with_cleft(mpp: float, seed: int = 0):
    """H&E-like tissue disc (1 mm) at ``mpp`` µm/px around a large white cleft, with small holes.

    Returns the RGB image and boolean masks of the cleft, the small holes and the tissue
    (ring without holes), all drawn in µm so the same slide is rendered at each resolution.
    """
    rng = np.random.default_rng(seed)
    n = int(round(1200 / mpp))
    y, x = np.mgrid[0:n, 0:n] * mpp + mpp / 2 - 600  # µm from the centre
    disc = np.hypot(y, x) < 500
    # an irregular cleft of ~15,500 µm² (as on CMU-1), off-centre, ragged edge
    angle = np.arctan2(y + 150, x - 120)
    cleft = np.hypot((x - 120) / 90, (y + 150) / 55) < 1 + 0.08 * np.sin(5 * angle)
    # nuclei-sized and small-lumen holes, 80-1,300 µm² (r = 5-20 µm), all inside tissue
    small = np.zeros_like(disc)
    for cy, cx, r in [(250, -250, 5), (200, 150, 8), (-300, -200, 10), (100, -350, 12), (300, 250, 15),
                      (-100, 300, 20), (50, 0, 10), (-350, 100, 8)]:  # fmt: skip
        small |= np.hypot(y - cy, x - cx) < r
    tissue = disc & ~cleft & ~small
    # pink stroma with purple nuclei, noisy; glass (and cleft, small holes) near-white
    rgb = np.empty((n, n, 3), float)
    rgb[:] = (238, 236, 240)
    rgb[tissue] = (225, 150, 195)
    nuclei = tissue & (rng.random((n, n)) < 0.15)
    rgb[nuclei] = (130, 70, 160)
    rgb += rng.normal(0, 4, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), cleft, small, tissue


def _eroded(mask: np.ndarray, um: float, mpp: float) -> np.ndarray:
    """``mask`` shrunk by ``um`` µm: its core, away from edges that the blur and closing soften."""
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=max(1, int(round(um / mpp))))


@pytest.mark.parametrize("mpp", [2.0, 4.0, 8.0])
@pytest.mark.parametrize("method", ["hsv", "otsu"])
def test_white_cleft_inside_tissue_is_not_tissue(method, mpp):
    """Tracker bug: a large white cleft enclosed by tissue was filled as a hole (it is ~240 px at 8 µm/px,
    under the 256-px hole limit).  Holes are now limited in µm², so the cleft stays background at every
    resolution while nuclei-sized and small-lumen holes are still filled."""
    rgb, cleft, small, tissue = _tissue_with_cleft(mpp)
    assert 14_000 < cleft.sum() * mpp**2 < 17_000  # the cleft as drawn: ~15,500 µm²
    mask = detect_tissue(rgb, method, mpp=mpp)
    core = _eroded(cleft, 12, mpp)
    assert core.sum() >= 40
    assert mask[core].mean() < 0.05, "the cleft is counted as tissue"
    assert mask[cleft].mean() < 0.5
    assert mask[small].all(), "small holes inside tissue must be filled"
    assert mask[_eroded(tissue, 10, mpp)].mean() > 0.995
    assert not mask[_eroded(~(tissue | cleft | small), 20, mpp)].any()  # glass


def test_hole_limit_is_in_pixels_without_mpp_and_in_um2_with_it():
    rgb = np.full((100, 100, 3), 240, np.uint8)
    rgb[10:90, 10:90] = (200, 120, 180)
    rgb[40:50, 40:50] = 240  # a 100 px hole
    fill = TissueConfig(blur_sigma_px=0, closing_radius_px=0)
    assert detect_tissue(rgb, config=fill)[45, 45]  # no µm/px: 256 px limit, as before
    assert not detect_tissue(rgb, config=replace(fill, max_hole_px=50))[45, 45]
    assert not detect_tissue(rgb, config=fill, mpp=8.0)[45, 45]  # 6,400 µm² > 2,000 µm²
    assert detect_tissue(rgb, config=fill, mpp=2.0)[45, 45]  # 400 µm² < 2,000 µm²
    assert not detect_tissue(rgb, config=replace(fill, max_hole_um2=0), mpp=2.0)[45, 45]
    for bad in (0, -1.0, float("nan"), float("inf"), "eight"):
        with pytest.raises(ValueError, match="micrometres per pixel"):
            detect_tissue(rgb, mpp=bad)
    with pytest.raises(ValueError, match="max_hole_um2"):
        TissueConfig(max_hole_um2=-1)


def test_fluorescence_detector_finds_a_section_of_scattered_nuclei_on_a_dark_background():
    """DAPI-like: nuclei (bright blue dots) scattered sparsely over a disc; background black with noise."""
    rng = np.random.default_rng(3)
    rgb = np.zeros((200, 200, 3), np.uint8)
    rgb[..., 2] = rng.integers(0, 3, (200, 200))  # camera noise
    rr, cc = np.mgrid[:200, :200]
    section = (rr - 100) ** 2 + (cc - 100) ** 2 < 70**2
    nuclei = section & (rng.random((200, 200)) < 0.12)  # sparse stroma: most section pixels stay dark
    rgb[nuclei, 2] = rng.integers(120, 255, int(nuclei.sum()))
    assert detect_tissue(rgb, "hsv").mean() < 0.05  # the H&E detector sees (almost) nothing
    mask = detect_tissue(rgb, "fluorescence")
    assert (mask & section).sum() / section.sum() > 0.9
    assert (mask & ~section).sum() / (~section).sum() < 0.1
    assert not detect_tissue(np.zeros((64, 64, 3), np.uint8), "fluorescence").any()  # black: no tissue


@pytest.mark.parametrize("method", ["hsv", "otsu"])
def test_strip_by_strip_detection_equals_whole_image_detection(method, monkeypatch):
    """The mask is thresholded in strips of rows (bounded memory on a whole-slide view): same result."""
    import napari_histo.core.tissue as tissue
    from napari_histo.io import open_slide

    with open_slide(shared_file("wsi", "CMU-1-Small-Region.svs")) as slide:
        view = slide.read_region((0, 0), 0, slide.dimensions)[::4, ::4, :3].copy()
    view[100:110, 50:400] = (20, 160, 40)  # a green pen stroke across strip borders
    config = TissueConfig(blur_sigma_px=1.5)
    monkeypatch.setattr(tissue, "_STRIP_ROWS", 10**6)
    whole = detect_tissue(view, method, config, mpp=2.0)
    monkeypatch.setattr(tissue, "_STRIP_ROWS", 37)  # strips far smaller than the blur's reach allows
    strips = detect_tissue(view, method, config, mpp=2.0)
    assert 0.2 < whole.mean() < 0.95 and not whole[100:110, 60:390].any()
    np.testing.assert_array_equal(strips, whole)
