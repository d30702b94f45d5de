"""``histo evaluate``: a model directory measured once on a labelled split that did not choose it.

The protocol this module enforces (issue 16):

* the split reported is never the one that selected epochs, thresholds or the
  temperature: :func:`check_untouched` reads the model's provenance (data root, the
  splits it trained and selected on) and refuses a split the model has seen, unless
  told ``allow_touched`` (the figures are then marked ``"touched": true``);
* patches are de-duplicated on md5 across all splits (copies of training patches
  leave the reported split), and near-duplicates (re-encoded, flipped, rotated) of
  the other splits are counted (:mod:`training.dedup`);
* every metric comes with a seeded, stratified percentile bootstrap 95 % interval;
* calibration: the expected calibration error and a reliability plot; a temperature
  fitted on another split (:func:`fit_temperature`) is applied before the softmax;
* test-time augmentation follows the model's ``tta`` (``dihedral8``: the mean over
  the 8 rotations/flips) unless overridden; the inference is the engine's
  (:func:`napari_histo.models.engine.forward_logits`), the one ``histo predict`` uses.

Writes ``metrics.json``, ``reliability.png``, ``confusion.png`` and ``predictions.csv``.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.errors import HistoError
from training.data import load_split_samples
from training.metrics import (
    bootstrap_intervals,
    classification_metrics,
    expected_calibration_error,
    reliability_bins,
)
from training.samples import DataError, Samples

__all__ = [
    "REPORTED_METRICS",
    "EvaluationResult",
    "TouchedSplitError",
    "check_untouched",
    "evaluate_model",
    "fit_temperature",
    "format_table",
    "load_split_samples",
    "probabilities",
]

#: the repository the paths of new model.json provenance are relative to
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the metrics reported with intervals, in table order
REPORTED_METRICS = (
    "accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "f1", "f1_macro", "ece",
)  # fmt: skip


class TouchedSplitError(HistoError, ValueError):
    """The split asked for trained or selected the model: its figures would flatter it."""


# ---------------------------------------------------------------- data
# ---------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Provenance:
    """What a model.json says about the data the model saw."""

    data_root: Path | None
    touched_splits: frozenset[str] | None  # None: not recorded
    carved: bool  # the training split its own train/valid from all the data (no split column)
    note: str


def training_provenance(spec: Any) -> Provenance:
    """The training data root and the splits that trained or selected the model, from its provenance.

    New runs may write ``provenance.touched_splits`` (the splits that trained the model or chose
    its epochs, thresholds or temperature); older ones are read as: every split in
    ``provenance.counts`` but ``test`` (``histo train`` selects on ``valid``).  Paths: the recipe
    absolute (older models) or relative to the repository (``paths_relative_to``), ``data.root``
    relative to the recipe's folder.
    """
    prov = spec.provenance or {}
    config = prov.get("config") or {}
    data = config.get("data") or {}
    source = str(data.get("source", ""))
    if not data or source.startswith("synthetic"):
        return Provenance(None, None, False, "model.json records no training data on disk")
    recipe = prov.get("recipe") or config.get("recipe_path") or ""
    root = data.get("root") or ""
    data_root = None
    recipe_path = Path(recipe) if Path(recipe).is_absolute() else REPO_ROOT / recipe
    if Path(root).is_absolute():
        data_root = Path(root)
    elif recipe and (recipe_path.exists() or Path(recipe).is_absolute()):
        data_root = (recipe_path.parent / root).resolve()
    else:
        return Provenance(None, None, False, f"its recipe {recipe!r} is not in this repository")
    touched = prov.get("touched_splits")
    if isinstance(touched, list):
        splits: frozenset[str] | None = frozenset(str(s) for s in touched)
    elif isinstance(prov.get("counts"), dict):
        splits = frozenset(k for k in prov["counts"] if k != "test")
    else:
        splits = None
    carved = bool(isinstance(prov.get("counts"), dict) and not _has_split_column(data_root))
    return Provenance(data_root, splits, carved, "")


def _has_split_column(root: Path | None) -> bool:
    if root is None or not root.exists():
        return True  # cannot tell: assume the source's own split
    csv_path = root / "labels.csv"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        return "split" in header
    return any((root / s).is_dir() for s in ("train", "valid", "test"))


def _same_data(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    ca, cb = a / "labels.csv", b / "labels.csv"
    return ca.is_file() and cb.is_file() and ca.read_bytes() == cb.read_bytes()


def check_untouched(spec: Any, data_root: str | Path, split: str) -> tuple[str, str]:
    """(``"untouched"`` | ``"touched"`` | ``"unknown"``, why) for reporting ``split`` of ``data_root``."""
    prov = training_provenance(spec)
    if prov.data_root is None:
        return "unknown", f"cannot verify that {split!r} is untouched: {prov.note or 'no data root recorded'}"
    if not prov.data_root.exists():
        if prov.data_root.name == Path(data_root).resolve().name:
            return "unknown", (
                f"the model was trained on {prov.data_root} (not found here), a folder of the same name as "
                f"{data_root}: cannot verify that {split!r} did not train or select it"
            )
        return "untouched", f"the model was trained on other data ({prov.data_root})"
    if not _same_data(prov.data_root, Path(data_root)):
        return "untouched", f"the model was trained on other data ({prov.data_root})"
    if prov.carved:
        return "touched", (
            f"the model split its training and selection patches out of all of {data_root}, so every split "
            "of it trained or selected the model"
        )
    if prov.touched_splits is None:
        return "unknown", f"model.json does not record which splits of {data_root} trained or selected it"
    if split == "all" or split in prov.touched_splits:
        return "touched", (
            f"split {split!r} of {data_root} trained the model or chose its epochs/thresholds/temperature "
            f"(touched splits: {sorted(prov.touched_splits)})"
        )
    return "untouched", f"split {split!r} neither trained nor selected the model (its splits: " + (
        f"{sorted(prov.touched_splits)})"
    )


# ---------------------------------------------------------------- inference and calibration
def predict_logits(network: Any, spec: Any, images: np.ndarray, *, device: str = "auto",
                   batch_size: int = 256) -> np.ndarray:  # fmt: skip
    """float32 logits (views, n, C) with the engine's preprocessing and ``spec.tta``."""
    from napari_histo.models.engine import forward_logits
    from napari_histo.models.loading import resolve_device

    resolved = resolve_device(device)
    network = network.to(resolved).eval()
    parts = [
        forward_logits(network, images[s : s + batch_size], spec, device=resolved)
        for s in range(0, len(images), max(1, batch_size))
    ]
    if not parts:
        return np.zeros((1, 0, spec.num_classes), np.float32)
    return np.concatenate(parts, axis=1)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(n, C): softmax(logits / T) averaged over the views (axis 0) of (views, n, C) logits."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(-1, keepdims=True)).mean(0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (1-D bounded search).

    ``logits`` are (n, C) or (views, n, C) (the probabilities then average the views, as inference
    does).  Fit it on the selection split, never on the split reported.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    logits = logits[None] if logits.ndim == 2 else logits
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise DataError("no patches to fit a temperature on")

    def nll(log_t: float) -> float:
        p = probabilities(logits, float(np.exp(log_t)))[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                            options={"xatol": 1e-4})  # fmt: skip
    return float(np.exp(found.x))


# ---------------------------------------------------------------- evaluation
@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    probabilities: np.ndarray
    labels: np.ndarray
    samples: Samples
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)


def evaluate_model(
    model: str | Path, data: str | Path, split: str = "valid", *, tta: bool | None = None,
    temperature: float | None = None, fit_split: str | None = None, bootstrap: int = 1000, seed: int = 0,
    allow_touched: bool = False, near_duplicates: bool = True, device: str = "auto", batch_size: int = 256,
    max_per_class: int = 0, out_dir: str | Path | None = None, echo: Any = print,
) -> EvaluationResult:  # fmt: skip
    """Measure a model directory (or built-in name) on ``split`` of the labelled data root ``data``.

    Refuses (:class:`TouchedSplitError`) a split the model's provenance says trained or selected
    it, unless ``allow_touched``; then ``metrics["touched"]`` is true and a warning is printed.
    ``fit_split`` fits the temperature on another split of ``data`` (never ``split``);
    ``temperature`` sets it; otherwise the model's own is used.
    """
    from napari_histo.models.loading import load_model, resolve_model_dir
    from napari_histo.models.spec import load_spec
    from training.splits import cap_per_class

    started = time.perf_counter()
    model_dir = resolve_model_dir(model)
    spec = load_spec(model_dir)
    if tta is not None:
        spec = spec.with_updates(tta="dihedral8" if tta else "none")
    if fit_split is not None and fit_split == split:
        raise TouchedSplitError(
            f"--fit-temperature {fit_split}: the temperature must be fitted on another split than the one "
            f"reported ({split}); fit it on the selection split"
        )
    status, why = check_untouched(spec, data, split)
    if status == "touched" and not allow_touched:
        raise TouchedSplitError(
            f"refusing to report on {split!r}: {why}. Report on a split the model never saw, or pass "
            "--allow-touched to measure it anyway (marked touched: such figures flatter the model)"
        )
    if status != "untouched":
        echo(f"WARNING: {why}; these figures are {'TOUCHED' if status == 'touched' else 'UNVERIFIED'}")
    samples = load_split_samples(data, split, spec.class_names)
    samples = cap_per_class(samples, max_per_class, seed)
    samples = samples.with_pixels((spec.patch_size_pixels, spec.patch_size_pixels))
    network = load_model(model_dir, device, spec=spec)
    logits = predict_logits(network, spec, samples.images, device=device, batch_size=batch_size)  # type: ignore[arg-type]
    calibration: dict[str, Any] = {"temperature_in_model": spec.temperature}
    if fit_split is not None:
        fit_samples = load_split_samples(data, fit_split, spec.class_names)
        fit_samples = cap_per_class(fit_samples, max_per_class, seed)
        fit_samples = fit_samples.with_pixels((spec.patch_size_pixels, spec.patch_size_pixels))
        fit_logits = predict_logits(network, spec, fit_samples.images, device=device, batch_size=batch_size)  # type: ignore[arg-type]
        temperature = fit_temperature(fit_logits, fit_samples.labels)
        calibration |= {"fitted_on": fit_split, "fitted_n": len(fit_samples)}
    used_t = spec.temperature if temperature is None else float(temperature)
    probs = probabilities(logits, used_t)
    labels = samples.labels
    metrics: dict[str, Any] = {
        "model": spec.name or model_dir.name,
        "data": str(data),
        "split": split,
        "touched": status == "touched",
        "protocol": {"status": status, "why": why},
        "tta": spec.tta,
        "temperature": used_t,
        "n": int(len(labels)),
        "counts": samples.counts(),
        "deduplicated": "md5 across all splits (copies of training patches removed)",
    }
    full = classification_metrics(labels, probs, spec.class_names)
    metrics["ece"] = expected_calibration_error(labels, probs)
    calibration["ece_at_temperature_1"] = expected_calibration_error(labels, probabilities(logits, 1.0))
    calibration["ece"] = metrics["ece"]
    metrics["calibration"] = calibration
    intervals = bootstrap_intervals(labels, probs, spec.class_names, n_boot=bootstrap, seed=seed,
                                    keys=REPORTED_METRICS)  # fmt: skip
    metrics["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 0.95,
                            "method": "percentile, stratified by class"}  # fmt: skip
    metrics["metrics"] = {k: intervals[k] for k in REPORTED_METRICS if k in intervals}
    metrics["confusion_matrix"] = full["confusion_matrix"]
    metrics["per_class"] = full["per_class"]
    if near_duplicates:
        metrics["near_duplicates"] = _near_duplicates(data, split, samples, spec.class_names, echo)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    result = EvaluationResult(metrics, probs, labels, samples)
    if out_dir is not None:
        result.out_dir = Path(out_dir)
        result.files = write_outputs(result, spec.class_names, Path(out_dir))
    return result


def _near_duplicates(data: str | Path, split: str, samples: Samples, class_names: tuple[str, ...],
                     echo: Any) -> list[dict[str, object]]:  # fmt: skip
    from training.dedup import find_near_duplicates

    everything = load_split_samples(data, "all", class_names)
    others = sorted({str(s) for s in everything.split} - {split, ""}) if everything.split is not None else []
    out = []
    for other in others:
        part = everything.subset(np.flatnonzero(everything.split == other))
        found = find_near_duplicates(samples.images, part.paths or part.with_pixels().images,  # type: ignore[arg-type]
                                     names=(split, other))  # fmt: skip
        echo(found.line())
        out.append(found.to_dict())
    return out


def write_outputs(result: EvaluationResult, class_names: tuple[str, ...], out_dir: Path) -> list[Path]:
    """metrics.json, reliability.png, confusion.png and predictions.csv in ``out_dir``."""
    from training.plots import plot_confusion
    from training.report import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [write_json(result.metrics, out_dir / "metrics.json")]
    files.append(plot_reliability(result.labels, result.probabilities, out_dir / "reliability.png",
                                  title=f"{result.metrics['split']} (n={result.metrics['n']}), "
                                        f"T={result.metrics['temperature']:.3g}"))  # fmt: skip
    files.append(plot_confusion(np.array(result.metrics["confusion_matrix"]), class_names,
                                out_dir / "confusion.png"))  # fmt: skip
    path = out_dir / "predictions.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "predicted", *[f"p_{n}" for n in class_names]])
        names = result.samples.paths or [f"patch {i}" for i in range(len(result.labels))]
        for name, y, p in zip(names, result.labels, result.probabilities):
            writer.writerow([name, class_names[y], class_names[int(p.argmax())], *[f"{v:.6f}" for v in p]])
    files.append(path)
    return files


def plot_reliability(labels: np.ndarray, probs: np.ndarray, path: Path, *, n_bins: int = 15,
                     title: str = "") -> Path:  # fmt: skip
    """Reliability diagram: accuracy against confidence per bin, with the patch counts below."""
    from training.plots import _pyplot, _save

    plt = _pyplot()
    bins = reliability_bins(labels, probs, n_bins)
    centres = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    width = np.diff(bins["edges"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    filled = bins["count"] > 0
    top.bar(centres[filled], bins["accuracy"][filled], width=width[filled] * 0.9, label="accuracy",
            color="#0072B2", edgecolor="black")  # fmt: skip
    top.plot(bins["confidence"][filled], bins["confidence"][filled], "o", color="#D55E00", ms=4,
             label="mean confidence")  # fmt: skip
    top.plot([bins["edges"][0], 1], [bins["edges"][0], 1], "k--", lw=1, label="perfect calibration")
    ece = expected_calibration_error(labels, probs, n_bins)
    top.set(ylabel="accuracy", ylim=(0, 1), title=f"{title}  ECE {ece:.3f}".strip())
    top.legend(loc="upper left")
    bottom.bar(centres, bins["count"], width=width * 0.9, color="grey")
    bottom.set(xlabel="confidence (top class probability)", ylabel="patches", yscale="log")
    return _save(fig, plt, path)


def format_table(metrics: dict[str, Any]) -> str:
    """The metrics with their intervals, one per line."""
    lines = [
        f"{metrics['model']} on {metrics['split']} (n={metrics['n']}, tta={metrics['tta']}, "
        f"T={metrics['temperature']:.3g}){'  [TOUCHED]' if metrics['touched'] else ''}",
        f"{'metric':<18} {'value':>7}   95% CI (bootstrap, {metrics['bootstrap']['resamples']})",
    ]
    for name, m in metrics["metrics"].items():
        lines.append(f"{name:<18} {m['value']:7.4f}   [{m['low']:.4f}, {m['high']:.4f}]")
    cm = metrics["confusion_matrix"]
    lines.append(f"confusion (rows true, columns predicted): {cm}")
    return "\n".join(lines)
