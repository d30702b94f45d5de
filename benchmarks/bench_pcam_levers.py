"""Which levers pay on PCam: each one trained at the same short budget, measured on the selection split.

Issue 16 asks to measure every lever of the shipped model on the selection split (never the split
reported) and keep only what pays.  A full training is ~45 minutes on 2 CPU cores, so this script
trains every variant of ``training/recipes/pcam_mobilenetv2.yaml`` at one reduced budget (by
default 3,000 training patches per class, one head epoch and three whole-network epochs) with the
same seed, the same carved selection split and the same order of batches, and differs in one lever:

    baseline      the shipped recipe (MobileNetV2, 96 px, flips/rotations, HED jitter 0.05)
    no_hed        without the HED stain jitter (what stain augmentation buys)
    macenko       + Macenko stain normalisation fitted on the training split
    upsample144   the 96 px patches upsampled to 144 px at the input
    lite0         the ImageNet EfficientNet-Lite0 backbone instead of MobileNetV2

Every variant is measured on the selection split without and with the 8-fold dihedral TTA, then
ensembles (mean probability of two variants) are measured from the same predictions.  Differences
to the baseline have paired bootstrap 95 % intervals (the same resampled patches for both).  A
lever "pays" when its interval of the AUC difference lies above zero.

Caveat printed with the table: the selection split is carved out of PCam's train split, so it
shares slides with the training patches and flatters every variant alike (the shipped model scores
0.95 accuracy there and 0.894 on PCam's untouched valid split); the ranking, not the level, is the
result.  Runs are kept in ``--out`` and reused when their settings match (delete a folder to redo).

    .venv/bin/python benchmarks/bench_pcam_levers.py [--levers baseline lite0 ...] [--per-class 3000]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "training" / "recipes" / "pcam_mobilenetv2.yaml"
WEIGHTS = ROOT.parent / "shared" / "data" / "weights"

LEVERS: dict[str, list[str]] = {
    "baseline": [],
    "no_hed": ["augment.hed_sigma=0.0"],
    "macenko": ["augment.stain_normalize=macenko"],
    "upsample144": ["model.input_size=144"],
    "lite0": [
        "model.architecture=tf_efficientnet_lite0",
        f"model.weights={WEIGHTS / 'efficientnet-lite0-57934424.pth'}",
    ],
}


def budget(per_class: int, epochs: int) -> list[str]:
    phases = (
        "[{epochs: 1, trainable: head, optimizer: adam, lr: 1.0e-3}, "
        f"{{epochs: {epochs}, trainable: all, optimizer: adamw, lr: 5.0e-4, weight_decay: 1.0e-4, "
        "scheduler: cosine}]"
    )
    return [f"data.max_per_class={per_class}", f"train.phases={phases}", "train.calibrate=false"]


def train_variant(name: str, overrides: list[str], out: Path) -> tuple[Path, float]:
    """Train (or reuse) one variant; returns its run folder and the training seconds."""
    from training.config import load_config
    from training.run import train

    run_dir = out / name
    stamp = run_dir / "bench_settings.json"
    if (run_dir / "model" / "model.json").exists() and stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved["overrides"] == overrides:
            print(f"{name}: reusing {run_dir} (trained in {saved['seconds']:.0f} s)", flush=True)
            return run_dir, float(saved["seconds"])
    print(f"{name}: training with {overrides[3:] or 'the recipe as it is'} ...", flush=True)
    config = load_config(RECIPE, [f"output_dir={out}", f"name={name}", *overrides])
    started = time.perf_counter()
    train(config, progress=False)
    seconds = time.perf_counter() - started
    stamp.write_text(json.dumps({"overrides": overrides, "seconds": seconds}))
    print(f"{name}: trained in {seconds:.0f} s", flush=True)
    return run_dir, seconds


def selection_split(run_dir: Path) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """The selection patches (paths, labels) as the run wrote them (``predictions_valid.csv``)."""
    with open(run_dir / "predictions_valid.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = tuple(k.removeprefix("prob_") for k in rows[0] if k.startswith("prob_"))
    return [r["patch"] for r in rows], np.array([names.index(r["true"]) for r in rows]), names


def selection_probabilities(run_dir: Path, paths: list[str]) -> dict[str, np.ndarray]:
    """(n, C) probabilities on the selection patches without and with the dihedral TTA."""
    from PIL import Image

    from napari_histo.models import load_model, load_spec
    from training.evaluate import predict_logits, probabilities

    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    spec = load_spec(run_dir / "model")
    network = load_model(run_dir / "model", device="cpu")
    return {
        tta: probabilities(predict_logits(network, spec.with_updates(tta=tta), images, device="cpu"))
        for tta in ("none", "dihedral8")
    }


def paired_delta(y: np.ndarray, base: np.ndarray, other: np.ndarray, n_boot: int, seed: int) -> dict:
    """Accuracy and AUC of ``other`` minus ``base`` on the same patches, with paired 95 % intervals."""
    from training.metrics import roc_auc

    def both(idx: np.ndarray) -> tuple[float, float]:
        acc = float((other[idx].argmax(1) == y[idx]).mean() - (base[idx].argmax(1) == y[idx]).mean())
        auc = roc_auc(y[idx], other[idx, 1]) - roc_auc(y[idx], base[idx, 1])
        return acc, float(auc)

    point = both(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    draws = np.array([
        both(np.concatenate([i[rng.integers(0, len(i), len(i))] for i in by_class])) for _ in range(n_boot)
    ])  # fmt: skip
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {
        "accuracy": {"delta": point[0], "low": float(low[0]), "high": float(high[0])},
        "roc_auc": {"delta": point[1], "low": float(low[1]), "high": float(high[1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--per-class", type=int, default=3000, help="training patches per class (cap)")
    parser.add_argument("--epochs", type=int, default=3, help="whole-network epochs after the head epoch")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default="bench-out/pcam_levers")
    args = parser.parse_args()
    if "baseline" not in args.levers:
        args.levers.insert(0, "baseline")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shared = budget(args.per_class, args.epochs)

    probs: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    paths, y, names = [], np.zeros(0), ()
    for name in args.levers:
        run_dir, seconds[name] = train_variant(name, shared + LEVERS[name], out)
        these, labels, names = selection_split(run_dir)
        if paths and these != paths:
            raise SystemExit(
                f"{name}: its selection split differs from the baseline's; the comparison is void"
            )
        paths, y = these, labels
        probs[name] = selection_probabilities(run_dir, paths)
    for name in args.levers[1:]:  # ensembles: the baseline with each other variant (TTA on both)
        probs[f"baseline+{name}"] = {
            t: (probs["baseline"][t] + probs[name][t]) / 2 for t in ("none", "dihedral8")
        }

    from training.metrics import roc_auc

    base = probs["baseline"]["dihedral8"]
    rows = []
    for name, p in probs.items():
        row = {"variant": name, "train_s": seconds.get(name)}
        for tta, q in p.items():
            row[f"acc_{tta}"] = float((q.argmax(1) == y).mean())
            row[f"auc_{tta}"] = float(roc_auc(y, q[:, 1]))
        row["vs_baseline"] = (
            None if name == "baseline" else paired_delta(y, base, p["dihedral8"], args.bootstrap, 0)
        )
        rows.append(row)
    report = {
        "n_selection": int(len(y)), "classes": list(names), "per_class": args.per_class,
        "epochs": args.epochs, "budget_overrides": shared, "levers": {k: LEVERS[k] for k in args.levers},
        "rows": rows,
    }  # fmt: skip
    (out / "levers.json").write_text(json.dumps(report, indent=1))

    print(f"\nselection split (carved from PCam train), n = {len(y)}; every variant: {args.per_class} "
          f"train patches per class, 1 head + {args.epochs} whole-network epochs, seed 0")  # fmt: skip
    print(f"{'variant':<22} {'train s':>7}  {'acc':>6} {'AUC':>6}  {'acc TTA':>7} {'AUC TTA':>7}  "
          "Δacc vs baseline [95% CI]   ΔAUC vs baseline [95% CI]   pays?")  # fmt: skip
    for r in rows:
        t = "" if r["train_s"] is None else f"{r['train_s']:.0f}"
        line = (f"{r['variant']:<22} {t:>7}  {r['acc_none']:.4f} {r['auc_none']:.4f}  "
                f"{r['acc_dihedral8']:.4f}  {r['auc_dihedral8']:.4f}  ")  # fmt: skip
        d = r["vs_baseline"]
        if d:
            a, u = d["accuracy"], d["roc_auc"]
            pays = "yes" if u["low"] > 0 else ("worse" if u["high"] < 0 else "no (within noise)")
            line += (f"{a['delta']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}]  "
                     f"{u['delta']:+.4f} [{u['low']:+.4f}, {u['high']:+.4f}]  {pays}")  # fmt: skip
        print(line)
    print("\nThe selection split shares slides with the training patches, so every figure here flatters "
          "alike; compare rows, not levels. Written:", out / "levers.json")  # fmt: skip


if __name__ == "__main__":
    main()
