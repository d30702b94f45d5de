"""Classification and segmentation metrics in numpy (checked against scikit-learn in the tests).

``classification_metrics`` returns a flat JSON-ready dict: accuracy, balanced
accuracy, macro F1, ROC-AUC (binary, or macro one-vs-rest), per-class
precision/recall/F1 and, for two classes, sensitivity and specificity of the
positive (second) class, plus the confusion matrix.  ``expected_calibration_error`` and
``reliability_bins`` measure calibration; ``bootstrap_intervals`` gives percentile
bootstrap confidence intervals of any of these (stratified, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "bootstrap_intervals",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "reliability_bins",
    "roc_auc",
    "roc_curve",
    "segmentation_metrics",
]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 (k, k): rows are true classes, columns predicted ones."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (ties kept together), starting at (0, 0)."""
    y_true = np.asarray(y_true).astype(bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    score, y_true = np.asarray(score, dtype=np.float64)[order], y_true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(y_true)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    pos, neg = max(y_true.sum(), 1), max((~y_true).sum(), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids); NaN when only one class is present."""
    y_true = np.asarray(y_true).astype(bool)
    if y_true.all() or not y_true.any():
        return float("nan")
    fpr, tpr = roc_curve(y_true, score)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """All classification metrics from true labels (n,) and class probabilities (n, k)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    precision = _ratio(tp, cm.sum(0))
    recall = _ratio(tp, cm.sum(1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = cm.sum(1) > 0
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "f1_macro": float(f1.mean()),
    }
    if k == 2:
        out["roc_auc"] = roc_auc(y_true == 1, probs[:, 1])
        out["sensitivity"] = float(recall[1])
        out["specificity"] = float(recall[0])
        out["precision"], out["recall"], out["f1"] = float(precision[1]), float(recall[1]), float(f1[1])
    else:
        aucs = [roc_auc(y_true == c, probs[:, c]) for c in range(k)]
        out["roc_auc"] = float(np.nanmean(aucs)) if not np.isnan(aucs).all() else float("nan")
        out["roc_auc_per_class"] = {n: a for n, a in zip(class_names, aucs)}
    out["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(cm[i].sum())}
        for i, name in enumerate(class_names)
    }  # fmt: skip
    out["confusion_matrix"] = cm.tolist()
    return out


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label calibration in ``n_bins`` equal-width confidence bins over (1/k, 1].

    Returns ``count`` (int64), ``confidence`` and ``accuracy`` (float64, NaN in empty bins)
    per bin, and the bin ``edges`` (n_bins + 1).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    edges = np.linspace(1.0 / probs.shape[1], 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| of the top class over equal-width bins."""
    if len(y_true) == 0:
        return float("nan")
    bins = reliability_bins(y_true, probs, n_bins)
    filled = bins["count"] > 0
    gap = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(bins["count"][filled] * gap) / len(y_true))


def bootstrap_intervals(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], *, n_boot: int = 1000,
    seed: int = 0, level: float = 0.95, keys: Sequence[str] = (), n_bins: int = 15,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Percentile bootstrap confidence intervals of :func:`classification_metrics` (+ ``ece``).

    Every resample draws, within each true class, as many patches as the class has (with
    replacement), so the class mix stays that of the data.  Returns ``{metric: {"value",
    "low", "high"}}`` for the scalar metrics (or just ``keys``); ``n_boot=0`` gives no interval.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)

    def scalars(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        m = classification_metrics(y, p, class_names)
        m["ece"] = expected_calibration_error(y, p, n_bins)
        return {k: float(v) for k, v in m.items() if isinstance(v, float) and (not keys or k in keys)}

    point = scalars(y_true, probs)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y_true == c) for c in range(len(class_names))]
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(max(0, int(n_boot))):
        pick = np.concatenate([idx[rng.integers(0, len(idx), len(idx))] for idx in by_class if len(idx)])
        for k, v in scalars(y_true[pick], probs[pick]).items():
            draws[k].append(v)
    tail = (1 - level) / 2 * 100
    out = {}
    for k, v in point.items():
        values = np.asarray(draws[k], dtype=np.float64)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        out[k] = {"value": v, "low": float(low), "high": float(high)}
    return out


def segmentation_metrics(
    intersection: np.ndarray, union: np.ndarray, pred_sum: np.ndarray, true_sum: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """IoU and Dice per class and averaged (over foreground classes when there are two) from pixel counts.

    All inputs are (k,) pixel counts accumulated over a whole split (micro
    over images, as the literature reports test IoU).
    """
    iou = _ratio(intersection, union)
    dice = _ratio(2 * intersection, pred_sum + true_sum)
    fg = slice(1, None) if len(class_names) == 2 else slice(None)
    return {
        "iou": float(iou[fg].mean()),
        "dice": float(dice[fg].mean()),
        "per_class": {n: {"iou": float(iou[i]), "dice": float(dice[i])} for i, n in enumerate(class_names)},
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
