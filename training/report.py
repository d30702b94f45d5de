"""What a run leaves behind besides the model: resolved config, environment, CSV/TensorBoard logs."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from training.config import TrainingConfig, config_to_dict

__all__ = ["EpochLogger", "environment", "write_json", "write_resolved_config"]


def environment() -> dict[str, Any]:
    """Versions, device and git commit, for reproducing a run."""
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    for name in ("timm", "numpy", "segmentation_models_pytorch", "napari_histo"):
        try:
            info[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            info[name] = None
    info["git_commit"] = _git_commit()
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_resolved_config(config: TrainingConfig, run_dir: Path) -> Path:
    import yaml

    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


def write_json(data: Any, path: Path) -> Path:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(_finite(data), indent=2) + "\n")
    tmp.replace(path)
    return path


def _finite(value: Any) -> Any:
    """NaN/inf → None so the JSON is standard (``json.loads`` in any language reads it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EpochLogger:
    """Appends each epoch's row to ``history.csv`` and, when tensorboard is installed, to TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / "history.csv"
        self.enabled = enabled
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def __call__(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows.append({k: row[k] for k in row})
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, keys)
            writer.writeheader()
            writer.writerows(rows)
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("phase", "epoch", "global_epoch"):
                    self.writer.add_scalar(key, value, row["global_epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class StepProgress:
    """Writes ``progress.json`` (epoch, steps done, steps, epochs, seconds) for a watcher (the napari dock).

    Written atomically (temp file, then rename), at most every ``every_s`` seconds
    and at the end of each epoch, so a reader never sees half a file.
    """

    def __init__(self, run_dir: Path, epochs: int, every_s: float = 0.5):
        self.path = run_dir / "progress.json"
        self.epochs = epochs
        self.every_s = every_s
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, epoch: int, step: int, steps: int) -> None:
        now = time.perf_counter()
        if step < steps and now - self._last < self.every_s:
            return
        self._last = now
        state = {"epoch": epoch, "epochs": self.epochs, "step": step, "steps": steps,
                 "seconds": round(now - self.started, 3)}  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)
