"""What a resumed run must share with the run that wrote its checkpoint, and how they differ.

Used by :mod:`training.run` (``last.pt``) and :mod:`training.ssl` (``ssl_last.pt``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.config import ConfigError, TrainingConfig, config_to_dict

__all__ = ["differences", "restore_optimizer", "resume_settings"]


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


def restore_optimizer(
    state: dict[str, Any], optimizer: Any, scheduler: Any, checkpoint: Path, phase: int
) -> None:
    """Load a resumed phase's optimiser (and scheduler) state from ``state`` (popped: used once).

    Only when the phase was under way (``state["epoch"] > 0``); a state that does not fit the
    recipe's phase is a :class:`ConfigError` naming the checkpoint and how to start afresh.
    """
    if state.get("optimizer") is None or state["epoch"] <= 0:
        return
    try:
        optimizer.load_state_dict(state.pop("optimizer"))
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state.pop("scheduler"))
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"{checkpoint}: its optimiser state does not fit phase {phase} of this recipe ({exc}); it was "
            "made with other settings. Run the recipe it was made with to resume, or start afresh in "
            "another folder (name=...) or with train.resume=false."
        ) from exc
