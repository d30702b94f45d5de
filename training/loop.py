"""The training loop: phases (head first, then unfreeze), schedulers, early stopping, checkpoints.

:func:`fit` runs every phase of a recipe over a prepared :class:`Fold`,
writes ``last.pt`` after each epoch and ``best.pt`` when the monitored
validation metric improves, and resumes from ``last.pt`` when it exists.
Batches are uint8 on the host; conversion, augmentation and normalisation
run on the training device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import ddp
from training.augment import augment_batch
from training.batches import epoch_order, iterate_batches
from training.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from training.config import ConfigError, PhaseConfig, TrainingConfig
from training.metrics import classification_metrics, segmentation_metrics
from training.network import freeze_batchnorm_stats, set_trainable
from training.resume import restore_optimizer
from training.samples import Samples

__all__ = ["Fold", "NonFiniteLossError", "evaluate", "fit", "make_optimizer", "make_scheduler", "prepare"]


class NonFiniteLossError(ConfigError, FloatingPointError):
    """The loss became NaN or infinite; training stops instead of writing broken weights."""


@dataclass
class Fold:
    """One split ready for the loop: samples plus their pixels as a uint8 tensor (or None: read files)."""

    samples: Samples
    pixels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    weights: np.ndarray | None = None  # weighted sampling
    stain: Any = None  # the StainNormalizer the pixels went through, if any


@dataclass
class Context:
    config: TrainingConfig
    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    input_size: int
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    segmentation: bool = False
    rank: int = 0
    world: int = 1
    log: Callable[[dict[str, Any]], None] = lambda row: None
    progress: bool = True
    wrap: Callable[[Any], Any] | None = None  # DDP: re-wrapped per phase, after freezing
    resume_key: dict[str, str] | None = None  # settings and data digest, stored in last.pt (see run.py)
    on_step: Callable[[int, int, int], None] | None = None  # (epoch, steps done, steps) after each batch


def prepare(images: torch.Tensor, ctx: Context, masks: torch.Tensor | None = None, train: bool = False):  # type: ignore[no-untyped-def]
    """uint8 (n, r, c, 3) → normalised float (n, 3, s, s) on the device, augmented when training."""
    x = images.to(ctx.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    if masks is not None:
        masks = masks.to(ctx.device, non_blocking=True)
    if x.shape[-1] != ctx.input_size or x.shape[-2] != ctx.input_size:
        x = torch.nn.functional.interpolate(x, size=(ctx.input_size,) * 2, mode="bilinear", antialias=True)
        if masks is not None:
            masks = torch.nn.functional.interpolate(masks[:, None].float(), size=(ctx.input_size,) * 2)[
                :, 0
            ].long()
    if train:
        x, masks = augment_batch(x, ctx.config.augment, masks)
    x = (x - ctx.mean) / ctx.std
    if ctx.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, masks


def make_optimizer(phase: PhaseConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": phase.lr, "weight_decay": phase.weight_decay}
    if phase.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=phase.momentum, **kwargs)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax}[
        phase.optimizer
    ]
    return cls(params, **kwargs)


def make_scheduler(phase: PhaseConfig, optimizer: torch.optim.Optimizer, mode: str) -> Any:
    if phase.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode, phase.factor, phase.patience)
    if phase.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, phase.step_size, phase.gamma)
    if phase.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(phase.epochs, 1))
    return None


def train_epoch(
    network: Any, optimizer: Any, scaler: Any, fold: Fold, ctx: Context, epoch_seed: int
) -> dict[str, float]:
    """One pass over the training fold; returns mean loss and images/s."""
    cfg = ctx.config.train
    network.train()
    freeze_batchnorm_stats(getattr(network, "module", network))
    order = epoch_order(len(fold.samples), cfg.seed, epoch_seed, shuffle=True, weights=fold.weights,
                        rank=ctx.rank, world=ctx.world)  # fmt: skip
    if cfg.max_steps_per_epoch:
        order = order[: cfg.max_steps_per_epoch * cfg.batch_size]
    amp = cfg.amp and ctx.device.type == "cuda"
    total, count, start = 0.0, 0, time.perf_counter()
    batches = iterate_batches(fold.samples, order, cfg.batch_size, pixels=fold.pixels, masks=fold.masks,
                              size=ctx.input_size, num_workers=cfg.num_workers, drop_last=True)  # fmt: skip
    steps = len(order) // cfg.batch_size or 1
    bar = _bar(batches, steps, "train", ctx)
    optimizer.zero_grad(set_to_none=True)
    for step, (images, labels, masks) in enumerate(bar):
        if ctx.on_step is not None and ctx.rank == 0:
            ctx.on_step(epoch_seed, step, steps)
        x, masks = prepare(images, ctx, masks, train=True)
        y = masks.long() if ctx.segmentation else labels.to(ctx.device)
        with torch.autocast(ctx.device.type, dtype=torch.float16, enabled=amp):
            try:
                loss = ctx.loss_fn(network(x), y)
            except ValueError as exc:
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise ConfigError(
                    f"a training batch of {len(x)} patch(es) is too small for this network's BatchNorm "
                    f"layers at {x.shape[-1]} px; use train.batch_size of 2 or more (and at least 2 "
                    "training patches per batch)"
                ) from exc
        if not torch.isfinite(loss):
            lr = optimizer.param_groups[0]["lr"]
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {step} (lr {lr:g}); stopping. The last "
                "good checkpoint is kept. Lower the learning rate, check the data for blank or corrupt "
                "patches, or set train.amp=false."
            )
        scaler.scale(loss / cfg.grad_accum).backward()
        if (step + 1) % cfg.grad_accum == 0:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        total += loss.item() * len(images)
        count += len(images)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / count:.4f}")
    seconds = time.perf_counter() - start
    if ctx.on_step is not None and ctx.rank == 0:
        ctx.on_step(epoch_seed, steps, steps)
    return {"train_loss": total / max(count, 1), "images_per_s": count / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate(network: Any, fold: Fold, ctx: Context) -> tuple[dict[str, Any], np.ndarray]:
    """Loss and metrics over a whole split; also returns the class probabilities (n, k)."""
    network.eval()
    order = np.arange(len(fold.samples))
    total, probs, counts = 0.0, [], None
    amp = ctx.config.train.amp and ctx.device.type == "cuda"
    batches = iterate_batches(
        fold.samples,
        order,
        ctx.config.train.batch_size,
        pixels=fold.pixels,
        masks=fold.masks,
        size=ctx.input_size,
    )
    for images, labels, masks in batches:
        x, masks = prepare(images, ctx, masks)
        y = masks.long() if ctx.segmentation else labels.to(ctx.device)
        with torch.autocast(ctx.device.type, dtype=torch.float16, enabled=amp):
            logits = network(x).float()
        total += ctx.loss_fn(logits, y).item() * len(images)
        if ctx.segmentation:
            counts = _add_counts(counts, logits.argmax(1), y, logits.shape[1])
        else:
            probs.append(logits.softmax(1).cpu().numpy())
    names = fold.samples.class_names
    if ctx.segmentation:
        metrics = segmentation_metrics(*counts, class_names=names)  # type: ignore[misc]
        out = np.zeros((0, len(names)))
    else:
        out = np.concatenate(probs)
        metrics = classification_metrics(fold.samples.labels, out, names)
    metrics["loss"] = total / max(len(fold.samples), 1)
    return metrics, out


def _add_counts(counts: Any, pred: torch.Tensor, y: torch.Tensor, k: int) -> list[np.ndarray]:
    new = [np.zeros(k) for _ in range(4)] if counts is None else counts
    for c in range(k):
        p, t = pred == c, y == c
        new[0][c] += (p & t).sum().item()
        new[1][c] += (p | t).sum().item()
        new[2][c] += p.sum().item()
        new[3][c] += t.sum().item()
    return new


def fit(
    network: Any, train: Fold, valid: Fold, ctx: Context, run_dir: Path, saved: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train through every phase; returns ``{"history", "best_score", "best_epoch", "stopped"}``.

    ``saved`` is ``last.pt`` already read (and checked) by the caller; without it, ``last.pt``
    is read here when ``train.resume`` is on.
    """
    cfg = ctx.config.train
    mode = "min" if cfg.monitor == "loss" else "max"
    if saved is None and cfg.resume and (run_dir / LAST).exists():
        saved = load_checkpoint(run_dir / LAST)
    state = _resume(network, saved, run_dir / LAST)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and ctx.device.type == "cuda")
    inner = getattr(network, "module", network)
    for p_index, phase in enumerate(cfg.phases):
        if p_index < state["phase"]:
            continue
        if state.get("stopped"):  # a resumed run that had stopped early stays stopped
            break
        set_trainable(inner, phase.trainable)
        model = ctx.wrap(inner) if ctx.wrap is not None else inner
        optimizer = make_optimizer(phase, [p for p in inner.parameters() if p.requires_grad])
        scheduler = make_scheduler(phase, optimizer, mode)
        restore_optimizer(state, optimizer, scheduler, run_dir / LAST, p_index)
        for epoch in range(state["epoch"], phase.epochs):
            global_epoch = len(state["history"])
            row = {"phase": p_index, "epoch": epoch, "global_epoch": global_epoch,
                   "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
            row.update(_agree(train_epoch(model, optimizer, scaler, train, ctx, global_epoch), inner, ctx))
            metrics, _ = evaluate(inner, valid, ctx)
            if ctx.world > 1:  # rank 0's numbers everywhere: logs, scheduler, best epoch, early stopping
                metrics = ddp.broadcast_object(metrics)
            row.update({f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
            score = metrics[cfg.monitor] if cfg.monitor in metrics else _missing_monitor(cfg.monitor, metrics)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            elif scheduler is not None:
                scheduler.step()
            improved = _better(score, state["best_score"], mode)
            if improved:
                state.update(best_score=score, best_epoch=global_epoch, stale=0)
                if ctx.rank == 0:
                    save_checkpoint({"model": inner.state_dict()}, run_dir / BEST)
            else:
                state["stale"] += 1
            state["history"].append(row)
            ctx.log(row)
            if cfg.early_stopping and state["stale"] >= cfg.early_stopping:
                state["stopped"] = f"early stopping after {state['stale']} epochs without improvement"
            state.update(phase=p_index, epoch=epoch + 1)
            if ctx.rank == 0:
                snapshot = _snapshot(inner, optimizer, scheduler, state) | (ctx.resume_key or {})
                save_checkpoint(snapshot, run_dir / LAST)
            if state.get("stopped"):
                break
        state.update(phase=p_index + 1, epoch=0)
        if state.get("stopped"):
            break
    if ctx.world > 1:
        ddp.barrier()  # rank 0 has written best.pt and last.pt before any rank reads them
    return {k: state[k] for k in ("history", "best_score", "best_epoch")} | {
        "stopped": state.get("stopped") or None
    }


def _agree(stats: dict[str, float], inner: Any, ctx: Context) -> dict[str, float]:
    """Under DDP: rank 0's BatchNorm statistics on every rank, the training loss averaged over ranks
    and the throughput summed, so every rank evaluates the same network and logs the same row."""
    if ctx.world <= 1:
        return stats
    ddp.sync_buffers(inner)
    loss, ranks, speed = ddp.reduce_sum([stats["train_loss"], 1.0, stats["images_per_s"]], ctx.device)
    return {"train_loss": loss / ranks, "images_per_s": speed}


def _snapshot(network: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        **{k: state[k] for k in ("phase", "epoch", "history", "best_score", "best_epoch", "stale")},
        "stopped": state.get("stopped") or "",
    }


def _resume(network: Any, saved: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    fresh = {
        "phase": 0,
        "epoch": 0,
        "history": [],
        "best_score": None,
        "best_epoch": -1,
        "stale": 0,
        "stopped": "",
    }
    if saved is None:
        return fresh
    try:
        getattr(network, "module", network).load_state_dict(saved["model"])
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"{path} does not fit this recipe's network ({first}); it was made with other settings. Run the "
            "recipe it was made with to resume, or start afresh in another folder (name=...) or with "
            "train.resume=false (overwrites this run)."
        ) from exc
    return fresh | {k: v for k, v in saved.items() if k in fresh or k in ("optimizer", "scheduler")}


def _better(score: float, best: float | None, mode: str) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return best is None
    return best is None or (score < best if mode == "min" else score > best)


def _missing_monitor(name: str, metrics: dict[str, Any]) -> float:
    names = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
    raise ConfigError(f"train.monitor = {name!r} is not a validation metric; choose one of {names}")


def _bar(iterable: Any, total: int, desc: str, ctx: Context) -> Any:
    if not ctx.progress or ctx.rank != 0:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
