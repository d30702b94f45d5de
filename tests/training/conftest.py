"""Tiny recipes for the training tests: synthetic data, a small real timm architecture, 1 epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA, shared_file  # noqa: F401 - both conftests are "conftest" on

# sys.path (no packages), so tests elsewhere that `from conftest import shared_file` after this one
# loaded still find it: `pytest tests/training tests/cli` collects as the whole suite does
from training.config import TrainingConfig, apply_overrides, config_from_dict

TINY_ARCH = "mobilenetv3_small_050"


def tiny_recipe(out: Path, *overrides: str, **sections: Any) -> TrainingConfig:
    """A synthetic 2-class recipe that trains in a few seconds on a CPU."""
    data = {
        "name": "tiny",
        "output_dir": str(out),
        "data": {
            "source": "synthetic",
            "class_names": ["sparse", "dense"],
            "synthetic_per_class": 40,
            "synthetic_px": 32,
            "valid_fraction": 0.25,
        },
        "model": {"architecture": TINY_ARCH, "spacing_um_px": 0.5},
        "augment": {"flips": True, "rot90": True},
        "train": {"batch_size": 16, "phases": [{"epochs": 1, "lr": 0.01}], "device": "cpu"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return config_from_dict(apply_overrides(data, list(overrides)))


@pytest.fixture
def tiny(tmp_path: Path):  # type: ignore[no-untyped-def]
    return lambda *o, **s: tiny_recipe(tmp_path / "runs", *o, **s)
