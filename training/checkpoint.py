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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc}); delete it to start again") from exc
