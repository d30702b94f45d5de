"""Fine-tune a model on corrected tiles with ``histo train`` in a child process.

The GUI never imports the training package: it writes a recipe and runs
``python -m training.cli RECIPE`` as a subprocess, following ``history.csv``
for progress.  A crash in training cannot take napari down, and the model
directory it writes is the same a headless run would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_histo.models.spec import WEIGHTS_FILE, ModelSpec

__all__ = ["finetune_recipe", "run_finetune"]


def finetune_recipe(
    spec: ModelSpec, model_dir: str | os.PathLike[str], tiles_root: str | os.PathLike[str],
    run_root: str | os.PathLike[str], *, epochs: int = 3, lr: float = 1e-4, batch_size: int = 32,
    name: str = "fine-tuned",
) -> dict[str, Any]:  # fmt: skip
    """A ``histo train`` recipe that starts from ``model_dir``'s weights and trains on class folders."""
    return {
        "name": name,
        "output_dir": str(Path(run_root).resolve()),
        "data": {
            "source": "folders",
            "root": str(Path(tiles_root).resolve()),
            "class_names": list(spec.class_names),
            "valid_fraction": 0.2,
            "dedup": True,
        },
        "model": {
            "architecture": spec.architecture,
            "weights": str((Path(model_dir) / WEIGHTS_FILE).resolve()),
            "spacing_um_px": spec.spacing_um_px,
            "patch_size_pixels": spec.patch_size_pixels,
            "input_size": spec.input_size,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "class_colors": [list(c) for c in spec.class_colors],
            "name": f"{spec.name or spec.architecture}-{name}",
            "description": f"{spec.description} Fine-tuned on corrected tiles.".strip(),
        },
        "augment": {"flips": True, "rot90": True},
        "train": {
            "batch_size": batch_size,
            "monitor": "loss",
            "phases": [{"epochs": epochs, "trainable": "all", "optimizer": "adam", "lr": lr}],
        },
    }


def run_finetune(recipe: dict[str, Any], recipe_path: str | os.PathLike[str], *, poll_s: float = 0.5
                 ) -> Iterator[tuple[int, int]]:  # fmt: skip
    """Run the recipe in a child process; yields (epochs done, epochs) and returns the model directory.

    Raises ``RuntimeError`` with the end of the child's output when training fails.
    """
    recipe_path = Path(recipe_path)
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    run_dir = Path(recipe["output_dir"]) / recipe["name"]
    history = run_dir / "history.csv"
    total = sum(int(p["epochs"]) for p in recipe["train"]["phases"])
    log_path = recipe_path.with_suffix(".log")
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "training.cli", str(recipe_path), "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, cwd=recipe_path.parent,
        )  # fmt: skip
        try:
            done = -1
            while child.poll() is None:
                rows = _rows(history)
                if rows != done:
                    done = rows
                    yield min(rows, total), total
                time.sleep(poll_s)
        except GeneratorExit:
            child.terminate()
            raise
    if child.returncode != 0:
        tail = log_path.read_text()[-1500:]
        raise RuntimeError(f"training failed (exit {child.returncode}); the end of {log_path}:\n{tail}")
    yield total, total
    return run_dir / "model"


def _rows(history: Path) -> int:
    try:
        return max(0, len(history.read_text().strip().splitlines()) - 1)
    except OSError:
        return 0
