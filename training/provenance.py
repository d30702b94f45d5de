"""Provenance without this machine's paths: what model.json records of how a model was made."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from training.config import TrainingConfig, config_to_dict
from training.report import environment

__all__ = ["PATHS_RELATIVE_TO", "REPO_ROOT", "base_provenance", "portable_config"]


#: the repository root, which model.json's ``provenance.recipe`` is relative to
REPO_ROOT = Path(__file__).resolve().parents[1]
#: what the paths in a model's provenance are relative to (written into it)
PATHS_RELATIVE_TO = {
    "recipe": "the repository root (a recipe outside it: its file name only)",
    "config": "data, weights and SSL paths: the recipe's folder, as a recipe reads them; output_dir: the "
    "repository root (outside it: the run folder's name only)",
}


def portable_config(config: TrainingConfig) -> tuple[str, dict[str, Any]]:
    """(recipe, resolved config) for provenance, with every path relative (see ``PATHS_RELATIVE_TO``)."""

    def inside_repo(path: str) -> str | None:
        try:
            return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            return None

    recipe = config.recipe_path
    recipe_rel = (inside_repo(recipe) or Path(recipe).name) if recipe else ""
    base = Path(recipe).parent if recipe else Path.cwd()

    def relative(path: str) -> str:
        if not path or not os.path.isabs(path):
            return path
        return Path(os.path.relpath(path, base)).as_posix()

    data = config_to_dict(dataclasses.replace(config))
    data["recipe_path"] = recipe_rel
    out = data.get("output_dir") or ""
    data["output_dir"] = (inside_repo(out) or Path(out).name) if os.path.isabs(out) else out
    section = data["data"]
    section["root"], section["labels_csv"] = relative(section["root"]), relative(section["labels_csv"])
    section["slides"] = [relative(p) for p in section["slides"]]
    section["annotations"] = [relative(p) for p in section["annotations"]]
    if data["model"]["weights"] not in ("none", "timm"):
        data["model"]["weights"] = relative(data["model"]["weights"])
    data["ssl"]["data"] = [relative(p) for p in data["ssl"]["data"]]
    if data["clustering"]["groups"] != "labels":
        data["clustering"]["groups"] = relative(data["clustering"]["groups"])
    return recipe_rel, data


def base_provenance(config: TrainingConfig) -> dict[str, Any]:
    """recipe, config, paths_relative_to, command and environment, with no absolute path of this machine."""
    recipe, portable = portable_config(config)
    env = environment()
    env["argv"] = [Path(a).name if os.path.isabs(a) else a for a in env["argv"]]
    return {
        "recipe": recipe,
        "config": portable,
        "paths_relative_to": PATHS_RELATIVE_TO,
        "command": os.environ.get("HISTO_TRAIN_COMMAND", " ".join(env["argv"])),
        "environment": env,
    }
