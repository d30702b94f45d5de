"""Optional stain normalisation of a training set, fitted once on training patches.

The target is fitted on a mosaic of up to 64 training patches and applied to
every split; its parameters go into ``model.json`` (``stain``) so inference
normalises slides to the same target.  Patches with too little stain to
estimate their own (background) are left as they are and counted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_histo.core.stain import StainNormalizer, normalize_stain
from napari_histo.errors import NoTissueError
from training.samples import Samples

__all__ = ["fit_stain_target", "normalize_samples"]

_MOSAIC = 8


def fit_stain_target(train: Samples, method: str, seed: int = 0) -> StainNormalizer:
    """A normaliser whose target is fitted on a mosaic of random training patches."""
    images = train.with_pixels().images
    assert images is not None
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(images))[: _MOSAIC * _MOSAIC]
    n = int(np.sqrt(len(pick)))
    tiles = images[pick[: n * n]]
    rows = [np.concatenate(list(tiles[r * n : (r + 1) * n]), axis=1) for r in range(n)]
    return StainNormalizer(method).fit(np.concatenate(rows, axis=0))


def normalize_samples(samples: Samples, normalizer: StainNormalizer) -> tuple[Samples, int]:
    """Normalised copies of the patches, and how many were left unchanged (too little stain)."""
    images = samples.with_pixels().images
    assert images is not None
    assert normalizer.target is not None
    out = images.copy()
    skipped = 0
    for i, pixels in enumerate(images):
        try:
            out[i] = normalize_stain(pixels[None], normalizer.target)[0]
        except NoTissueError:
            skipped += 1
    return replace(samples, images=out), skipped
