"""MIL on real pixels: ABMIL (and CLAM-SB, TransMIL) on bags of real PCam patches.

Bags of 32-64 real 96 px PCam patches; a positive bag holds 1-5 tumour patches, a negative bag
none.  400 training bags from PCam's train patches (80 of them the selection split for early
stopping), 200 test bags from PCam's valid patches.  Patches are embedded once with the
ImageNet MobileNetV2 (features cached under $HISTO_PCAM_BAGS_CACHE or the temp folder).  Prints, per
architecture, the test bag ROC AUC with a bootstrap 95 % interval and how well attention ranks
the tumour patches of the positive test bags (ROC AUC of attention vs patch label).

    .venv/bin/python benchmarks/bench_mil_pcam.py [--arch abmil clam_sb transmil] [--out bench-out/pcam_bags]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.pcam_bags import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["abmil", "clam_sb", "transmil"])
    parser.add_argument("--out", default="bench-out/pcam_bags")
    parser.add_argument("--train-bags", type=int, default=400)
    parser.add_argument("--test-bags", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="recipe override key=value"
    )
    args = parser.parse_args()
    rows = []
    for arch in args.arch:
        result = run_experiment(
            Path(args.out),
            arch,
            args.train_bags,
            args.test_bags,
            seed=args.seed,
            overrides=tuple(args.overrides),
            progress=False,
        )
        rows.append(result)
        print(json.dumps(result, indent=1), flush=True)
    print(
        "\narchitecture  bag AUC [95% CI]        bag acc  attention AUC pooled / per bag / top-1"
        "  epochs  train s"
    )
    for r in rows:
        b, a = r["bag_auc"], r["attention_auc"]
        print(
            f"{r['architecture']:<12}  {b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]  "
            f"{r['bag_accuracy']:.3f}    "
            f"{a['pooled']:.3f} / {a['per_bag_mean']:.3f} / {a['top1']:.2f}"
            f"                 {r['epochs']:>3}     {r['seconds']['train']:.0f}"
        )


if __name__ == "__main__":
    main()
