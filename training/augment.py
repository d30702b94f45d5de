"""Batch augmentation in torch: runs wherever the batch is (GPU when there is one).

All functions take float (n, 3, rows, cols) RGB in [0, 1] and return a new
tensor of the same shape; masks (n, rows, cols) follow the geometric ones.
Geometry (free rotation, shift, zoom, shear) is one affine warp per sample
with reflection padding, so tissue never meets black corners.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from napari_histo.core.stain import RUIFROK_RGB_FROM_HED
from training.config import AugmentConfig

__all__ = ["augment_batch", "flip_rot90", "hed_jitter", "hed_to_rgb", "random_affine", "rgb_to_hed"]

# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB), as in skimage.color.rgb2hed
_RGB_FROM_HED = torch.tensor(RUIFROK_RGB_FROM_HED, dtype=torch.float32)
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)
_EPS = 1e-6


def augment_batch(
    images: torch.Tensor, config: AugmentConfig, masks: torch.Tensor | None = None, generator: Any = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply every augmentation ``config`` switches on, each with its own random draw per sample."""
    if config.flips or config.rot90:
        images, masks = flip_rot90(images, masks, flips=config.flips, rot90=config.rot90, generator=generator)
    if config.rotate_deg or config.shift or config.zoom or config.shear_deg:
        images, masks = random_affine(
            images, masks, config.rotate_deg, config.shift, config.zoom, config.shear_deg, generator
        )
    if config.hed_sigma:
        images = hed_jitter(images, config.hed_sigma, generator)
    if config.brightness or config.contrast:
        images = brightness_contrast(images, config.brightness, config.contrast, generator)
    return images, masks


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: Any) -> torch.Tensor:
    return torch.rand(n, generator=generator, device="cpu").to(like.device, like.dtype) * (high - low) + low


def flip_rot90(
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    flips: bool = True,
    rot90: bool = True,
    generator: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal/vertical flips and multiples of 90° (the 8 dihedral symmetries)."""
    n = images.shape[0]
    codes = torch.randint(0, 8, (n,), generator=generator)
    if not flips:
        codes = codes % 4
    if not rot90:
        codes = codes - codes % 4
    out, out_masks = images.clone(), None if masks is None else masks.clone()
    for code in codes.unique().tolist():
        index = (codes == code).nonzero().flatten().to(images.device)
        out[index] = _dihedral(images[index], code)
        if masks is not None:
            out_masks[index] = _dihedral(masks[index].unsqueeze(1), code).squeeze(1)  # type: ignore[index]
    return out, out_masks


def _dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    if code >= 4:
        x = x.flip(-1)
    return torch.rot90(x, code % 4, dims=(-2, -1))


def random_affine(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    rotate_deg: float,
    shift: float,
    zoom: float,
    shear_deg: float,
    generator: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotation within ±``rotate_deg``, shift within ±``shift`` of the edge, zoom 1±``zoom``, shear."""
    n = images.shape[0]
    angle = _uniform(n, -rotate_deg, rotate_deg, images, generator) * math.pi / 180
    shear = _uniform(n, -shear_deg, shear_deg, images, generator) * math.pi / 180
    scale = 1.0 / _uniform(n, 1 - zoom, 1 + zoom, images, generator)
    tx, ty = (_uniform(n, -2 * shift, 2 * shift, images, generator) for _ in range(2))  # grid spans 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = cos * scale
    theta[:, 0, 1] = (-sin + torch.tan(shear) * cos) * scale
    theta[:, 1, 0] = sin * scale
    theta[:, 1, 1] = cos * scale
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if masks is not None:
        m = F.grid_sample(masks.unsqueeze(1).float(), grid, mode="nearest", padding_mode="reflection",
                          align_corners=False)  # fmt: skip
        masks = m.squeeze(1).to(masks.dtype)
    return warped, masks


def rgb_to_hed(images: torch.Tensor) -> torch.Tensor:
    """Optical densities of haematoxylin, eosin and DAB, (n, 3, rows, cols)."""
    od = -torch.log(images.clamp_min(_EPS))
    return torch.einsum("nchw,cd->ndhw", od, _HED_FROM_RGB.to(images))


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    od = torch.einsum("ndhw,dc->nchw", hed, _RGB_FROM_HED.to(hed))
    return torch.exp(-od).clamp(0, 1)


def hed_jitter(images: torch.Tensor, sigma: float, generator: Any = None) -> torch.Tensor:
    """Scale and shift each stain's density by ``1 + N(0, sigma)`` / ``N(0, sigma)`` (Tellez et al.)."""
    n = images.shape[0]
    alpha = 1 + torch.randn(n, 3, 1, 1, generator=generator).to(images) * sigma
    beta = torch.randn(n, 3, 1, 1, generator=generator).to(images) * sigma * 0.1
    return hed_to_rgb(rgb_to_hed(images) * alpha + beta)


def brightness_contrast(
    images: torch.Tensor, brightness: float, contrast: float, generator: Any = None
) -> torch.Tensor:
    """Multiply by 1±``brightness``; stretch around each image's mean by 1±``contrast``."""
    n = images.shape[0]
    gain = _uniform(n, 1 - brightness, 1 + brightness, images, generator).view(n, 1, 1, 1)
    stretch = _uniform(n, 1 - contrast, 1 + contrast, images, generator).view(n, 1, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * stretch + mean * gain).clamp(0, 1)
