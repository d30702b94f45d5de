"""What a resumed run must share with the run that wrote its checkpoint, and how they differ.

Used by :mod:`training.run` (``last.pt``) and :mod:`training.ssl` (``ssl_last.pt``).
"""

from __future__ import annotations

import json
from typing import Any

from training.config import TrainingConfig, config_to_dict

__all__ = ["differences", "resume_settings"]


#: settings that may change between a run and its resumption (the rest must match last.pt's)
_FREE_TO_CHANGE = {
    "": ("name", "output_dir", "recipe_path", "clustering", "about", "report"),
    "data": ("cache",),
    "model": ("name", "description", "class_colors"),
    "train": ("num_workers", "device", "resume", "amp", "early_stopping", "max_steps_per_epoch"),
}


def resume_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the run that wrote ``last.pt``.

    More epochs, or phases added at the end, continue a run; another learning rate, data,
    architecture ... make another run.
    """
    data = config_to_dict(config)
    if config.model.task != "mil":  # the mil section means nothing to a patch run (nor to older last.pt)
        data.pop("mil", None)
    for section, keys in _FREE_TO_CHANGE.items():
        node = data[section] if section else data
        for key in keys:
            node.pop(key, None)
    for phase in data["train"]["phases"]:
        phase.pop("epochs", None)
    return data


def differences(before: Any, now: Any, key: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(before) | set(now)):
            out += differences(before.get(k), now.get(k), f"{key}.{k}" if key else k)
        return out
    if isinstance(before, list) and isinstance(now, list) and all(isinstance(v, dict) for v in before + now):
        out = [d for i, (b, n) in enumerate(zip(before, now)) for d in differences(b, n, f"{key}[{i}]")]
        if len(before) != len(now):
            out.append(f"{key}: {len(before)} then, {len(now)} now")
        return out
    return [] if before == now else [f"{key}: {show(before)} then, {show(now)} now"]


def show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
