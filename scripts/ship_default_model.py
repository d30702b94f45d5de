"""Ship a trained PCam run as the built-in default model, with the untouched split's figures.

    python scripts/ship_default_model.py RUN/model EVAL_DIR [--to DIR]  (default: the built-in model)

RUN/model is the model directory `histo train training/recipes/pcam_mobilenetv2.yaml` wrote;
EVAL_DIR is the `--out` of `histo evaluate RUN/model --data ../shared/data/pcam --split valid`.
The shipped model.json is the run's, with ``metrics`` replaced by
``{"test": <the untouched split's figures with 95 % intervals>, "selection": <the selection split's>}``
so that nothing reports the split that chose the epoch as if it were unseen. MODEL_CARD.md is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("evaluation", type=Path)
    parser.add_argument("--to", type=Path, default=REPO / "napari_histo/models/builtin/pcam-mobilenetv2")
    args = parser.parse_args()
    spec = json.loads((args.model / "model.json").read_text())
    report = json.loads((args.evaluation / "metrics.json").read_text())
    if report.get("touched") or report["protocol"]["status"] != "untouched":
        raise SystemExit(
            f"{args.evaluation}: these figures are {report['protocol']['status']}; ship untouched ones"
        )
    test = {
        "split": f"{report['split']} of {Path(report['data']).name} (untouched: not used to train or select)",
        "n": report["n"],
        "tta": report["tta"],
        "temperature": report["temperature"],
        **{name: m["value"] for name, m in report["metrics"].items()},
        "ci95": {name: [m["low"], m["high"]] for name, m in report["metrics"].items()},
        "bootstrap": report["bootstrap"],
        "confusion_matrix": report["confusion_matrix"],
        "ece_at_temperature_1": report["calibration"]["ece_at_temperature_1"],
    }
    spec["metrics"] = {"test": test, "selection": spec.get("metrics", {}).get("valid", {})}
    args.to.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.to.parent) as tmp:
        staged = Path(tmp)
        shutil.copy2(args.model / "weights.safetensors", staged / "weights.safetensors")
        (staged / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
        for name in ("weights.safetensors", "model.json"):
            (staged / name).replace(args.to / name)
    figures = f"test accuracy {test['accuracy']:.4f}, ROC-AUC {test['roc_auc']:.4f}"
    print(f"shipped {args.model} to {args.to}: {figures}")


if __name__ == "__main__":
    main()
