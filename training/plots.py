"""PNG reports with matplotlib's Agg back-end: learning curves, ROC curves, confusion matrix."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.metrics import roc_curve

__all__ = ["learning_curves_figure", "plot_confusion", "plot_learning_curves", "plot_roc", "write_run_plots"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training and validation loss, and the validation metrics, per epoch."""
    plt = _pyplot()
    return _save(learning_curves_figure(history), plt, path)


def learning_curves_figure(history: Sequence[dict[str, Any]]) -> Any:
    """The figure :func:`plot_learning_curves` saves: loss (left), metrics (right), whole epochs."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["global_epoch"] + 1 for r in history]
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    left.plot(epochs, [r["val_loss"] for r in history], "o-", label="valid loss")
    left.set(xlabel="epoch", ylabel="loss")
    left.legend()
    for key in (
        "val_accuracy",
        "val_balanced_accuracy",
        "val_roc_auc",
        "val_f1_macro",
        "val_iou",
        "val_dice",
    ):
        if history and key in history[0]:
            right.plot(epochs, [r.get(key, np.nan) for r in history], "o-", label=key.removeprefix("val_"))
    right.set(xlabel="epoch", ylabel="validation metric", ylim=(0, 1))
    right.legend()
    for change in [
        r["global_epoch"] + 0.5 for a, r in itertools.pairwise(history) if a["phase"] != r["phase"]
    ]:
        left.axvline(change, color="grey", ls=":")
        right.axvline(change, color="grey", ls=":")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if epochs:  # at least one whole epoch wide, so a single epoch still gets an integer tick
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    return fig


def plot_roc(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """ROC curve of the positive class (two classes) or one curve per class (one-vs-rest)."""
    from training.metrics import roc_auc

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    classes = [1] if len(class_names) == 2 else range(len(class_names))
    for c in classes:
        truth = labels == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr = roc_curve(truth, probs[:, c])
        ax.plot(fpr, tpr, label=f"{class_names[c]} (AUC {roc_auc(truth, probs[:, c]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    return _save(fig, plt, path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    plt = _pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 3, 1.2 * len(class_names) + 2.5))
    ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true")
    return _save(fig, plt, path)


def write_run_plots(history: Any, results: dict[str, Any], folds: dict[str, Any], class_names: Any,
                    run_dir: Path) -> list[Path]:  # fmt: skip
    """learning_curves.png, and per evaluated split roc_<split>.png and confusion_<split>.png."""
    out = []
    if history:
        out.append(plot_learning_curves(history, run_dir / "learning_curves.png"))
    for split, (metrics, probs) in results.items():
        if "confusion_matrix" in metrics:
            out.append(plot_confusion(np.array(metrics["confusion_matrix"]), class_names,
                                      run_dir / f"confusion_{split}.png"))  # fmt: skip
            out.append(
                plot_roc(folds[split].samples.labels, probs, class_names, run_dir / f"roc_{split}.png")
            )
    return out


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
