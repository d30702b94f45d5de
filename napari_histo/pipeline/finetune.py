"""Correct and retrain: corrected tiles → fine-tuned model (in a child process) → new predictions.

napari_histo never imports ``training``: fine-tuning runs
``python -m training.finetune`` as a child process, which builds its recipe
with training's own config schema, writes it beside the run and trains as
``histo train`` does.  Progress comes from the run's ``progress.json`` (per batch).  A crash
in training cannot take napari down, and the model directory it writes is the
same a headless run would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.errors import InvalidParameterError, TrainingFailedError
from napari_histo.models.engine import InferenceConfig, TilePredictions
from napari_histo.pipeline.model import ModelHandle, resolve_model
from napari_histo.pipeline.predict import predict_grid
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tiles import export_labelled_tiles

__all__ = ["FineTuned", "TrainingProgress", "finetune", "finetune_and_predict"]


@dataclass(frozen=True)
class TrainingProgress(Progress):
    """Training batches done of all epochs' batches, and the seconds left at the rate so far."""

    seconds_left: float | None = None


@dataclass(frozen=True)
class FineTuned:
    """What :func:`finetune_and_predict` returns: the new model, its predictions, the tiles per class."""

    model: ModelHandle
    predictions: TilePredictions
    tiles: dict[str, int]


def finetune(
    model: ModelHandle,
    tiles_root: str | os.PathLike[str],
    run_root: str | os.PathLike[str],
    *,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 32,
    name: str = "fine-tuned",
    poll_s: float = 0.5,
) -> Generator[Progress, None, Path]:
    """Fine-tune ``model`` on class folders under ``tiles_root``; yields batches done, returns the model dir.

    Each :class:`TrainingProgress` counts training batches over all epochs (read
    from the run's ``progress.json``) and estimates the seconds left.

    Raises :class:`TrainingFailedError` with the end of the child's log when training fails.
    """
    run_root = Path(run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    run_dir = run_root / name
    log_path = run_root / f"{name}.log"
    command = [
        sys.executable, "-m", "training.finetune", "--model", str(model.directory),
        "--tiles", str(tiles_root), "--runs", str(run_root), "--name", name, "--epochs", str(epochs),
        "--lr", repr(lr), "--batch-size", str(batch_size), "--quiet",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=run_root)
        try:
            last: TrainingProgress | None = None
            yield TrainingProgress(0, 0, "training: preparing the patches and the model")
            while child.poll() is None:
                now = _training_progress(run_dir / "progress.json")
                if now is not None and now != last:
                    last = now
                    yield now
                time.sleep(poll_s)
        except GeneratorExit:
            child.terminate()
            child.wait()
            raise
    if child.returncode != 0:
        tail = log_path.read_text()[-1500:]
        raise TrainingFailedError(
            f"training failed (exit {child.returncode}); the end of {log_path}:\n{tail}"
        )
    yield TrainingProgress(1, 1, "training: done", 0.0)
    return run_dir / "model"


def finetune_and_predict(
    session: SlideSession,
    model: ModelHandle,
    predictions: TilePredictions,
    tile_classes: np.ndarray,
    work_dir: str | os.PathLike[str],
    *,
    epochs: int = 3,
    lr: float = 1e-4,
    config: InferenceConfig | None = None,
) -> Generator[Progress, None, FineTuned]:
    """Export the corrected tiles, fine-tune ``model`` on them, predict the same tiles again.

    ``tile_classes`` gives a class index per tile of ``predictions.grid``, -1
    for tiles nobody corrected (those are not exported).
    """
    tile_classes = np.asarray(tile_classes, dtype=np.int64)
    labelled = tile_classes[tile_classes >= 0]
    if labelled.size < 4 or len(set(labelled.tolist())) < 2:
        raise InvalidParameterError(
            f"{labelled.size} corrected tile(s) in {len(set(labelled.tolist()))} class(es): correct at least "
            "4 tiles in at least two classes (paint the classes layer or draw classified annotations)"
        )
    work = Path(work_dir)
    spec = predictions.spec
    tiles = yield from export_labelled_tiles(session, predictions.grid, tile_classes, spec.class_names,
                                             work / "tiles")  # fmt: skip
    # a new run folder each time: the tiles folder grows with every correction, and a run is resumed
    # only with the data it was made with
    name = _free_name(work / "runs", "fine-tuned")
    new_dir = yield from finetune(model, work / "tiles", work / "runs", epochs=epochs, lr=lr, name=name)
    new_model = resolve_model(new_dir, model.device)
    result = yield from predict_grid(session, new_model, predictions.grid, config=config)
    return FineTuned(new_model, result, tiles)


def _free_name(root: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` ... : the first that is not a folder (or file) in ``root`` yet."""
    candidate, n = name, 1
    while (root / candidate).exists() or (root / f"{candidate}.log").exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _training_progress(path: Path) -> TrainingProgress | None:
    """What ``progress.json`` (written atomically by training per batch) says, or None before it exists."""
    try:
        state = json.loads(path.read_text())
        epoch, epochs, step, steps = (int(state[k]) for k in ("epoch", "epochs", "step", "steps"))
        seconds = float(state["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    done, total = epoch * steps + step, max(1, epochs * steps)
    left = seconds / done * (total - done) if done > 0 else None
    stage = f"training: epoch {epoch + 1} of {epochs}, batch {step} of {steps}"
    return TrainingProgress(min(done, total), total, stage, left)
