"""Recipes: YAML → frozen dataclasses, unknown keys rejected, ``--set a.b=value`` overrides.

A recipe is one YAML file with the sections ``data``, ``model``, ``augment``,
``train``, ``ssl`` and ``clustering`` (all optional except ``data`` and
``model``).  Every key is checked against the dataclass fields; a typo stops
the run before anything is loaded, naming the key and the allowed ones.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_histo.errors import HistoError

__all__ = [
    "AugmentConfig",
    "ClusteringConfig",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "PhaseConfig",
    "SslConfig",
    "TrainConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]


class ConfigError(HistoError, ValueError):
    """A recipe has an unknown key, a value of the wrong type, or an impossible combination."""


@dataclass(frozen=True)
class DataConfig:
    """Where the patches come from and how they are split.

    ``source`` is one of ``folders`` (``root/<class>/*.png``, or ``root/train``
    and ``root/valid`` each with class folders), ``idc`` (labels in file names
    ``..._class{C}.png``), ``tiles_csv`` (``histo tiles`` output), ``slides``
    (slides + QuPath GeoJSON, tiles planned on the tiling grid),
    ``labels_csv`` (a CSV with path, label, split, md5 columns, like PCam's),
    ``synthetic`` (generated stand-in data, see :mod:`training.synthetic`) and
    ``synthetic_segmentation``.
    """

    source: str
    root: str = ""
    class_names: tuple[str, ...] = ()
    labels_csv: str = ""
    slides: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    tile_mpp: float = 0.5
    tile_px: int = 224
    min_tissue: float = 0.5
    dedup: bool = True
    balance: str = "none"  # none | undersample | weighted
    valid_fraction: float = 0.2
    test_fraction: float = 0.0
    group_by: str = "none"  # none | slide | patient
    max_per_class: int = 0  # 0 = all; caps each class per split (quick runs)
    cache: bool = True  # decode all patches into memory once
    synthetic_per_class: int = 200
    synthetic_px: int = 64


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    weights: str = "none"  # none | timm | a local .pth/.safetensors path (relative to the recipe)
    task: str = "classification"
    input_size: int = 0  # 0 = patch size
    spacing_um_px: float = 0.5
    patch_size_pixels: int = 0  # 0 = data's patch size
    class_colors: tuple[tuple[int, int, int], ...] = ()
    mean: tuple[float, ...] = ()  # () = the weight file's, else ImageNet
    std: tuple[float, ...] = ()
    drop_rate: float = 0.0
    name: str = ""
    description: str = ""


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = True
    rot90: bool = True
    rotate_deg: float = 0.0
    shift: float = 0.0
    zoom: float = 0.0
    shear_deg: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    hed_sigma: float = 0.0
    stain_normalize: str = "none"  # none | macenko | reinhard (fitted on the training set)


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of training, e.g. head only, then everything after a named stage."""

    epochs: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"  # sgd | adam | adamw | adamax
    weight_decay: float = 0.0
    momentum: float = 0.9
    trainable: str = "all"  # all | head | from:<parameter-name prefix>, e.g. from:blocks.5
    scheduler: str = "none"  # none | plateau | step | cosine
    factor: float = 0.1
    patience: int = 5
    step_size: int = 5
    gamma: float = 0.9


@dataclass(frozen=True)
class TrainConfig:
    phases: tuple[PhaseConfig, ...] = (PhaseConfig(),)
    batch_size: int = 64
    loss: str = "ce"  # ce | bce | dice | dice_ce
    class_weights: str = "none"  # none | balanced
    monitor: str = "accuracy"  # any key of the validation metrics, or "loss"
    early_stopping: int = 0  # epochs without improvement; 0 = off
    amp: bool = True  # only on CUDA
    grad_accum: int = 1
    num_workers: int = 0
    device: str = "auto"
    max_steps_per_epoch: int = 0  # 0 = the whole training set
    resume: bool = True
    seed: int = 0


@dataclass(frozen=True)
class SslConfig:
    enabled: bool = False
    epochs: int = 10
    lr: float = 1e-3
    temperature: float = 0.5
    batch_size: int = 64
    projection_dim: int = 64
    strong_augment: bool = True  # SimCLR's own view augmentation; false = the recipe's augment section


@dataclass(frozen=True)
class ClusteringConfig:
    enabled: bool = False
    groups: str = "labels"  # labels | a second folder root whose patches form group 1
    pca_dims: int = 2
    max_samples: int = 1000


@dataclass(frozen=True)
class TrainingConfig:
    data: DataConfig
    model: ModelConfig
    name: str = "run"
    output_dir: str = "runs"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ssl: SslConfig = field(default_factory=SslConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    recipe_path: str = ""


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> TrainingConfig:
    """Read a recipe and apply ``key=value`` overrides (dotted keys, YAML values)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found. Recipes shipped with napari-histo: training/recipes/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    data["recipe_path"] = str(path.resolve())
    return config_from_dict(data, source=str(path))


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.batch_size=32", "model.weights=none"]`` applied to a copy of ``data``."""
    import copy

    import yaml

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.batch_size=32")
        value = yaml.safe_load(raw) if raw else ""
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def config_from_dict(data: dict[str, Any], source: str = "recipe") -> TrainingConfig:
    """Build a :class:`TrainingConfig`, rejecting unknown keys and wrong types."""
    config = _build(TrainingConfig, data, "")
    _check(config, source)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (lists, not tuples) for YAML/JSON output."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown key {where + unknown[0]!r} in the recipe; allowed keys"
            f"{' in ' + where[:-1] if where else ''}: {', '.join(names)}"
        )
    kwargs = {name: _coerce(hints[name], data[name], where + name) for name in names if name in data}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]  # fmt: skip
        raise ConfigError(f"{where or 'recipe'}: required key(s) {required} ({exc})") from exc


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return tuple(value) if isinstance(value, list) else value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return str(value)
    return value


_CHOICES = {
    ("data", "source"): ("folders", "idc", "tiles_csv", "slides", "labels_csv", "synthetic",
                         "synthetic_stain", "synthetic_segmentation"),
    ("data", "balance"): ("none", "undersample", "weighted"),
    ("data", "group_by"): ("none", "slide", "patient"),
    ("model", "task"): ("classification", "segmentation"),
    ("augment", "stain_normalize"): ("none", "macenko", "reinhard"),
    ("train", "loss"): ("ce", "bce", "dice", "dice_ce"),
    ("train", "class_weights"): ("none", "balanced"),
}  # fmt: skip
_PHASE_CHOICES = {
    "optimizer": ("sgd", "adam", "adamw", "adamax"),
    "scheduler": ("none", "plateau", "step", "cosine"),
}


def _check(config: TrainingConfig, source: str) -> None:
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(config, section), key)
        if value not in allowed:
            raise ConfigError(f"{source}: {section}.{key} = {value!r}; choose one of {', '.join(allowed)}")
    for i, phase in enumerate(config.train.phases):
        for key, allowed in _PHASE_CHOICES.items():
            value = getattr(phase, key)
            if value not in allowed:
                raise ConfigError(
                    f"{source}: train.phases[{i}].{key} = {value!r}; choose one of {', '.join(allowed)}"
                )
        if phase.epochs < 1:
            raise ConfigError(f"{source}: train.phases[{i}].epochs = {phase.epochs}; give 1 or more epochs")
        if not phase.lr >= 0:  # 0 is allowed: frozen weights (tests of early stopping use it)
            raise ConfigError(f"{source}: train.phases[{i}].lr = {phase.lr}; the learning rate must be >= 0")
        if not (phase.trainable in ("all", "head") or phase.trainable.startswith("from:")):
            raise ConfigError(
                f"{source}: train.phases[{i}].trainable = {phase.trainable!r}; use all, head or "
                "from:<stage>, e.g. from:blocks.5 (a parameter-name prefix)"
            )
    if not config.train.phases:
        raise ConfigError(f"{source}: train.phases is empty; give at least one phase")
    if config.train.loss == "bce" and len(config.data.class_names) not in (0, 2):
        raise ConfigError(f"{source}: train.loss = bce needs two classes, got {config.data.class_names}")
    if config.train.batch_size < 1 or config.train.grad_accum < 1:
        raise ConfigError(f"{source}: train.batch_size and train.grad_accum must be >= 1")
