"""The arithmetic of stain normalisation, batched over images, in numpy.

This is the reference that ``napari_histo.models.stain_torch`` mirrors step by
step; keep the two in sync (the tests compare them).  Conventions:

* optical density ``od = -ln((I + 1) / 256)`` per channel, so white (255) is 0;
* a pixel is *stained* when every channel has ``od >= BETA`` (Macenko's rule);
  for Reinhard a pixel is *tissue* when at least one channel does;
* stain matrices are (2, 3): rows haematoxylin then eosin, unit length in OD;
* normalising keeps the OD off the stain plane (``restain_matrices``), so an
  image normalised to its own stains comes back unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALPHA_PERCENT",
    "BETA",
    "MAX_C_PERCENT",
    "MAX_STAINED_VALUE",
    "RGB_TO_XYZ",
    "SRGB_TO_LINEAR",
    "WHITE_D65",
    "concentrations",
    "lab_to_rgb",
    "macenko_matrices",
    "masked_quantile",
    "od_from_rgb",
    "order_he",
    "plane_normals",
    "restain_matrices",
    "rgb_from_od",
    "rgb_to_lab",
    "stained_mask",
    "tissue_mask_any",
]

BETA = 0.15  # OD below which a channel counts as unstained (Macenko et al. 2009)
ALPHA_PERCENT = 1.0  # robust extremes of the stain angle, in percent
MAX_C_PERCENT = 99.0  # robust maximum of each stain's concentration, in percent
# the largest uint8 value whose OD is >= BETA: (I + 1) / 256 <= exp(-BETA)
MAX_STAINED_VALUE = int(np.floor(256 * np.exp(-BETA) - 1))


def od_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Optical density of uint8 RGB, float64, same shape."""
    return -np.log((rgb.astype(np.float64) + 1.0) / 256.0)


def rgb_from_od(od: np.ndarray) -> np.ndarray:
    """uint8 RGB from optical density (clipped, rounded)."""
    return np.clip(np.rint(256.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8)


def stained_mask(rgb: np.ndarray) -> np.ndarray:
    """True where every channel has OD >= BETA; (..., 3) uint8 -> (...) bool."""
    low = rgb <= MAX_STAINED_VALUE  # channel by channel: numpy reduces a length-3 last axis slowly
    return low[..., 0] & low[..., 1] & low[..., 2]


def tissue_mask_any(rgb: np.ndarray) -> np.ndarray:
    """True where at least one channel has OD >= BETA; (..., 3) uint8 -> (...) bool."""
    low = rgb <= MAX_STAINED_VALUE
    return low[..., 0] | low[..., 1] | low[..., 2]


def masked_quantile(values: np.ndarray, mask: np.ndarray, q: float | tuple[float, ...]) -> np.ndarray:
    """Quantile(s) ``q`` in [0, 1] of ``values`` where ``mask``, along axis 1 ('linear' method).

    ``values`` is (n, m) or (n, m, k) and ``mask`` (n, m); returns (n,) or (n, k),
    with a last axis of ``len(q)`` added when ``q`` is a tuple (one sort for all).
    Rows without a True give NaN.
    """
    if values.ndim == 3:
        return np.stack([masked_quantile(values[..., j], mask, q) for j in range(values.shape[2])], 1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    count = mask.sum(axis=1)
    last = np.maximum(count - 1, 0)
    rows = np.arange(values.shape[0])
    out = []
    for x in np.atleast_1d(q):
        pos = x * last
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        frac = pos - lo
        out.append(np.where(count > 0, ordered[rows, lo] * (1 - frac) + ordered[rows, hi] * frac, np.nan))
    return np.stack(out, -1) if np.ndim(q) else out[0]


def order_he(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """(n, 2, 3) unit stain matrices from two (n, 3) vectors: haematoxylin (more red OD) first."""
    h_first = (v1[:, 0] >= v2[:, 0])[:, None]
    he = np.stack([np.where(h_first, v1, v2), np.where(h_first, v2, v1)], axis=1)
    return he / np.linalg.norm(he, axis=2, keepdims=True)


def macenko_matrices(od: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Macenko stain matrices of a batch.

    Parameters
    ----------
    od : ndarray, float, shape (n, m, 3)
        Optical densities of ``m`` pixels of each of ``n`` images.
    mask : ndarray, bool, shape (n, m)
        Stained pixels (each row needs a few).

    Returns
    -------
    ndarray, float64, shape (n, 2, 3)
    """
    w = mask.astype(np.float64)[:, None, :]  # (n, 1, m): sums over pixels as matrix products
    count = w.sum(axis=2)  # (n, 1)
    mean = (w @ od)[:, 0] / count
    centred = (od - mean[:, None]) * w.transpose(0, 2, 1)
    cov = centred.transpose(0, 2, 1) @ centred / np.maximum(count - 1, 1)[:, :, None]
    _, vecs = np.linalg.eigh(cov)
    e2, e1 = vecs[:, :, 1:2], vecs[:, :, 2:3]  # second-largest and largest, (n, 3, 1)
    phi = np.arctan2((od @ e1)[..., 0], (od @ e2)[..., 0])
    e2, e1 = e2[..., 0], e1[..., 0]
    extremes = masked_quantile(phi, mask, (ALPHA_PERCENT / 100, 1 - ALPHA_PERCENT / 100))
    lo, hi = extremes[:, :1], extremes[:, 1:]
    v_lo = e2 * np.cos(lo) + e1 * np.sin(lo)
    v_hi = e2 * np.cos(hi) + e1 * np.sin(hi)
    # eigenvector signs are arbitrary; OD stain vectors are positive
    v_lo *= np.where(v_lo.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    v_hi *= np.where(v_hi.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    return order_he(v_lo, v_hi)


def concentrations(od: np.ndarray, stain_matrices: np.ndarray) -> np.ndarray:
    """Least-squares stain concentrations: (n, m, 3) OD and (n, 2, 3) matrices -> (n, m, 2)."""
    return od @ np.linalg.pinv(stain_matrices)


def plane_normals(stain_matrices: np.ndarray) -> np.ndarray:
    """Unit normals ``h x e`` of the planes of (n, 2, 3) stain matrices -> (n, 3).

    The H-then-E order fixes the sign, so source and target normals correspond.
    Two parallel stain vectors span no plane: their normal is zero.
    """
    normal = np.cross(stain_matrices[:, 0], stain_matrices[:, 1])
    return normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)


def restain_matrices(source: np.ndarray, scale: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(n, 3, 3) OD maps of normalisation: ``od_out = od @ restain_matrices(...)``.

    ``source`` (n, 2, 3) and ``target`` (2, 3) or (n, 2, 3) stain matrices, ``scale``
    (n, 2) target / source concentrations.  A pixel's OD is its least-squares stain
    concentrations ``c`` times ``source`` plus an off-plane residual ``r`` times the
    source plane's normal (a third dye, pigment, the scanner's tint of the background,
    noise).  It becomes ``c * scale @ target + r * normal(target)``: each source stain
    turns into the scaled target stain and the residual moves, unchanged in size, off
    the target's plane, where the target's stains do not see it.  Dropping ``r``
    instead made normalising an image to its own stains lossy (CMU-1 went blue).
    """
    target = np.broadcast_to(target, source.shape)
    normals = plane_normals(source)[:, :, None] * plane_normals(target)[:, None]
    return np.linalg.pinv(source) @ (scale[:, :, None] * target) + normals


# ---------------------------------------------------------------- CIELAB (sRGB, D65)
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_C = np.arange(256) / 255.0
#: linear-light value of each uint8 sRGB level
SRGB_TO_LINEAR = np.where(_C > 0.04045, ((_C + 0.055) / 1.055) ** 2.4, _C / 12.92)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of uint8 sRGB (same formulas as ``skimage.color.rgb2lab``), float64 (..., 3)."""
    lin = SRGB_TO_LINEAR[rgb]  # a table lookup: uint8 has 256 values
    xyz = lin @ RGB_TO_XYZ.T / WHITE_D65
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """uint8 sRGB from CIELAB (..., 3), clipped to the gamut."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * WHITE_D65
    lin = np.clip(xyz @ np.linalg.inv(RGB_TO_XYZ).T, 0.0, 1.0)
    c = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    return np.clip(np.rint(c * 255.0), 0, 255).astype(np.uint8)
