"""Small H&E-like images with known stain vectors, drawn by Beer-Lambert (test helper)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RUIFROK_HE = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
OTHER_HE = np.array([[0.50, 0.80, 0.33], [0.20, 0.90, 0.40]])


def render_he(stains: np.ndarray, shape=(96, 96), n=1, seed=0, background=0.3) -> np.ndarray:
    """uint8 (n, rows, cols, 3) tiles: haematoxylin blobs on eosin, some background."""
    stains = stains / np.linalg.norm(stains, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = ndimage.gaussian_filter(rng.random(shape), 2.0)
        h = np.clip((h - h.mean()) / h.std(), 0, None) * 0.6
        e = 0.5 + 0.3 * ndimage.gaussian_filter(rng.random(shape), 3.0)
        tissue = ndimage.gaussian_filter(rng.random(shape), 8.0)
        tissue = tissue > np.quantile(tissue, background)
        od = (h * tissue)[..., None] * stains[0] + (e * tissue)[..., None] * stains[1]
        rgb = 256 * np.exp(-od) - 1 + rng.normal(0, 1.0, (*shape, 3))
        out.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return np.stack(out)
