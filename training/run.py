"""``train(config)``: data → splits → network → (SimCLR) → phases → model directory and report.

A run directory ``<output_dir>/<name>/`` receives ``config.yaml`` (resolved),
``environment.json``, ``history.csv`` (+ TensorBoard), ``last.pt``/``best.pt``,
``metrics.json``, PNG plots and ``model/`` (``model.json`` + ``weights.safetensors``); also
``README.md`` (what data the run used and how it differs from the recipe's paper, also in
``metrics.json`` ``summary.data`` and the model's provenance), ``predictions_<split>.csv`` and
``gradcam_sheet.png`` (classification) or ``mask_examples.png`` (segmentation), see :mod:`training.sheets`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_histo.models import ModelSpec, save_model
from napari_histo.models.loading import resolve_device
from napari_histo.models.registry import check_architecture
from training import ddp
from training.checkpoint import BEST, LAST, load_checkpoint
from training.config import ConfigError, TrainingConfig
from training.loop import Context, Fold, evaluate, fit
from training.losses import make_loss
from training.network import build_network, weights_path
from training.prepare import make_spec, prepare_data
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
from training.resume import resume_settings
from training.rundir import TrainResult, check_same_data, make_run_dir, saved_run
from training.splits import balanced_class_weights

__all__ = ["TrainResult", "prepare_data", "train"]


def train(config: TrainingConfig, *, progress: bool = True) -> TrainResult:
    """Run a recipe end to end (also under ``torchrun``: each process trains its shard)."""
    rank, world = ddp.setup()
    try:
        return _train(config, rank, world, progress)
    finally:
        ddp.teardown()


def _train(config: TrainingConfig, rank: int, world: int, progress: bool) -> TrainResult:
    if config.model.task == "mil":  # slide-level model on tile embeddings (training.mil)
        from training.mil import train_mil

        return train_mil(config, rank, world, progress)
    torch.manual_seed(config.train.seed)
    run_dir = Path(config.output_dir).expanduser().resolve() / config.name
    device = ddp.device_for(rank) if world > 1 else resolve_device(config.train.device)
    check_architecture(config.model.architecture, config.model.task)
    _check_weights_path(config)
    if config.ssl.data:
        from training.ssl import check_ssl_data

        check_ssl_data(config)
    make_run_dir(run_dir, config, write_probe=rank == 0)
    if config.ssl.only:  # SimCLR without labels; the backbone becomes model/ (training.ssl)
        from training.ssl import pretrain_only

        return TrainResult(*pretrain_only(config, run_dir, device, rank, world, progress))
    saved = saved_run(config, run_dir)  # before anything in run_dir is overwritten
    with ddp.rank_zero_first(rank) as lead:  # rank 0 exports / writes; the others then read its files
        folds = prepare_data(config, run_dir, record=lead)
    resume_key = {"settings": json.dumps(resume_settings(config), sort_keys=True),
                  "data_digest": data_digest(folds)}  # fmt: skip
    if saved is not None:
        check_same_data(saved, resume_key["data_digest"], run_dir / LAST)
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
        from training.ssl import pretrain_before_fit

        pretrain_before_fit(network, folds["train"], ctx, run_dir, resuming=saved is not None)
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
        calibration = None
        if config.train.calibrate and not ctx.segmentation:
            spec, calibration = _calibrate(network, spec, folds["valid"], run_dir, device)
            metrics["calibration"] = calibration
        _write_outputs(config, spec, network, folds, results, outcome, run_dir, model_dir, started,
                       calibration=calibration)  # fmt: skip
        if config.clustering.enabled:
            metrics["clustering"] = _clustering(config, network, folds["valid"], spec, run_dir, device)
    return TrainResult(run_dir, model_dir, metrics, outcome["history"])


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


def _write_outputs(config, spec, network, folds, results, outcome, run_dir, model_dir, started,  # type: ignore[no-untyped-def]
                   calibration=None) -> None:  # fmt: skip
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
    summary["data"] = data_note(config, summary["counts"])  # what it ran on vs the paper
    write_json({"summary": summary, **metrics, **({"calibration": calibration} if calibration else {})},
               run_dir / "metrics.json")  # fmt: skip
    provenance = {**base_provenance(config), **summary}  # no absolute paths of this machine
    provenance["touched_splits"] = touched_splits(config, folds)
    if calibration is not None:
        provenance["calibration"] = calibration
    headline = {k: v for k, v in metrics.get("valid", {}).items() if isinstance(v, (int, float))}
    spec = spec.with_updates(provenance=provenance, metrics={"valid": headline} | (
        {"test": {k: v for k, v in metrics["test"].items() if isinstance(v, (int, float))}}
        if "test" in metrics else {}))  # fmt: skip
    save_model(network, spec, model_dir)
    write_json(spec.to_json_dict(), model_dir / "model.json")  # NaN-safe rewrite
    plots.write_run_plots(outcome["history"], results, folds, spec.class_names, run_dir)
    _write_sheets(config, spec, network, folds, results, run_dir)
    write_run_readme(run_dir, config, summary["data"], metrics)
    print(format_data_note(summary["data"]), flush=True)


def touched_splits(config: TrainingConfig, folds: dict[str, Fold]) -> list[str] | None:
    """The source's splits that trained or selected the model (``histo evaluate`` refuses to report on them).

    ``data.selection_from_train``: only the source's train split; a source with its own split: its
    train and valid; splits carved from unsplit data: ``None`` (every patch of the root may have).
    """
    if config.data.selection_from_train > 0:
        return ["train"]
    sources = {str(s) for fold in folds.values() for s in (fold.samples.split.tolist() if fold.samples.split
               is not None else [])} - {""}  # fmt: skip
    return sorted(sources - {"test"}) if sources else None


def _calibrate(network, spec, fold: Fold, run_dir: Path, device) -> tuple[ModelSpec, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Fit the softmax temperature on the selection split through the inference engine (with ``spec.tta``).

    Returns the spec with the temperature and the calibration record: ECE before and after on that
    split (optimistic: fitted there; ``histo evaluate`` measures it on an untouched split). The
    reliability plot goes to ``reliability_valid.png``.
    """
    from training.evaluate import fit_temperature, plot_reliability, predict_logits, probabilities
    from training.metrics import expected_calibration_error

    samples = fold.samples if fold.samples.images is not None else fold.samples.with_pixels()
    logits = predict_logits(network, spec, samples.images, device=str(device))  # type: ignore[arg-type]
    temperature = fit_temperature(logits, samples.labels)
    before, after = probabilities(logits, 1.0), probabilities(logits, temperature)
    calibration = {
        "temperature": round(temperature, 4),
        "fitted_on": f"valid (the selection split, {len(samples)} patches)",
        "tta": spec.tta,
        "ece_before": round(expected_calibration_error(samples.labels, before), 4),
        "ece_after": round(expected_calibration_error(samples.labels, after), 4),
        "nll_before": round(_nll(before, samples.labels), 5),
        "nll_after": round(_nll(after, samples.labels), 5),
    }
    plot_reliability(samples.labels, after, run_dir / "reliability_valid.png")
    print(f"temperature {temperature:.3f} fitted on the selection split (ECE {calibration['ece_before']} -> "
          f"{calibration['ece_after']} there)", flush=True)  # fmt: skip
    network.train(False)
    return spec.with_updates(temperature=temperature), calibration


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def _write_sheets(config, spec, network, folds, results, run_dir) -> None:  # type: ignore[no-untyped-def]
    """predictions_<split>.csv, and gradcam_sheet.png or mask_examples.png of the test (else valid) split."""
    from training import sheets

    split = "test" if "test" in results else "valid"
    if split not in results or not len(folds[split].samples):
        return
    if spec.task.value == "segmentation":
        if config.report.mask_examples:
            sheets.write_mask_examples(network, spec, folds[split].samples, run_dir / "mask_examples.png",
                                       split=split, count=config.report.examples_per_class)  # fmt: skip
        return
    for name, (_, probs) in results.items():
        sheets.write_predictions(folds[name].samples, probs, run_dir / f"predictions_{name}.csv")
    if config.report.gradcam_sheet:
        try:
            sheets.write_gradcam_sheet(network, spec, folds[split].samples, results[split][1],
                                       run_dir / "gradcam_sheet.png", split=split,
                                       per_class=config.report.examples_per_class)  # fmt: skip
        except TypeError as exc:  # no spatial feature map (e.g. a ViT): nothing for Grad-CAM to show
            print(f"gradcam_sheet.png not written: {exc}", flush=True)


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
