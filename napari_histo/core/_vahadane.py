"""Vahadane's sparse stain separation without the SPAMS dependency.

Vahadane et al. (2016) factorise the optical densities ``V`` (pixels x 3)
into non-negative, sparse concentrations ``W`` (pixels x 2) and a
non-negative stain matrix ``H`` (2 x 3, unit rows)::

    min ||V - W H||^2 + lambda * |W|_1   subject to W >= 0, H >= 0, |H_k| = 1

solved here by alternating projected (proximal) gradient steps, started from
the Macenko estimate so that it converges in a few dozen iterations.
"""

from __future__ import annotations

import numpy as np

from napari_histo.core._stain_math import macenko_matrices, order_he

__all__ = ["vahadane_matrix"]

LAMBDA = 0.1  # sparsity weight, as in staintools and the SPAMS-based reference code
MAX_PIXELS = 20_000  # stained pixels used for the fit (evenly spaced sample)
_OUTER_STEPS = 60
_INNER_STEPS = 10


def vahadane_matrix(od: np.ndarray) -> np.ndarray:
    """Stain matrix of stained-pixel optical densities.

    Parameters
    ----------
    od : ndarray, float, shape (m, 3)
        Optical densities of stained pixels only.

    Returns
    -------
    ndarray, float64, shape (2, 3)
        Rows haematoxylin then eosin, unit length, non-negative.
    """
    if od.shape[0] > MAX_PIXELS:
        od = od[np.linspace(0, od.shape[0] - 1, MAX_PIXELS).round().astype(np.int64)]
    od = od.astype(np.float64)
    h = np.clip(macenko_matrices(od[None], np.ones((1, od.shape[0]), bool))[0], 1e-6, None)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    w = np.clip(od @ np.linalg.pinv(h), 0, None)
    for _ in range(_OUTER_STEPS):
        w = _sparse_codes(od, h, w)
        h = _dictionary(od, w, h)
    return order_he(h[0][None], h[1][None])[0]


def _sparse_codes(od: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A few ISTA steps of the non-negative lasso for W with H fixed."""
    gram = h @ h.T
    step = 1.0 / max(np.linalg.eigvalsh(gram).max(), 1e-12)
    target = od @ h.T
    for _ in range(_INNER_STEPS):
        w = np.maximum(w - step * (w @ gram - target + LAMBDA / 2), 0.0)
    return w


def _dictionary(od: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Non-negative least-squares update of H with W fixed, rows rescaled to unit length."""
    gram = w.T @ w
    if np.linalg.matrix_rank(gram) < 2:
        return h  # one stain vanished from the codes: keep the previous estimate
    new = np.clip(np.linalg.solve(gram, w.T @ od), 0.0, None)
    norms = np.linalg.norm(new, axis=1, keepdims=True)
    if np.any(norms < 1e-9):
        return h
    return new / norms
