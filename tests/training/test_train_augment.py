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
