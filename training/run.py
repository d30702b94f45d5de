"""``train(config)``: data → splits → network → (SimCLR) → phases → model directory and report.

A run directory ``<output_dir>/<name>/`` receives ``config.yaml`` (resolved),
``environment.json``, ``history.csv`` (+ TensorBoard), ``last.pt``/``best.pt``,
``metrics.json``, PNG plots and ``model/`` (``model.json`` + ``weights.safetensors``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_histo.models import ModelSpec, save_model
from napari_histo.models.loading import resolve_device
from napari_histo.models.registry import check_architecture
from training import ddp
from training.checkpoint import BEST, LAST, load_checkpoint
from training.config import ConfigError, TrainingConfig, config_to_dict
from training.data import Samples, load_samples
from training.loop import Context, Fold, evaluate, fit
from training.losses import make_loss
from training.network import build_network, imagenet_normalisation, source_spec, weights_path
from training.report import EpochLogger, StepProgress, environment, write_json, write_resolved_config
from training.splits import balanced_class_weights, cap_per_class, sample_weights, split_samples, undersample

__all__ = ["TrainResult", "prepare_data", "train"]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def train(config: TrainingConfig, *, progress: bool = True) -> TrainResult:
    """Run a recipe end to end (also under ``torchrun``: each process trains its shard)."""
    rank, world = ddp.setup()
    try:
        return _train(config, rank, world, progress)
    finally:
        ddp.teardown()


def _train(config: TrainingConfig, rank: int, world: int, progress: bool) -> TrainResult:
    torch.manual_seed(config.train.seed)
    run_dir = Path(config.output_dir).expanduser().resolve() / config.name
    device = ddp.device_for(rank) if world > 1 else resolve_device(config.train.device)
    check_architecture(config.model.architecture, config.model.task)
    _check_weights_path(config)
    _make_run_dir(run_dir, config, write_probe=rank == 0)
    saved = _saved_run(config, run_dir)  # before anything in run_dir is overwritten
    folds = prepare_data(config, run_dir)
    resume_key = {"settings": json.dumps(resume_settings(config), sort_keys=True),
                  "data_digest": data_digest(folds)}  # fmt: skip
    if saved is not None:
        _check_same_data(saved, resume_key["data_digest"], run_dir / LAST)
    if rank == 0:
        write_resolved_config(config, run_dir)
        write_json(environment(), run_dir / "environment.json")
    normalizer = folds["train"].stain
    spec = make_spec(config, folds["train"].samples, normalizer.target.to_dict() if normalizer else None)
    network = build_network(config, spec).to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    mean, std = spec.mean, spec.std
    weights = None
    if config.train.class_weights == "balanced":
        weights = torch.from_numpy(balanced_class_weights(folds["train"].samples.labels, spec.num_classes))
        weights = weights.to(device)
    ctx = Context(
        config=config, device=device, input_size=spec.input_size,
        mean=torch.tensor(mean, device=device).view(1, 3, 1, 1),
        std=torch.tensor(std, device=device).view(1, 3, 1, 1),
        loss_fn=make_loss(config.train.loss, weights), segmentation=spec.task.value == "segmentation",
        rank=rank, world=world, progress=progress, resume_key=resume_key,
    )  # fmt: skip
    if config.ssl.enabled:
        from training.ssl import pretrain_simclr

        pretrain_simclr(network, folds["train"], ctx, run_dir)
    logger = EpochLogger(run_dir, enabled=rank == 0)
    ctx.log = _print_and(logger, progress and rank == 0)
    ctx.on_step = StepProgress(run_dir, sum(phase.epochs for phase in config.train.phases))
    if world > 1:
        ctx.wrap = lambda inner: ddp.wrap(inner, device)
    started = time.perf_counter()
    outcome = fit(network, folds["train"], folds["valid"], ctx, run_dir, saved)
    logger.close()
    if (run_dir / BEST).exists():
        network.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    results = {name: evaluate(network, fold, ctx) for name, fold in folds.items() if name != "train"}
    metrics = {name: m for name, (m, _) in results.items()}
    model_dir = run_dir / "model"
    if rank == 0:
        _write_outputs(config, spec, network, folds, results, outcome, run_dir, model_dir, started)
        if config.clustering.enabled:
            metrics["clustering"] = _clustering(config, network, folds["valid"], spec, run_dir, device)
    return TrainResult(run_dir, model_dir, metrics, outcome["history"])


def _make_run_dir(run_dir: Path, config: TrainingConfig, *, write_probe: bool) -> None:
    """Create the run folder, or say in one line why it cannot be (a file in the way, read-only ...)."""
    where = f"output_dir = {config.output_dir!r}, name = {config.name!r}"
    for folder in [*reversed(run_dir.parents), run_dir]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                f"{folder} is a file, so the run folder {run_dir} cannot be made ({where}); set output_dir "
                "to a folder (new or existing) or move the file"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if write_probe:
            probe = run_dir / ".write-test.part"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run folder {run_dir} ({exc.strerror or exc}; {where}); set output_dir to a "
            "folder you can write to"
        ) from exc


def _check_weights_path(config: TrainingConfig) -> None:
    weights = config.model.weights
    if weights in ("none", "", "timm"):
        return
    path = weights_path(config)
    if not path.is_file():
        what = "is a folder, not a weight file" if path.is_dir() else "not found"
        raise ConfigError(
            f"model.weights = {weights!r}: {what} ({path}; relative paths start at the recipe's folder). "
            "Give a local .pth or .safetensors file, 'timm' (download ImageNet weights) or 'none'."
        )


#: settings that may change between a run and its resumption (the rest must match last.pt's)
_FREE_TO_CHANGE = {
    "": ("name", "output_dir", "recipe_path", "clustering"),
    "data": ("cache",),
    "model": ("name", "description", "class_colors"),
    "train": ("num_workers", "device", "resume", "amp", "early_stopping", "max_steps_per_epoch"),
}


def resume_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the run that wrote ``last.pt``.

    More epochs, or phases added at the end, continue a run; another learning rate, data,
    architecture ... make another run.
    """
    data = config_to_dict(config)
    for section, keys in _FREE_TO_CHANGE.items():
        node = data[section] if section else data
        for key in keys:
            node.pop(key, None)
    for phase in data["train"]["phases"]:
        phase.pop("epochs", None)
    return data


def data_digest(folds: dict[str, Fold]) -> str:
    """A fingerprint of the training data: classes and the content hash (or path) of every patch per split."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(folds):
        samples = folds[name].samples
        digest.update(f"{name}:{list(samples.class_names)}:{len(samples)}".encode())
        keys = samples.hashes if samples.hashes is not None else samples.paths
        for key, label in sorted(zip([str(k) for k in keys], samples.labels.tolist())):
            digest.update(f"{key}:{label};".encode())
    return digest.hexdigest()


def _saved_run(config: TrainingConfig, run_dir: Path) -> dict[str, Any] | None:
    """``last.pt`` when this run resumes; refuses one made with other settings."""
    path = run_dir / LAST
    if not (config.train.resume and path.exists()):
        return None
    saved = load_checkpoint(path)
    before = saved.get("settings")
    if isinstance(before, str):
        then, now = json.loads(before), resume_settings(config)
        if len(now["train"]["phases"]) > len(then["train"]["phases"]):  # phases added at the end: continue
            now["train"]["phases"] = now["train"]["phases"][: len(then["train"]["phases"])]
        changes = _differences(then, now)
        if changes:
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            raise ConfigError(
                f"{path} was made with other settings ({shown}), so this run is not resumed from it. Run the "
                "recipe it was made with to resume; to start afresh, train into another folder (name=...) or "
                "set train.resume=false (overwrites this run)"
            )
    return saved


def _check_same_data(saved: dict[str, Any], digest: str, path: Path) -> None:
    before = saved.get("data_digest")
    if isinstance(before, str) and before != digest:
        raise ConfigError(
            f"{path} was made from other training data (patches were added, removed, changed or split "
            "differently), so this run is not resumed from it. Restore the data to resume; to start afresh, "
            "train into another folder (name=...) or set train.resume=false (overwrites this run)"
        )


def _differences(before: Any, now: Any, key: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(before) | set(now)):
            out += _differences(before.get(k), now.get(k), f"{key}.{k}" if key else k)
        return out
    if isinstance(before, list) and isinstance(now, list) and all(isinstance(v, dict) for v in before + now):
        out = [d for i, (b, n) in enumerate(zip(before, now)) for d in _differences(b, n, f"{key}[{i}]")]
        if len(before) != len(now):
            out.append(f"{key}: {len(before)} then, {len(now)} now")
        return out
    return [] if before == now else [f"{key}: {_show(before)} then, {_show(now)} now"]


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _clustering(config: TrainingConfig, network, fold: Fold, spec: ModelSpec, run_dir: Path, device) -> Any:  # type: ignore[no-untyped-def]
    """The literature's clustering check on the validation patches, grouped by class."""
    from training.clustering import run_clustering

    samples = fold.samples.with_pixels()
    n = min(len(samples), config.clustering.max_samples)
    pick = np.random.default_rng(config.train.seed).permutation(len(samples))[:n]
    part = samples.subset(pick)
    return run_clustering(
        network, part.images, part.labels, part.class_names, spec.mean, spec.std, run_dir / "clustering",
        config.clustering.pca_dims, str(device),
    )  # fmt: skip


def prepare_data(config: TrainingConfig, run_dir: Path) -> dict[str, Fold]:
    """Load, de-duplicate, split, cap and balance the data; pixels in memory when ``data.cache``."""
    base = Path(config.recipe_path).parent if config.recipe_path else Path.cwd()
    samples = load_samples(config.data, base, run_dir)
    splits = split_samples(samples, config.data, config.train.seed)
    splits = {k: cap_per_class(v, config.data.max_per_class, config.train.seed) for k, v in splits.items()}
    if config.data.balance == "undersample":
        splits["train"] = undersample(splits["train"], config.train.seed)
    stain = None
    if config.data.cache or config.augment.stain_normalize != "none":
        # one patch size for every split: the training set's (odd patches resized, with a warning)
        splits["train"] = splits["train"].with_pixels()
        shape = splits["train"].images.shape[1:3]  # type: ignore[union-attr]
        splits = {k: v if k == "train" else v.with_pixels(shape) for k, v in splits.items()}
    if config.augment.stain_normalize != "none":
        from training.stain import fit_stain_target, normalize_samples

        stain = fit_stain_target(splits["train"], config.augment.stain_normalize, config.train.seed)
        splits = {k: normalize_samples(v, stain)[0] for k, v in splits.items()}
    folds = {}
    for name, part in splits.items():
        folds[name] = _fold(part, config)
        folds[name].stain = stain
    if config.data.balance == "weighted":
        folds["train"].weights = sample_weights(folds["train"].samples.labels, len(samples.class_names))
    return folds


def _fold(samples: Samples, config: TrainingConfig) -> Fold:
    pixels = None if samples.images is None else torch.from_numpy(samples.images)
    masks = None if samples.masks is None else torch.from_numpy(samples.masks)
    if pixels is not None and torch.cuda.is_available():
        pixels = pixels.pin_memory()
    return Fold(samples, pixels, masks)


def make_spec(config: TrainingConfig, train: Samples, stain: dict[str, Any] | None = None) -> ModelSpec:
    """The model's ``ModelSpec`` from the recipe and the training data (patch size, classes)."""
    patch = config.model.patch_size_pixels or _patch_size(train)
    mean, std = imagenet_normalisation(config)
    input_size = config.model.input_size or patch
    source = source_spec(config)
    if source is not None:  # fine-tuning another run: its mean/std (and input size) unless the recipe says
        taken = [] if config.model.mean and config.model.std else ["mean/std"]
        if not config.model.input_size:
            input_size = source.input_size
            taken.append("input size")
        if taken:
            print(
                f"model.weights is the model directory {weights_path(config).parent}: using its "
                f"{' and '.join(taken)} (mean {list(mean)}, std {list(std)}, input {input_size} px); "
                "set model.mean/model.std/model.input_size in the recipe to override",
                flush=True,
            )
    return ModelSpec(
        architecture=config.model.architecture,
        num_classes=len(train.class_names),
        class_names=train.class_names,
        patch_size_pixels=patch,
        spacing_um_px=config.model.spacing_um_px,
        task=config.model.task,
        class_colors=tuple(config.model.class_colors),
        input_size=input_size,
        mean=mean,
        std=std,
        name=config.model.name or config.name,
        description=config.model.description,
        stain=stain,
    )


def _patch_size(samples: Samples) -> int:
    if samples.images is not None:
        return int(samples.images.shape[1])
    from training.samples import decode_image

    return int(decode_image(samples.paths[0]).shape[0])


def _write_outputs(config, spec, network, folds, results, outcome, run_dir, model_dir, started) -> None:  # type: ignore[no-untyped-def]
    from training import plots

    metrics = {name: m for name, (m, _) in results.items()}
    summary = {
        "monitor": config.train.monitor,
        "best_score": outcome["best_score"],
        "best_epoch": outcome["best_epoch"],
        "stopped": outcome["stopped"],
        "epochs": len(outcome["history"]),
        "seconds": round(time.perf_counter() - started, 1),
        "counts": {name: fold.samples.counts() for name, fold in folds.items()},
        "deduplicated": config.data.dedup,
    }
    write_json({"summary": summary, **metrics}, run_dir / "metrics.json")
    provenance = {
        "recipe": config.recipe_path,
        "config": config_to_dict(dataclasses.replace(config)),
        "command": os.environ.get("HISTO_TRAIN_COMMAND", " ".join(environment()["argv"])),
        "environment": environment(),
        **summary,
    }
    headline = {k: v for k, v in metrics.get("valid", {}).items() if isinstance(v, (int, float))}
    spec = spec.with_updates(provenance=provenance, metrics={"valid": headline} | (
        {"test": {k: v for k, v in metrics["test"].items() if isinstance(v, (int, float))}}
        if "test" in metrics else {}))  # fmt: skip
    save_model(network, spec, model_dir)
    write_json(spec.to_json_dict(), model_dir / "model.json")  # NaN-safe rewrite
    plots.write_run_plots(outcome["history"], results, folds, spec.class_names, run_dir)


def _print_and(logger: EpochLogger, verbose: bool):  # type: ignore[no-untyped-def]
    def log(row: dict[str, Any]) -> None:
        logger(row)
        if verbose:
            keys = [
                k for k in ("train_loss", "val_loss", "val_accuracy", "val_roc_auc", "val_iou") if k in row
            ]
            text = "  ".join(f"{k} {row[k]:.4f}" for k in keys)
            print(f"phase {row['phase']} epoch {row['epoch']}: {text}  ({row['images_per_s']:.0f} img/s)",
                  flush=True)  # fmt: skip

    return log
