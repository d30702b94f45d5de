"""Grad-CAM (Selvaraju et al. 2017) for timm patch classifiers.

The class score's gradient with respect to the last convolutional feature map,
averaged over space, weights the map's channels; the ReLU of the weighted sum
shows where the evidence for the class lies.  For a network that ends in
global average pooling and one linear layer this equals CAM (Zhou et al. 2016).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo.models.spec import ModelSpec

__all__ = ["grad_cam"]


def grad_cam(
    model: Any,
    tiles: np.ndarray,
    spec: ModelSpec,
    target_class: int | None = None,
    *,
    upsample: bool = True,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-activation maps of a batch of tiles.

    Parameters
    ----------
    model : timm classifier (has ``forward_features`` and ``forward_head``)
    tiles : ndarray, uint8, shape (n, rows, cols, 3)
        Patches as read from the slide at the model's µm/px.
    spec : ModelSpec
        For the input size and normalisation.
    target_class : int, optional
        Class to explain; default: each tile's predicted class.
    upsample : bool
        Resize maps to the tile size (bilinear); else the feature-map size.
    normalize : bool
        Scale each map to [0, 1] by its maximum.

    Returns
    -------
    maps : ndarray, float32, shape (n, rows, cols) (or the feature-map size)
    classes : ndarray, int64, shape (n,)  the class each map explains
    """
    import torch
    import torch.nn.functional as F

    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise TypeError("grad_cam needs a timm classifier (forward_features / forward_head)")
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(tiles)).to(device).permute(0, 3, 1, 2).float()
    if spec.input_size != x.shape[-1]:
        x = F.interpolate(x, size=(spec.input_size,) * 2, mode="bilinear", align_corners=False)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255
    x = (x - mean) / std
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            features = model.forward_features(x)
            if features.ndim != 4:
                raise TypeError(
                    f"{spec.architecture} has no spatial feature map (got shape {tuple(features.shape)})"
                )
            logits = model.forward_head(features)
            classes = (
                logits.argmax(1)
                if target_class is None
                else torch.full_like(logits[:, 0], target_class).long()
            )
            score = logits.gather(1, classes[:, None]).sum()
            (grads,) = torch.autograd.grad(score, features)
    finally:
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features).sum(1, keepdim=True)).detach()
    if upsample:
        cam = F.interpolate(cam, size=tiles.shape[1:3], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    if normalize:
        cam = cam / cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return cam.float().cpu().numpy(), classes.cpu().numpy()
