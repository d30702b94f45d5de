"""SimCLR pre-training (Chen et al. 2020): two augmented views, NT-Xent over 2N embeddings.

The backbone's pooled features go through a small projection head that is
thrown away afterwards; the backbone keeps what it learnt and fine-tuning
starts from it (recipe A: ``ssl.enabled: true``).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch
from training.batches import epoch_order, iterate_batches
from training.config import AugmentConfig, ConfigError

__all__ = ["SIMCLR_AUGMENT", "nt_xent", "pooled_features", "pretrain_simclr"]

#: the two views differ in geometry, scale, stain and intensity
SIMCLR_AUGMENT = AugmentConfig(
    flips=True, rot90=True, rotate_deg=30, zoom=0.2, shift=0.1, brightness=0.3, contrast=0.3, hed_sigma=0.05
)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalised-temperature cross-entropy of 2N embeddings: each view's positive is its pair."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def pooled_features(network: Any, x: torch.Tensor) -> torch.Tensor:
    """(n, d) pooled backbone features of a timm classifier."""
    if not hasattr(network, "forward_features"):
        raise ConfigError("SimCLR and clustering need a timm classifier backbone, not a segmentation network")
    return network.forward_head(network.forward_features(x), pre_logits=True)


def pretrain_simclr(network: Any, fold: Any, ctx: Any, run_dir: Path | None = None) -> list[float]:
    """Train ``network``'s backbone with NT-Xent on ``fold`` (labels unused); returns loss per epoch."""
    cfg = ctx.config.ssl
    width = network.num_features
    projector = torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, cfg.projection_dim)
    ).to(ctx.device)
    params = [*network.parameters(), *projector.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    aug = replace(ctx.config, augment=SIMCLR_AUGMENT) if cfg.strong_augment else ctx.config
    view_ctx = replace(ctx, config=aug)
    losses = []
    for epoch in range(cfg.epochs):
        network.train()
        order = epoch_order(len(fold.samples), ctx.config.train.seed, 10_000 + epoch, shuffle=True)
        total, count = 0.0, 0
        for images, _, _ in iterate_batches(
            fold.samples, order, cfg.batch_size, pixels=fold.pixels, size=ctx.input_size, drop_last=True
        ):
            x = _views(images, view_ctx)
            z = projector(pooled_features(network, x))
            loss = nt_xent(*z.chunk(2), temperature=cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(images), count + len(images)
        losses.append(total / max(count, 1))
    if run_dir is not None and ctx.rank == 0:
        with open(run_dir / "ssl_history.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([("epoch", "nt_xent"), *enumerate(np.round(losses, 5).tolist())])
    return losses


def _views(images: torch.Tensor, ctx: Any) -> torch.Tensor:
    x = images.to(ctx.device).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[-1] != ctx.input_size:
        x = F.interpolate(x, size=(ctx.input_size,) * 2, mode="bilinear", antialias=True)
    two = torch.cat([augment_batch(x, ctx.config.augment)[0], augment_batch(x, ctx.config.augment)[0]])
    return (two - ctx.mean) / ctx.std
