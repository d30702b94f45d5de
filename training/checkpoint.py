"""Checkpoints written atomically: a failed write (full disk) leaves the previous one intact.

``last.pt`` holds everything needed to resume (weights, optimiser, scheduler,
phase/epoch, history, best score) as tensors and plain Python values, read
back with ``torch.load(weights_only=True)``: no code is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from napari_histo.errors import UnsupportedModelError
from napari_histo.models.weights import holds_code
from training.config import ConfigError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(ConfigError, OSError):
    """A checkpoint could not be written (the previous one is kept) or read."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        torch.save(state, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = f"; the previous checkpoint {path} is intact" if path.exists() else ""
        raise CheckpointError(
            f"could not write checkpoint {path} ({exc.strerror or exc}){kept}. Free disk space "
            "and run the same command again to resume."
        ) from exc
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`; never runs code stored in the file.

    Raises :class:`~napari_histo.errors.UnsupportedModelError` for a file that holds Python
    objects besides tensors (not written by ``histo train``; refused unread) and
    :class:`CheckpointError` for a damaged one.
    """
    import pickle
    import zipfile

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if holds_code(exc):
            raise UnsupportedModelError(
                f"{path}: holds Python objects besides tensors, so it was not written by histo train; it is "
                "not loaded (unpickling it could run code). Delete it, or train into another folder "
                "(name=...), to start afresh."
            ) from exc
        raise CheckpointError(
            f"{path}: unreadable checkpoint (damaged, or not written by histo train); "
            "delete it to start again"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{path}: unreadable checkpoint ({reason}); delete it to start again") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(
            f"{path}: holds a {type(state).__name__} without model weights, not a histo train checkpoint; "
            "delete it to start again"
        )
    return state
