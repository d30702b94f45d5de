"""Losses: cross-entropy with class weights, BCE on two logits, Dice and Dice + CE for segmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dice_loss", "make_loss"]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over classes (foreground only for two classes); logits (n, k, r, c), target (n, r, c)."""
    k = logits.shape[1]
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target.long(), k).permute(0, 3, 1, 2).to(probs)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    dice = (2 * inter + eps) / (probs.sum(dims) + onehot.sum(dims) + eps)
    return 1 - (dice[1:] if k == 2 else dice).mean()


def make_loss(name: str, class_weights: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
    """``loss(logits, target)`` for ``ce``, ``bce``, ``dice`` or ``dice_ce``.

    ``bce`` is the literature's "one sigmoid output + BCE" on a two-logit head:
    sigmoid(z1 - z0) equals softmax(z)[1], so the saved two-class model is
    read like any other while training optimises binary cross-entropy.
    """
    if name == "ce":
        return lambda logits, y: F.cross_entropy(logits.float(), y, weight=class_weights)
    if name == "bce":
        pos_weight = None if class_weights is None else class_weights[1] / class_weights[0]

        def bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            z = (logits[:, 1] - logits[:, 0]).float()
            return F.binary_cross_entropy_with_logits(z, y.float(), pos_weight=pos_weight)

        return bce
    if name == "dice":
        return dice_loss
    if name == "dice_ce":
        return lambda logits, y: (
            dice_loss(logits, y) + F.cross_entropy(logits.float(), y.long(), weight=class_weights)
        )
    raise ValueError(f"unknown loss {name!r}; choose ce, bce, dice or dice_ce")
