"""Synthetic H&E-like stand-ins for data that is not available offline (BACH, IDC, TIGER, DLBCL).

Clearly synthetic: patches are rendered with the Beer-Lambert stain model
(haematoxylin nuclei as blurred discs on an eosin background).  Each class
differs in nucleus density and size, so a network can learn them but not
from one pixel; ``synthetic_stain`` renders the *same* tissue with two stain
vector sets (for the clustering check); ``synthetic_segmentation`` draws
"stroma" regions (sparse elongated nuclei, more eosin) in "tumour" (dense
nuclei) with the stroma mask as target.

A stand-in for a data set in :data:`STAND_IN_PROPORTIONS` (recognised by its
class names) copies that set's class imbalance, so balancing (e.g.
``data.balance: undersample``) has something to do: ``synthetic_per_class``
is then the count of the rarest class and the others are scaled up.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_histo.core.stain import RUIFROK_RGB_FROM_HED
from training.config import DataConfig
from training.samples import Samples

__all__ = ["STAND_IN_PROPORTIONS", "render_patch", "stand_in_counts", "synthetic_samples"]

_STAINS = {
    "standard": (RUIFROK_RGB_FROM_HED[0], RUIFROK_RGB_FROM_HED[1]),
    "variant": (np.array([0.45, 0.85, 0.27]), np.array([0.03, 0.80, 0.60])),
}
#: class counts of the real data sets the stand-ins imitate, keyed by the recipe's class names
STAND_IN_PROPORTIONS: dict[tuple[str, ...], tuple[int, ...]] = {
    # IDC (Janowczyk & Madabhushi; recipe E): 198,738 IDC-negative and 78,786 IDC-positive patches
    ("negative", "idc"): (198_738, 78_786),
}
_DEFAULT_NAMES = {
    "synthetic": ("normal", "benign", "in_situ", "invasive"),
    "synthetic_stain": ("standard", "variant"),
}


def render_patch(
    rng: np.random.Generator,
    px: int,
    nuclei: int,
    radius: float,
    *,
    eosin: float = 0.35,
    stain: str = "standard",
    elongation: float = 1.0,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """One uint8 (px, px, 3) patch: ``nuclei`` blurred discs of ``radius`` px on eosin background.

    ``region`` (bool (px, px)) restricts the nuclei to where it is True.
    """
    h_vec, e_vec = (v / np.linalg.norm(v) for v in _STAINS[stain])
    centres = rng.uniform(0, px, size=(nuclei * 3, 2))
    if region is not None:
        inside = region[centres[:, 0].astype(int).clip(0, px - 1), centres[:, 1].astype(int).clip(0, px - 1)]
        centres = centres[inside]
    centres = centres[:nuclei]
    h = np.zeros((px, px))
    reach = int(np.ceil(radius * max(elongation, 1.0))) + 1
    for r, c in centres:
        r0, c0 = max(int(r) - reach, 0), max(int(c) - reach, 0)
        rows, cols = np.mgrid[r0 : min(int(r) + reach + 1, px), c0 : min(int(c) + reach + 1, px)]
        angle = rng.uniform(0, np.pi)
        dr, dc = rows - r, cols - c
        u = (dr * np.cos(angle) + dc * np.sin(angle)) / elongation
        v = -dr * np.sin(angle) + dc * np.cos(angle)
        window = h[r0 : r0 + rows.shape[0], c0 : c0 + rows.shape[1]]
        np.maximum(window, (u**2 + v**2 <= radius**2) * rng.uniform(0.8, 1.2), out=window)
    h = ndimage.gaussian_filter(h, 0.8) * 1.1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (px, px)), 2.0)
    e = np.clip(eosin + 0.25 * texture, 0.02, None)
    od = h[..., None] * h_vec + e[..., None] * e_vec + rng.normal(0, 0.02, (px, px, 3))
    return (255 * np.exp(-np.clip(od, 0, None))).round().clip(0, 255).astype(np.uint8)


def stand_in_counts(names: tuple[str, ...], per_class: int) -> tuple[int, ...]:
    """Patches per class: ``per_class`` each, or the real set's proportions with ``per_class`` the rarest."""
    real = STAND_IN_PROPORTIONS.get(tuple(n.lower() for n in names))
    if real is None:
        return (per_class,) * len(names)
    return tuple(round(per_class * c / min(real)) for c in real)


def synthetic_samples(config: DataConfig, seed: int = 0) -> Samples:
    """Stand-in patches of ``config.synthetic_px`` pixels; counts per class from :func:`stand_in_counts`."""
    if config.source == "synthetic_segmentation":
        return _segmentation_samples(config, seed)
    names = tuple(config.class_names) or _DEFAULT_NAMES[config.source]
    rng = np.random.default_rng(seed)
    px = config.synthetic_px
    counts = stand_in_counts(names, config.synthetic_per_class) if config.source == "synthetic" else None
    density = (px / 64) ** 2
    images, labels = [], []
    for label in range(len(names)):
        for _ in range(counts[label] if counts else config.synthetic_per_class):
            if config.source == "synthetic_stain":
                kwargs = {
                    "nuclei": int(rng.integers(8, 30) * density),
                    "radius": rng.uniform(2, 4) * px / 64,
                    "stain": names[label] if names[label] in _STAINS else list(_STAINS)[label % 2],
                }
            else:
                kwargs = {
                    "nuclei": int((10 + 10 * label) * density * rng.uniform(0.8, 1.2)),
                    "radius": (2.0 + 0.7 * label) * px / 64 * rng.uniform(0.9, 1.1),
                }
            images.append(render_patch(rng, px, **kwargs))
            labels.append(label)
    labels_arr = np.asarray(labels, dtype=np.int64)
    groups = np.array([f"synthetic-slide-{i % 6}" for i in range(len(labels))])
    return Samples(
        labels=labels_arr,
        class_names=names,
        images=np.stack(images),
        groups=groups,
        split=np.full(len(labels), ""),
    )


def _segmentation_samples(config: DataConfig, seed: int) -> Samples:
    """Tumour (dense round nuclei) with stroma regions (sparse elongated nuclei); mask 1 = stroma."""
    names = tuple(config.class_names) or ("other", "stroma")
    rng = np.random.default_rng(seed)
    px, n = config.synthetic_px, config.synthetic_per_class * len(names)
    images, masks = [], []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.normal(0, 1, (px, px)), px / 8)
        stroma = field > np.quantile(field, rng.uniform(0.3, 0.7))
        scale = (px / 64) ** 2
        tumour = render_patch(rng, px, int(40 * scale), 2.5 * px / 64, region=~stroma)
        fibres = render_patch(
            rng, px, int(8 * scale), 1.5 * px / 64, eosin=0.6, elongation=3.0, region=stroma
        )
        images.append(np.where(stroma[..., None], fibres, tumour))
        masks.append(stroma.astype(np.uint8))
    masks_arr = np.stack(masks)
    labels = (masks_arr.reshape(n, -1).mean(1) > 0.5).astype(np.int64)
    return Samples(
        labels=labels,
        class_names=names,
        images=np.stack(images),
        masks=masks_arr,
        groups=np.array([f"synthetic-slide-{i % 6}" for i in range(n)]),
        split=np.full(n, ""),
    )
