"""Headless training from YAML recipes: ``histo train RECIPE.yaml`` or ``training.train(config)``.

>>> from training import load_config, train          # doctest: +SKIP
>>> result = train(load_config("training/recipes/pcam_mobilenetv2.yaml", ["train.batch_size=32"]))

Nothing here is imported eagerly: ``import training`` loads neither torch nor timm.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainResult", "TrainingConfig", "load_config", "train"]

_LAZY = {
    "train": "training.run",
    "TrainResult": "training.rundir",
    "load_config": "training.config",
    "TrainingConfig": "training.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
