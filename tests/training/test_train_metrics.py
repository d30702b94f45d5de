"""Metrics against scikit-learn on fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from training.metrics import classification_metrics, confusion_matrix, roc_auc, segmentation_metrics


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.35 + rng.uniform(0, 0.65, 200), 0, 1).round(2)  # ties on purpose
    return y, np.stack([1 - p1, p1], 1)


def test_binary_metrics_match_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, probs = binary
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, ["normal", "tumour"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()


def test_multiclass_one_vs_rest_auc_and_per_class() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(0, 1, (300, 4)) + np.eye(4)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = ["normal", "benign", "in_situ", "invasive"]
    m = classification_metrics(y, probs, names)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    p, r, f, s = skm.precision_recall_fscore_support(y, probs.argmax(1))
    for i, name in enumerate(names):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]


def test_auc_is_nan_with_one_class_and_confusion_counts() -> None:
    assert np.isnan(roc_auc(np.ones(5), np.linspace(0, 1, 5)))
    assert confusion_matrix(np.array([0, 1, 1]), np.array([1, 1, 0]), 2).tolist() == [[0, 1], [1, 1]]


def test_segmentation_iou_and_dice_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (4, 16, 16))
    pred = np.where(rng.uniform(size=truth.shape) < 0.8, truth, 1 - truth)
    k = 2
    counts = [
        np.array([f(c) for c in range(k)], dtype=float)
        for f in (
            lambda c: ((pred == c) & (truth == c)).sum(),
            lambda c: ((pred == c) | (truth == c)).sum(),
            lambda c: (pred == c).sum(),
            lambda c: (truth == c).sum(),
        )
    ]
    m = segmentation_metrics(*counts, class_names=["other", "stroma"])
    assert m["iou"] == pytest.approx(skm.jaccard_score(truth.ravel(), pred.ravel()))
    assert m["dice"] == pytest.approx(skm.f1_score(truth.ravel(), pred.ravel()))
