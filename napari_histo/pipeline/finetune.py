"""Correct and retrain: corrected tiles → fine-tuned model (in a child process) → new predictions.

napari_histo never imports ``training``: fine-tuning runs
``python -m training.finetune`` as a child process, which builds its recipe
with training's own config schema, writes it beside the run and trains as
``histo train`` does.  Progress comes from the run's ``history.csv``.  A crash
in training cannot take napari down, and the model directory it writes is the
same a headless run would.
"""

from __future__ import annotations

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

__all__ = ["FineTuned", "finetune", "finetune_and_predict"]


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
    """Fine-tune ``model`` on class folders under ``tiles_root``; yields epochs done, returns the model dir.

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
            done = -1
            while child.poll() is None:
                rows = _rows(run_dir / "history.csv")
                if rows != done:
                    done = rows
                    yield Progress(min(rows, epochs), epochs, "training")
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
    yield Progress(epochs, epochs, "training")
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
    new_dir = yield from finetune(model, work / "tiles", work / "runs", epochs=epochs, lr=lr)
    new_model = resolve_model(new_dir, model.device)
    result = yield from predict_grid(session, new_model, predictions.grid, config=config)
    return FineTuned(new_model, result, tiles)


def _rows(history: Path) -> int:
    try:
        return max(0, len(history.read_text().strip().splitlines()) - 1)
    except OSError:
        return 0
