"""Training-loop speed against a bare timm loop on the same model and batch, in the same process.

    python -m training.bench --architecture mobilenetv2_100 --batch-size 64 --size 96 --steps 50

The bare loop feeds one pre-made normalised float batch already on the device
(an upper bound: no data, no augmentation); the project loop runs
:func:`training.loop.train_epoch` on an in-memory uint8 set with flips and
90° rotations, AMP on CUDA.  The issue's target on an H100: ratio >= 0.85.
"""

from __future__ import annotations

import json
import time

import click
import numpy as np
import torch

__all__ = ["bench"]


def _bare(network, x, y, steps, amp):  # type: ignore[no-untyped-def]
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    network.train()
    for step in range(steps + 5):
        if step == 5:
            _sync(x.device)
            start = time.perf_counter()
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(network(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    _sync(x.device)
    return steps * len(x) / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@click.command()
@click.option("--architecture", default="mobilenetv2_100", show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--size", default=96, show_default=True, help="Patch edge in pixels.")
@click.option("--steps", default=50, show_default=True)
@click.option("--device", default="auto", show_default=True)
def bench(architecture: str, batch_size: int, size: int, steps: int, device: str) -> None:
    """Print images/s of the bare loop and of the training loop, and their ratio, as JSON."""
    import timm

    from napari_histo.models.loading import resolve_device
    from training.config import PhaseConfig, config_from_dict
    from training.loop import Context, Fold, make_optimizer, train_epoch
    from training.losses import make_loss
    from training.samples import Samples

    dev = resolve_device(device)
    amp = dev.type == "cuda"
    rng = np.random.default_rng(0)
    n = batch_size * (steps + 5)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, n)
    memory = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    network = timm.create_model(architecture, num_classes=2).to(dev, memory_format=memory)
    x = (torch.from_numpy(images[:batch_size]).to(dev).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    x = x.contiguous(memory_format=memory)
    bare = _bare(network, x, torch.from_numpy(labels[:batch_size]).to(dev), steps, amp)
    config = config_from_dict(
        {
            "data": {"source": "synthetic"},
            "model": {"architecture": architecture},
            "train": {"batch_size": batch_size, "amp": amp},
        }
    )
    ctx = Context(
        config=config,
        device=dev,
        input_size=size,
        loss_fn=make_loss("ce"),
        progress=False,
        mean=torch.full((1, 3, 1, 1), 0.5, device=dev),
        std=torch.full((1, 3, 1, 1), 0.25, device=dev),
    )
    samples = Samples(labels=labels.astype(np.int64), class_names=("a", "b"), images=images)
    pixels = torch.from_numpy(images)
    fold = Fold(samples, pixels.pin_memory() if dev.type == "cuda" else pixels)
    optimizer = make_optimizer(PhaseConfig(optimizer="adamw", lr=1e-4), list(network.parameters()))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loop = train_epoch(network, optimizer, scaler, fold, ctx, 0)["images_per_s"]
    out = {
        "device": str(dev),
        "architecture": architecture,
        "batch_size": batch_size,
        "size": size,
        "bare_images_per_s": round(bare, 1),
        "loop_images_per_s": round(loop, 1),
        "ratio": round(loop / bare, 3),
    }
    click.echo(json.dumps(out))


if __name__ == "__main__":
    bench()
