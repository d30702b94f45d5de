"""A run's folder and what resuming it requires: the result type, the folder, the ``last.pt`` checks.

Shared by :mod:`training.run` (patch models) and :mod:`training.mil` (slide-level models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.checkpoint import LAST, load_checkpoint
from training.config import ConfigError, TrainingConfig
from training.resume import differences, resume_settings

__all__ = ["TrainResult", "check_same_data", "make_run_dir", "saved_run"]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def make_run_dir(run_dir: Path, config: TrainingConfig, *, write_probe: bool) -> None:
    """Create the run folder, or say in one line why it cannot be (a file in the way, read-only ...)."""
    where = f"output_dir = {config.output_dir!r}, name = {config.name!r}"
    for folder in [*reversed(run_dir.parents), run_dir]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                f"{folder} is a file, so the run folder {run_dir} cannot be made ({where}); set output_dir "
                "to a folder (new or existing) or move the file"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if write_probe:
            probe = run_dir / ".write-test.part"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the run folder {run_dir} ({exc.strerror or exc}; {where}); set output_dir to a "
            "folder you can write to"
        ) from exc


def saved_run(config: TrainingConfig, run_dir: Path) -> dict[str, Any] | None:
    """``last.pt`` when this run resumes; refuses one made with other settings."""
    path = run_dir / LAST
    if not (config.train.resume and path.exists()):
        return None
    saved = load_checkpoint(path)
    before = saved.get("settings")
    if isinstance(before, str):
        then, now = json.loads(before), resume_settings(config)
        if len(now["train"]["phases"]) > len(then["train"]["phases"]):  # phases added at the end: continue
            now["train"]["phases"] = now["train"]["phases"][: len(then["train"]["phases"])]
        changes = differences(then, now)
        if changes:
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            raise ConfigError(
                f"{path} was made with other settings ({shown}), so this run is not resumed from it. Run the "
                "recipe it was made with to resume; to start afresh, train into another folder (name=...) or "
                "set train.resume=false (overwrites this run)"
            )
    return saved


def check_same_data(saved: dict[str, Any], digest: str, path: Path) -> None:
    before = saved.get("data_digest")
    if isinstance(before, str) and before != digest:
        raise ConfigError(
            f"{path} was made from other training data (patches were added, removed, changed or split "
            "differently), so this run is not resumed from it. Restore the data to resume; to start afresh, "
            "train into another folder (name=...) or set train.resume=false (overwrites this run)"
        )
