"""Batches of uint8 patches from in-memory arrays (no per-sample Python) or from files.

In-memory sets index one big uint8 tensor per batch (pinned on CUDA hosts),
so the training loop costs about what a bare ``model(x)`` loop costs; sets too
big for memory go through a ``DataLoader`` that decodes files in workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from training.samples import DataError, Samples, decode_image

__all__ = ["Batch", "PatchDataset", "iterate_batches"]

Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class PatchDataset(torch.utils.data.Dataset):
    """``(uint8 (rows, cols, 3), label)`` per patch, decoding files on demand."""

    def __init__(self, samples: Samples, size: int):
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.samples.images is not None:
            pixels = self.samples.images[i]
        else:
            pixels = decode_image(self.samples.paths[i], self.size)
        return torch.from_numpy(np.ascontiguousarray(pixels)), int(self.samples.labels[i])


def epoch_order(
    n: int, seed: int, epoch: int, *, shuffle: bool, weights: np.ndarray | None = None,
    rank: int = 0, world: int = 1,
) -> np.ndarray:  # fmt: skip
    """Sample order of one epoch; the same on every DDP rank, which then takes its own stride."""
    rng = np.random.default_rng([seed, epoch])
    if weights is not None:
        order = rng.choice(n, n, replace=True, p=weights / weights.sum())
    elif shuffle:
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    if world > 1:
        order = order[: len(order) - len(order) % world] if shuffle else order
        order = order[rank::world]
    return order


def iterate_batches(
    samples: Samples, order: np.ndarray, batch_size: int, *, pixels: torch.Tensor | None = None,
    masks: torch.Tensor | None = None, size: int = 0, num_workers: int = 0, drop_last: bool = False,
) -> Iterator[Batch]:  # fmt: skip
    """``(images uint8 (b, r, c, 3), labels int64 (b,), masks uint8 (b, r, c) or None)`` in ``order``."""
    labels = torch.from_numpy(samples.labels)
    stop = len(order) - (len(order) % batch_size if drop_last and len(order) > batch_size else 0)
    if pixels is not None:
        for start in range(0, stop, batch_size):
            index = torch.from_numpy(order[start : start + batch_size])
            yield pixels[index], labels[index], None if masks is None else masks[index]
        return
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(PatchDataset(samples, size), order[:stop].tolist()),
        batch_size=batch_size, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
    )  # fmt: skip
    try:
        for images, y in loader:
            yield images, y, None
    except DataError as exc:  # from a worker: the message holds its traceback; keep the error's own line
        text = str(exc).strip()
        if "Original Traceback" not in text:
            raise
        raise DataError(text.splitlines()[-1].split("Error: ", 1)[-1]) from exc
