"""What a run leaves behind besides the model: resolved config, environment, CSV/TensorBoard logs."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from training.config import DataConfig, TrainingConfig, config_to_dict

__all__ = [
    "EpochLogger",
    "data_note",
    "describe_data",
    "environment",
    "format_data_note",
    "write_json",
    "write_resolved_config",
    "write_run_readme",
]


def environment() -> dict[str, Any]:
    """Versions, device and git commit, for reproducing a run."""
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    for name in ("timm", "numpy", "segmentation_models_pytorch", "napari_histo"):
        try:
            info[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            info[name] = None
    info["git_commit"] = _git_commit()
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_resolved_config(config: TrainingConfig, run_dir: Path) -> Path:
    import yaml

    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


def write_json(data: Any, path: Path) -> Path:
    from napari_histo.io.files import write_bytes_atomic

    return write_bytes_atomic(path, (json.dumps(_finite(data), indent=2) + "\n").encode())


def _finite(value: Any) -> Any:
    """NaN/inf → None so the JSON is standard (``json.loads`` in any language reads it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EpochLogger:
    """Appends each epoch's row to ``history.csv`` and, when tensorboard is installed, to TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / "history.csv"
        self.enabled = enabled
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def __call__(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows.append({k: row[k] for k in row})
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, keys)
            writer.writeheader()
            writer.writerows(rows)
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("phase", "epoch", "global_epoch"):
                    self.writer.add_scalar(key, value, row["global_epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class StepProgress:
    """Writes ``progress.json`` (epoch, steps done, steps, epochs, seconds) for a watcher (the napari dock).

    Written atomically (temp file, then rename), at most every ``every_s`` seconds
    and at the end of each epoch, so a reader never sees half a file.
    """

    def __init__(self, run_dir: Path, epochs: int, every_s: float = 0.5):
        self.path = run_dir / "progress.json"
        self.epochs = epochs
        self.every_s = every_s
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, epoch: int, step: int, steps: int) -> None:
        now = time.perf_counter()
        if step < steps and now - self._last < self.every_s:
            return
        self._last = now
        state = {"epoch": epoch, "epochs": self.epochs, "step": step, "steps": steps,
                 "seconds": round(now - self.started, 3)}  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)


# -- what data a run used, and how that differs from the paper its recipe follows --------------------

_SYNTHETIC = {
    "synthetic": "SYNTHETIC stand-in patches generated by training.synthetic (not real tissue)",
    "synthetic_stain": "SYNTHETIC stand-in patches in stain variants generated by training.synthetic "
    "(not real tissue)",
    "synthetic_segmentation": "SYNTHETIC stand-in patches and masks generated by training.synthetic "
    "(not real tissue)",
}
_SOURCES = {
    "folders": "class-folder patches",
    "idc": "IDC-named patches (labels from the file names)",
    "tiles_csv": "tiles listed in a tiles.csv",
    "labels_csv": "patches listed in a labels CSV",
    "slides": "tiles cut from slides with QuPath annotations",
    "embeddings": "slide-level bags of tile embeddings (histo embed tables) with a slide label CSV",
}


def describe_data(data: DataConfig, counts: dict[str, dict[str, int]] | None = None, base: str = "") -> str:
    """One plain sentence on the data a run actually used, from its data config and split counts.

    ``base``: the recipe's folder; paths are shown relative to it (as a recipe reads them), so no
    absolute path of this machine reaches model.json.
    """

    def where(path: str) -> str:
        return _from_recipe(path, base)

    if data.source == "none":
        return "no labelled patches (data.source none)."
    if data.source in _SYNTHETIC:
        text = f"{_SYNTHETIC[data.source]}: {data.synthetic_px} px"
    elif data.source == "slides":
        names = ", ".join(Path(s).name for s in data.slides[:3]) + (" ..." if len(data.slides) > 3 else "")
        text = (f"{_SOURCES['slides']}: {len(data.slides)} slide(s) ({names}), {data.tile_px} px tiles at "
                f"{data.tile_mpp:g} µm/px")  # fmt: skip
    else:
        root = where(data.root)
        csv_file = f", labels {where(data.labels_csv)}" if data.labels_csv else ""
        text = f"{_SOURCES.get(data.source, data.source)} from {root or '(no root)'}{csv_file}"
        if base and (root or csv_file):
            text += " (relative to the recipe's folder)"
    names = list(data.class_names) or (list(next(iter(counts.values()))) if counts else [])
    if names:
        text += f"; classes {', '.join(names)}"
    if counts:
        total = sum(sum(c.values()) for c in counts.values())
        split = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
        text += f"; {total} patches ({split})"
    extras = []
    if data.max_per_class:
        extras.append(f"capped at {data.max_per_class} per class and split")
    if data.balance != "none":
        extras.append(f"balance {data.balance}")
    if data.dedup:
        extras.append("de-duplicated by content hash")
    return text + (f"; {', '.join(extras)}" if extras else "") + "."


def _from_recipe(path: str, base: str) -> str:
    """``path`` relative to the recipe's folder ``base`` (as given when there is no recipe)."""
    if not (base and path and os.path.isabs(path)):
        return path
    return Path(os.path.relpath(path, base)).as_posix()


#: data keys that say which data a run uses (the others only how much of it, or how it is split)
_WHICH_DATA = ("source", "root", "labels_csv", "slides", "annotations", "tile_mpp", "tile_px")


def _changed_data(config: TrainingConfig) -> list[str] | None:
    """``data.*`` keys whose value differs from the recipe file's (``[]``: none; ``None``: unknown)."""
    if not config.recipe_path:
        return []  # built from a mapping: its about section was written for its own data
    from training.config import ConfigError, load_config

    try:
        recipe = load_config(config.recipe_path)
    except (ConfigError, OSError):
        return None
    return [
        f"data.{k}" for k, v in config_to_dict(config.data).items() if config_to_dict(recipe.data)[k] != v
    ]


def data_note(config: TrainingConfig, counts: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """What the run trained on, what the paper used and how they differ, in plain sentences.

    ``data_used`` is derived from the run's data config (and split counts), so it holds even when
    ``--set data....`` changed the data; the recipe's own ``about.data`` and ``about.differs_from_paper``
    describe the recipe's default data only, and are marked so when the run's data differs from it.
    """
    about = config.about
    base = str(Path(config.recipe_path).parent) if config.recipe_path else ""
    note: dict[str, Any] = {
        "data_used": describe_data(config.data, counts, base),
        "synthetic": config.data.source in _SYNTHETIC,
    }
    unlabelled = getattr(config.ssl, "data", ())  # SimCLR's own tiles, when the recipe names them
    if (config.ssl.enabled or getattr(config.ssl, "only", False)) and unlabelled:
        shown = ", ".join(_from_recipe(u, base) for u in unlabelled)
        note["data_used"] += f" SimCLR pre-training on unlabelled tiles of: {shown}."
    if about.paper:
        note["paper"] = about.paper
    if about.paper_data:
        note["paper_used"] = about.paper_data
    changed = _changed_data(config)
    if changed:
        note["data_overridden"] = changed
        which = ", ".join(changed)
        if about.data:
            note["recipe_data"] = f"{about.data} (the recipe's default data; this run changed {which})"
        other_data = [k for k in changed if k.removeprefix("data.") in _WHICH_DATA]
        if other_data:
            note["differs_from_paper"] = (
                f"not stated: this run used other data than the recipe ({', '.join(other_data)}), so the "
                "recipe's comparison with the paper does not apply; compare data used with paper used"
            )
        elif about.differs_from_paper:  # the same data, only fewer/smaller patches or another split
            note["differs_from_paper"] = (
                f"{about.differs_from_paper} (said of the recipe's data; this run changed {which}, "
                "see data used)"
            )
    else:
        if about.data:
            note["recipe_data"] = about.data
        if about.differs_from_paper:
            note["differs_from_paper"] = about.differs_from_paper
        if changed is None:
            note["data_overridden"] = "unknown (the recipe file could not be read again)"
    return note


_LABELS = (
    ("data_used", "data used"),
    ("recipe_data", "recipe's data"),
    ("paper", "paper"),
    ("paper_used", "paper used"),
    ("differs_from_paper", "differs from the paper"),
)


def format_data_note(note: dict[str, Any]) -> str:
    """The note as a few ``label: sentence`` lines for the end of a run."""
    lines = [f"{label}: {note[key]}" for key, label in _LABELS if note.get(key)]
    if note.get("synthetic"):
        lines.insert(
            0, "NOTE: this run trained on SYNTHETIC stand-in data; its metrics say nothing about real tissue."
        )
    return "\n".join(lines)


def write_run_readme(run_dir: Path, config: TrainingConfig, note: dict[str, Any],
                     metrics: dict[str, Any]) -> Path:  # fmt: skip
    """``README.md`` of a run: its data (and the paper's), headline metrics and the images it wrote."""
    lines = [f"# {config.name}", ""]
    if config.recipe_path:
        lines += [f"Recipe: `{config.recipe_path}`", ""]
    lines += ["## Data", ""]
    if note.get("synthetic"):
        lines += ["**Synthetic stand-in data: the metrics below say nothing about real tissue.**", ""]
    lines += [f"- **{label}:** {note[key]}" for key, label in _LABELS if note.get(key)]
    counts_file = run_dir / "class_counts.json"
    if counts_file.is_file():  # written by training.data before any balancing
        record = json.loads(counts_file.read_text(encoding="utf-8"))
        before = ", ".join(f"{k} {v:,}" for k, v in record.get("before_balancing", {}).items())
        lines += ["", "## Class counts", "", f"- **loaded, before balancing (all source splits):** {before}"]
        summary_file = run_dir / "metrics.json"
        after = {}
        if summary_file.is_file():
            after = json.loads(summary_file.read_text(encoding="utf-8")).get("summary", {}).get("counts", {})
        for split, per_class in after.items():
            shown = ", ".join(f"{k} {v:,}" for k, v in per_class.items())
            lines.append(f"- **{split}, after data.balance = {record.get('balance', 'none')}:** {shown}")
    lines += ["", "## Metrics", ""]
    for split in ("valid", "test"):
        values = {k: v for k, v in metrics.get(split, {}).items() if isinstance(v, (int, float))}
        if values:
            shown = ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
            )
            lines.append(f"- **{split}:** {shown}")
    images = sorted(p.name for p in run_dir.glob("*.png"))
    if images:
        lines += ["", "## Images", ""] + [f"![{name}]({name})" for name in images]
    path = run_dir / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
