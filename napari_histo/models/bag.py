"""One bag of tile embeddings through a slide-level (MIL) network: numpy in, numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["forward_bag"]


def forward_bag(network: Any, features: np.ndarray, device: str | Any = "cpu") -> dict[str, np.ndarray]:
    """``network(features)`` (see :mod:`napari_histo.models.mil`) as float32 arrays.

    Returns ``probabilities`` (C,) (softmax of the slide logits), ``logits`` (C,), ``attention`` (n,)
    and, when the network gives them, ``tile_scores`` (n, C) and ``tile_probabilities`` (their softmax).
    """
    import torch

    from napari_histo.models.loading import resolve_device

    target = resolve_device(device)
    x = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(target)
    with torch.inference_mode():
        out = network.eval().to(target)(x)
    logits = out["logits"].float().reshape(-1)
    result = {
        "logits": logits.cpu().numpy(),
        "probabilities": torch.softmax(logits, 0).cpu().numpy(),
        "attention": out["attention"].float().reshape(-1).cpu().numpy(),
    }
    if out.get("tile_scores") is not None:
        scores = out["tile_scores"].float()
        result["tile_scores"] = scores.cpu().numpy()
        result["tile_probabilities"] = torch.softmax(scores, -1).cpu().numpy()
    return result
