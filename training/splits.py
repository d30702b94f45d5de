"""Stratified and grouped (slide/patient) splits, class balancing, class weights."""

from __future__ import annotations

import numpy as np

from training.config import DataConfig
from training.samples import DataError, Samples

__all__ = ["balanced_class_weights", "sample_weights", "split_samples", "undersample"]


def split_samples(samples: Samples, config: DataConfig, seed: int = 0) -> dict[str, Samples]:
    """``{"train", "valid"[, "test"]}``: the source's own split when it has one, else a new one.

    New splits are stratified by class; with ``group_by`` slide/patient, whole
    groups go to one split (no patient in both training and validation).
    """
    has_split = samples.split is not None and "train" in set(samples.split.tolist())
    if has_split and config.selection_from_train > 0:
        return _select_from_train(samples, config, seed)
    if has_split:
        parts = {
            name: samples.subset(np.flatnonzero(samples.split == name)) for name in ("train", "valid", "test")
        }
        if len(parts["valid"]) == 0:
            raise DataError(
                "the data has a train split but no valid split; add valid/ or drop the split folders"
            )
        return {k: v for k, v in parts.items() if len(v)}
    rng = np.random.default_rng(seed)
    fractions = (config.valid_fraction, config.test_fraction)
    if config.group_by != "none":
        assign = _group_assign(samples, fractions, rng)
    else:
        assign = _stratified_assign(samples.labels, fractions, rng)
    out = {
        name: samples.subset(np.flatnonzero(assign == i)) for i, name in enumerate(("train", "valid", "test"))
    }
    for name in ("train", "valid"):
        if len(out[name]) == 0:
            raise DataError(
                f"the {name} split is empty ({len(samples)} patches, "
                f"valid_fraction={config.valid_fraction}); "
                "add data or change data.valid_fraction"
            )
    return {k: v for k, v in out.items() if len(v)}


def _stratified_assign(
    labels: np.ndarray, fractions: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    assign = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        n_valid = int(round(len(index) * fractions[0]))
        n_test = int(round(len(index) * fractions[1]))
        if fractions[0] > 0 and len(index) > 1:
            n_valid = max(n_valid, 1)
        assign[index[:n_valid]] = 1
        assign[index[n_valid : n_valid + n_test]] = 2
    return assign


def _group_assign(samples: Samples, fractions: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Whole groups to splits, greedily keeping each split's class mix near the overall one."""
    groups = samples.groups if samples.groups is not None else np.arange(len(samples)).astype(str)
    names, inverse = np.unique(groups, return_inverse=True)
    if len(names) < 2:
        raise DataError(f"group split needs at least two slides/patients, got {list(names)}")
    n_classes = len(samples.class_names)
    per_group = np.zeros((len(names), n_classes))
    np.add.at(per_group, (inverse, samples.labels), 1)
    total = per_group.sum(0)
    targets = [total * fractions[0], total * fractions[1]]
    have = [np.zeros(n_classes), np.zeros(n_classes)]
    group_split = np.zeros(len(names), dtype=np.int64)
    for g in rng.permutation(len(names)):
        for s in (0, 1):
            gain = np.minimum(per_group[g], np.maximum(targets[s] - have[s], 0)).sum()
            if gain > 0.5 * per_group[g].sum():
                group_split[g] = s + 1
                have[s] += per_group[g]
                break
    if fractions[0] > 0 and not (group_split == 1).any():
        group_split[rng.integers(len(names))] = 1
    return group_split[inverse]


def undersample(samples: Samples, seed: int = 0) -> Samples:
    """Random undersampling of every class to the smallest class's count."""
    rng = np.random.default_rng(seed)
    n = min(samples.counts().values())
    keep = [
        rng.choice(np.flatnonzero(samples.labels == c), n, replace=False)
        for c in range(len(samples.class_names))
    ]
    return samples.subset(np.sort(np.concatenate(keep)))


def cap_per_class(samples: Samples, n: int, seed: int = 0) -> Samples:
    """At most ``n`` random patches of each class (quick runs); ``n <= 0`` keeps all."""
    if n <= 0:
        return samples
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(samples.class_names)):
        index = np.flatnonzero(samples.labels == c)
        keep.append(rng.choice(index, min(n, len(index)), replace=False))
    return samples.subset(np.sort(np.concatenate(keep)))


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k * count_c)`` per class (sklearn's "balanced"), float32 (k,)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return (len(labels) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


def sample_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights for a weighted sampler that draws every class equally often."""
    return balanced_class_weights(labels, n_classes)[labels].astype(np.float64)


def _select_from_train(samples: Samples, config: DataConfig, seed: int) -> dict[str, Samples]:
    """The source's train split cut into train and a selection split (``valid``); nothing else is used.

    The source's other splits (PCam's valid ...) are left out of the run entirely, so the split that
    chooses epochs and the temperature is never the one reported (``histo evaluate`` reports on them).
    """
    train = samples.subset(np.flatnonzero(samples.split == "train"))
    left_out = sorted({str(s) for s in samples.split.tolist()} - {"train"})  # type: ignore[union-attr]
    fractions = (config.selection_from_train, 0.0)
    rng = np.random.default_rng([seed, 11])
    if config.group_by != "none":
        assign = _group_assign(train, fractions, rng)
    else:
        assign = _stratified_assign(train.labels, fractions, rng)
    out = {name: train.subset(np.flatnonzero(assign == i)) for i, name in enumerate(("train", "valid"))}
    for name in ("train", "valid"):
        if len(out[name]) == 0:
            raise DataError(
                f"data.selection_from_train = {config.selection_from_train}: the {name} split is empty "
                f"({len(train)} training patches); add data or change the fraction"
            )
    shown = ", ".join(repr(n) for n in left_out if n) or "none"
    print(f"selection split: {len(out['valid'])} patches carved from the source's train split "
          f"(data.selection_from_train = {config.selection_from_train}); source splits left out, untouched: "
          f"{shown}", flush=True)  # fmt: skip
    return out
