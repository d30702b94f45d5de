"""Batch augmentation: shapes, ranges, masks follow the pixels, HED round trip."""

from __future__ import annotations

import numpy as np
import torch

from training.augment import augment_batch, flip_rot90, hed_to_rgb, random_affine, rgb_to_hed
from training.config import AugmentConfig


def _batch(n: int = 6, px: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, px, px, generator=g) * 0.8 + 0.1


def test_masks_move_with_the_pixels_under_flips_and_rotations() -> None:
    images = _batch()
    masks = (images[:, 0] > 0.5).to(torch.uint8)
    out, out_masks = flip_rot90(images, masks, generator=torch.Generator().manual_seed(1))
    assert torch.equal((out[:, 0] > 0.5).to(torch.uint8), out_masks)
    assert not torch.equal(out, images)


def test_every_augmentation_keeps_shape_and_range() -> None:
    config = AugmentConfig(
        rotate_deg=180, shift=0.1, zoom=0.1, shear_deg=10, brightness=0.2, contrast=0.2, hed_sigma=0.05
    )
    images = _batch()
    out, masks = augment_batch(images, config, generator=torch.Generator().manual_seed(2))
    assert out.shape == images.shape and masks is None
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.allclose(out, images)


def test_identity_affine_changes_nothing() -> None:
    images = _batch()
    out, _ = random_affine(images, None, 0, 0, 0, 0)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_hed_round_trip_and_skimage_agreement() -> None:
    from skimage.color import rgb2hed

    images = _batch()
    torch.testing.assert_close(hed_to_rgb(rgb_to_hed(images)), images, atol=1e-4, rtol=0)
    hed = rgb_to_hed(images)[0].permute(1, 2, 0).numpy()
    ref = rgb2hed(images[0].permute(1, 2, 0).numpy().astype(np.float64))
    # skimage divides the optical density by -log(1e-6) and clips at 0; same stain matrix otherwise
    np.testing.assert_allclose(np.maximum(hed / -np.log(1e-6), 0), ref, atol=1e-5)


def _stained(stains: np.ndarray, n: int, seed: int, px: int = 48) -> np.ndarray:
    """uint8 (n, px, px, 3) H&E-like patches rendered by Beer-Lambert from two stain vectors."""
    stains = stains / np.linalg.norm(stains, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    conc = rng.uniform(0.0, 1.0, (n, px, px, 2)) * np.array([1.2, 0.6])
    conc[:, : px // 4] = 0  # a strip of background
    od = conc @ stains
    return np.clip(255 * np.exp(-od), 0, 255).astype(np.uint8)


def test_vahadane_stain_normalisation_moves_colours_toward_the_reference(tiny) -> None:  # type: ignore[no-untyped-def]
    from napari_histo.core.stain import fit_stain
    from training.samples import Samples
    from training.stain import fit_stain_target, normalize_samples

    assert tiny("augment.stain_normalize=vahadane").augment.stain_normalize == "vahadane"

    reference = _stained(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]), 4, seed=0)
    source = _stained(np.array([[0.50, 0.80, 0.33], [0.20, 0.90, 0.40]]), 3, seed=1)
    labels = np.zeros(len(reference), dtype=np.int64)
    normalizer = fit_stain_target(Samples(labels, ("a",), images=reference), "vahadane")
    assert normalizer.target is not None and normalizer.target.method.value == "vahadane"
    out, skipped = normalize_samples(Samples(np.zeros(3, dtype=np.int64), ("a",), images=source), normalizer)
    assert out.images is not None and skipped == 0
    assert out.images.shape == source.shape and out.images.dtype == np.uint8
    # the output's stain vectors, re-estimated, are the reference's rather than the source's
    target = normalizer.target.stain_matrix
    before = np.abs(fit_stain(source, "vahadane").stain_matrix - target).max()
    after = np.abs(fit_stain(out.images, "vahadane").stain_matrix - target).max()
    assert after < 0.05 < before, (before, after)
