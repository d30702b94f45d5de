"""Slide-level (MIL) training: ABMIL, CLAM-SB or TransMIL on tile embeddings, from a recipe.

``histo train recipe.yaml`` comes here when the recipe says ``model.task: mil`` (with
``data.source: embeddings``, see :mod:`training.mil_data`).  One bag (slide) per step,
``train.grad_accum`` bags per optimiser step; the phases, optimisers, schedulers, early stopping,
``train.monitor``, ``last.pt``/``best.pt`` with the resume-settings check, ``history.csv``,
``progress.json``, ``metrics.json``, plots and ``README.md`` are those of patch training.
The run's ``model/`` is a MIL model directory (:func:`napari_histo.models.mil.load_mil_model`);
``predictions_<split>.csv`` lists each slide's probabilities, ``attention_<split>.csv`` the ten most
attended tiles of each slide (coordinates at level 0).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from napari_histo.models.mil import build_mil_network, save_mil_model
from napari_histo.models.spec import ModelSpec, Task
from training.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from training.config import ConfigError, TrainingConfig
from training.loop import (
    NonFiniteLossError,
    _better,
    _missing_monitor,
    _resume,
    _snapshot,
    make_optimizer,
    make_scheduler,
)
from training.losses import make_loss
from training.metrics import classification_metrics
from training.mil_data import Bags, bags_digest, load_bags
from training.provenance import base_provenance
from training.report import (
    EpochLogger,
    StepProgress,
    data_note,
    environment,
    format_data_note,
    write_json,
    write_resolved_config,
    write_run_readme,
)
from training.resume import restore_optimizer, resume_settings
from training.splits import balanced_class_weights

__all__ = ["evaluate_bags", "mil_options", "train_mil"]


def mil_options(config: TrainingConfig) -> dict[str, Any]:
    """The network's constructor options for the recipe's architecture (stored in provenance.mil)."""
    m = config.mil
    options: dict[str, Any] = {"hidden": m.hidden, "dropout": m.dropout}
    if config.model.architecture == "transmil":
        options["heads"] = m.heads
    if config.model.architecture == "clam_sb":
        options["k_sample"] = m.k_sample
    return options


def train_mil(config: TrainingConfig, rank: int = 0, world: int = 1, progress: bool = True) -> Any:
    """Train a MIL recipe end to end; returns a :class:`training.rundir.TrainResult`."""
    from training.rundir import TrainResult, check_same_data, make_run_dir, saved_run

    if world > 1:
        raise ConfigError("MIL training runs in one process; start it without torchrun")
    torch.manual_seed(config.train.seed)
    run_dir = Path(config.output_dir).expanduser().resolve() / config.name
    device = _device(config)
    make_run_dir(run_dir, config, write_probe=True)
    saved = saved_run(config, run_dir)
    parts, encoder = load_bags(config)
    resume_key = {
        "settings": json.dumps(resume_settings(config), sort_keys=True),
        "data_digest": bags_digest(parts),
    }
    if saved is not None:
        check_same_data(saved, resume_key["data_digest"], run_dir / LAST)
    write_resolved_config(config, run_dir)
    write_json(environment(), run_dir / "environment.json")
    train, valid = parts["train"], parts["valid"]
    class_names = train.class_names
    options = mil_options(config)
    network = build_mil_network(
        config.model.architecture, encoder["feature_dim"], len(class_names), **options
    )
    network = network.to(device)
    weights = None
    if config.train.class_weights == "balanced":
        weights = torch.from_numpy(balanced_class_weights(train.labels, len(class_names))).float().to(device)
    loss_fn = make_loss(config.train.loss, weights)
    logger = EpochLogger(run_dir)
    on_step = StepProgress(run_dir, sum(phase.epochs for phase in config.train.phases))
    started = time.perf_counter()
    outcome = _fit(
        network, train, valid, config, loss_fn, device, run_dir, saved, resume_key, logger, on_step, progress
    )
    logger.close()
    if (run_dir / BEST).exists():
        network.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    results = {
        name: evaluate_bags(network, bags, loss_fn, device) for name, bags in parts.items() if name != "train"
    }
    metrics = {name: m for name, (m, _, _) in results.items()}
    summary = {
        "monitor": config.train.monitor,
        "best_score": outcome["best_score"],
        "best_epoch": outcome["best_epoch"],
        "stopped": outcome["stopped"],
        "epochs": len(outcome["history"]),
        "seconds": round(time.perf_counter() - started, 1),
        "counts": {name: bags.counts() for name, bags in parts.items()},
        "tiles": {name: int(sum(len(t.features) for t in bags.tables)) for name, bags in parts.items()},
        "patients": {name: len(set(bags.patients)) for name, bags in parts.items()},
    }
    summary["data"] = data_note(config, summary["counts"])
    write_json({"summary": summary, **metrics}, run_dir / "metrics.json")
    provenance = {
        **base_provenance(config),
        **summary,
        "encoder": encoder,
        "mil": {"in_features": encoder["feature_dim"], **options},
        "touched_splits": sorted(n for n in parts if n != "test"),
    }
    headline = {
        split: {k: v for k, v in m.items() if isinstance(v, (int, float))} for split, m in metrics.items()
    }
    spec = ModelSpec(
        architecture=config.model.architecture,
        num_classes=len(class_names),
        class_names=class_names,
        patch_size_pixels=int(encoder["tile_px"]),
        spacing_um_px=float(encoder["mpp"]),
        task=Task.MIL,
        class_colors=config.model.class_colors,
        name=config.model.name or config.name,
        description=config.model.description,
        provenance=provenance,
        metrics=headline,
    )
    model_dir = run_dir / "model"
    save_mil_model(network, spec, model_dir)
    write_json(spec.to_json_dict(), model_dir / "model.json")  # NaN-safe rewrite
    _write_outputs(outcome["history"], results, parts, run_dir)
    write_run_readme(run_dir, config, summary["data"], metrics)
    if progress:
        print(format_data_note(summary["data"]), flush=True)
    return TrainResult(run_dir, model_dir, metrics, outcome["history"])


def _fit(
    network: Any,
    train: Bags,
    valid: Bags,
    config: TrainingConfig,
    loss_fn: Any,
    device: torch.device,
    run_dir: Path,
    saved: dict[str, Any] | None,
    resume_key: dict[str, str],
    log: Any,
    on_step: Any,
    progress: bool,
) -> dict[str, Any]:
    """:func:`training.loop.fit` for bags: phases, schedulers, early stopping, best.pt/last.pt, resume."""
    cfg = config.train
    mode = "min" if cfg.monitor == "loss" else "max"
    state = _resume(network, saved, run_dir / LAST)
    for p_index, phase in enumerate(cfg.phases):
        if p_index < state["phase"]:
            continue
        if state.get("stopped"):
            break
        optimizer = make_optimizer(phase, list(network.parameters()))
        scheduler = make_scheduler(phase, optimizer, mode)
        restore_optimizer(state, optimizer, scheduler, run_dir / LAST, p_index)
        for epoch in range(state["epoch"], phase.epochs):
            global_epoch = len(state["history"])
            row: dict[str, Any] = {
                "phase": p_index,
                "epoch": epoch,
                "global_epoch": global_epoch,
                "lr": optimizer.param_groups[0]["lr"],
            }
            row.update(
                _train_epoch(network, optimizer, train, config, loss_fn, device, global_epoch, on_step)
            )
            metrics, _, _ = evaluate_bags(network, valid, loss_fn, device)
            row.update({f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
            score = metrics[cfg.monitor] if cfg.monitor in metrics else _missing_monitor(cfg.monitor, metrics)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            elif scheduler is not None:
                scheduler.step()
            if _better(score, state["best_score"], mode):
                state.update(best_score=score, best_epoch=global_epoch, stale=0)
                save_checkpoint({"model": network.state_dict()}, run_dir / BEST)
            else:
                state["stale"] += 1
            state["history"].append(row)
            log(row)
            if progress:
                shown = "  ".join(
                    f"{k} {row[k]:.4f}" for k in ("train_loss", "val_loss", "val_roc_auc") if k in row
                )
                print(f"phase {p_index} epoch {epoch}: {shown}  ({row['bags_per_s']:.0f} bags/s)", flush=True)
            if cfg.early_stopping and state["stale"] >= cfg.early_stopping:
                state["stopped"] = f"early stopping after {state['stale']} epochs without improvement"
            state.update(phase=p_index, epoch=epoch + 1)
            save_checkpoint(_snapshot(network, optimizer, scheduler, state) | resume_key, run_dir / LAST)
            if state.get("stopped"):
                break
        state.update(phase=p_index + 1, epoch=0)
        if state.get("stopped"):
            break
    return {k: state[k] for k in ("history", "best_score", "best_epoch")} | {
        "stopped": state.get("stopped") or None
    }


def _write_outputs(
    history: list[dict[str, Any]], results: dict[str, Any], parts: dict[str, Bags], run_dir: Path
) -> None:
    """Plots (learning curves, ROC, confusion), predictions_<split>.csv, attention_<split>.csv."""
    from training import plots

    folds = {
        name: SimpleNamespace(samples=SimpleNamespace(labels=bags.labels)) for name, bags in parts.items()
    }
    plots.write_run_plots(
        history, {k: (m, p) for k, (m, p, _) in results.items()}, folds, parts["train"].class_names, run_dir
    )
    for split, (_, probs, attention) in results.items():
        bags = parts[split]
        with open(run_dir / f"predictions_{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["slide", "patient", "label", "predicted", *[f"p_{c}" for c in bags.class_names]])
            for i, name in enumerate(bags.names):
                writer.writerow(
                    [
                        name,
                        bags.patients[i],
                        bags.class_names[bags.labels[i]],
                        bags.class_names[int(probs[i].argmax())],
                        *[f"{v:.6f}" for v in probs[i]],
                    ]
                )
        with open(run_dir / f"attention_{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["slide", "rank", "tile", "row", "col", "attention"])
            for i, name in enumerate(bags.names):
                coords = bags.tables[i].coords
                for rank, t in enumerate(np.argsort(-attention[i])[:10]):
                    writer.writerow(
                        [name, rank, int(t), int(coords[t][0]), int(coords[t][1]), f"{attention[i][t]:.6g}"]
                    )


def _device(config: TrainingConfig) -> torch.device:
    from napari_histo.models.loading import resolve_device

    device: torch.device = resolve_device(config.train.device)
    return device


def _bag_tensor(bags: Bags, i: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(bags.tables[i].features).to(device)


def _step_loss(network: Any, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig, loss_fn: Any) -> Any:
    out = network(x, label=int(y.item()) if config.model.architecture == "clam_sb" else None)
    loss = loss_fn(out["logits"][None], y)
    if "instance_loss" in out:
        loss = config.mil.bag_weight * loss + (1 - config.mil.bag_weight) * out["instance_loss"]
    return loss


def _train_epoch(
    network: Any,
    optimizer: Any,
    bags: Bags,
    config: TrainingConfig,
    loss_fn: Any,
    device: torch.device,
    epoch: int,
    on_step: Any,
) -> dict[str, float]:
    cfg = config.train
    network.train()
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(len(bags))
    if cfg.max_steps_per_epoch:
        order = order[: cfg.max_steps_per_epoch]
    total, start = 0.0, time.perf_counter()
    tiles = 0
    optimizer.zero_grad(set_to_none=True)
    for step, i in enumerate(order):
        if on_step is not None:
            on_step(epoch, step, len(order))
        x = _bag_tensor(bags, int(i), device)
        if config.mil.max_tiles and len(x) > config.mil.max_tiles:
            x = x[torch.from_numpy(rng.choice(len(x), config.mil.max_tiles, replace=False)).to(device)]
        y = torch.tensor([int(bags.labels[i])], device=device)
        loss = _step_loss(network, x, y, config, loss_fn)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at bag {bags.names[i]!r} (lr "
                f"{optimizer.param_groups[0]['lr']:g}); stopping. The last good checkpoint is kept. Lower "
                "the learning rate or check the embeddings for NaN values."
            )
        (loss / cfg.grad_accum).backward()
        if (step + 1) % cfg.grad_accum == 0 or step + 1 == len(order):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        total += loss.item()
        tiles += len(x)
    if on_step is not None:
        on_step(epoch, len(order), len(order))
    seconds = max(time.perf_counter() - start, 1e-9)
    return {
        "train_loss": total / max(len(order), 1),
        "bags_per_s": len(order) / seconds,
        "tiles_per_s": tiles / seconds,
    }


@torch.no_grad()
def evaluate_bags(
    network: Any, bags: Bags, loss_fn: Any = None, device: Any = "cpu"
) -> tuple[dict[str, Any], np.ndarray, list[np.ndarray]]:
    """(metrics, class probabilities (n_bags, C), attention per bag) over a split."""
    network.eval()
    device = torch.device(device)
    loss_fn = loss_fn or make_loss("ce")
    probs, attention, total = [], [], 0.0
    for i in range(len(bags)):
        out = network(_bag_tensor(bags, i, device))
        logits = out["logits"].float()
        total += float(loss_fn(logits[None], torch.tensor([int(bags.labels[i])], device=device)))
        probs.append(logits.softmax(0).cpu().numpy())
        attention.append(out["attention"].float().cpu().numpy())
    p = np.stack(probs) if probs else np.zeros((0, len(bags.class_names)))
    metrics = classification_metrics(bags.labels, p, bags.class_names)
    metrics["loss"] = total / max(len(bags), 1)
    return metrics, p, attention
