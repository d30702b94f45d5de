"""Recipes: YAML → frozen dataclasses, unknown keys rejected, ``--set a.b=value`` overrides.

A recipe is one YAML file with the sections ``data``, ``model``, ``augment``,
``train``, ``ssl``, ``clustering``, ``about`` (what data the recipe runs on and how it
differs from the paper's) and ``report`` (example sheets) (all optional except ``data``
and ``model``).  Every key is checked against the dataclass fields; a typo stops
the run before anything is loaded, naming the key and the allowed ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_histo.errors import HistoError

__all__ = [
    "AboutConfig",
    "AugmentConfig",
    "ClusteringConfig",
    "ConfigError",
    "DataConfig",
    "MilConfig",
    "ModelConfig",
    "PhaseConfig",
    "ReportConfig",
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
    # > 0 with a source that has its own split: carve this fraction of its train split (stratified,
    # seeded) as the selection split ("valid": epochs, temperature); the source's other splits are
    # not loaded at all, so they stay untouched for `histo evaluate` to report on once
    selection_from_train: float = 0.0
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
    tta: str = "none"  # none | dihedral8: inference averages the 8 rotations/flips (model.json's tta)


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
    stain_normalize: str = "none"  # none | macenko | reinhard | vahadane (fitted on the training set)


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
    calibrate: bool = False  # fit a softmax temperature on the valid (selection) split after training


@dataclass(frozen=True)
class SslConfig:
    """SimCLR pre-training (:mod:`training.ssl`), before fine-tuning or on its own (``only``).

    ``data`` lists unlabelled tiles (paths relative to the recipe's folder): a folder of image
    tiles (png/jpg/tif/bmp, searched recursively; no class folders or labels needed), a
    ``tiles.csv`` written by ``histo tiles``, or a slide file, whose tissue is tiled at
    ``model.spacing_um_px`` µm/px into ``tile_px`` tiles (``min_tissue`` of tissue each).
    Empty: the labelled training patches of the ``data`` section, their labels unused.
    ``only``: pre-train and save the backbone as ``model/`` (a feature extractor; see
    :func:`training.ssl.pretrain_only`), no supervised phase; with ``data`` given, the recipe
    needs no ``data`` section.
    """

    enabled: bool = False
    only: bool = False  # SSL only (implies enabled): save the backbone as a model directory, no labels
    data: tuple[str, ...] = ()  # unlabelled tile folders / tiles.csv / slides; () = the training patches
    tile_px: int = 224  # slides in data: tile edge, cut at model.spacing_um_px
    min_tissue: float = 0.5  # slides in data: the tissue fraction a tile needs
    max_tiles: int = 0  # 0 = every tile of data; else a random subset (seeded by train.seed)
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
class MilConfig:
    """Slide-level (MIL) training on tile embeddings (``model.task: mil``, :mod:`training.mil`).

    ``model.architecture`` is abmil | clam_sb | transmil; ``data.source: embeddings`` with
    ``data.root`` (a folder of ``<slide>.embeddings.zarr`` tables) and ``data.labels_csv``
    (slide, label, patient[, split]).  One bag (slide) per step; ``train.grad_accum`` bags per
    optimiser step.
    """

    hidden: int = 256  # width of the projected tile embeddings (and the attention net: hidden // 2)
    dropout: float = 0.25
    heads: int = 8  # transmil: attention heads (hidden must be a multiple)
    k_sample: int = 8  # clam_sb: top-k / bottom-k attended tiles for the instance loss
    bag_weight: float = 0.7  # clam_sb: loss = bag_weight * bag loss + (1 - bag_weight) * instance loss
    max_tiles: int = 0  # training only: a random subset of this many tiles per bag and epoch; 0 = all


@dataclass(frozen=True)
class AboutConfig:
    """What a recipe reproduces and on what data, carried into metrics.json, model.json and README.md.

    ``data`` describes the recipe's own (default) data and ``differs_from_paper`` how it differs
    from the paper's; both speak for the recipe's data section only, so a run whose data was
    overridden (``--set data.source=...``) reports them as the recipe's, not the run's.
    """

    paper: str = ""  # the method's source: paper, thesis or course project
    paper_data: str = ""  # the data the paper used
    data: str = ""  # the recipe's default data, in one or two sentences (say "synthetic" when it is)
    differs_from_paper: str = ""  # how the recipe's default data (and set-up) differ from the paper's


@dataclass(frozen=True)
class ReportConfig:
    """Example sheets written after training (cheap: a few dozen patches)."""

    gradcam_sheet: bool = True  # classification: gradcam_sheet.png of correct and wrong test patches
    mask_examples: bool = True  # segmentation: mask_examples.png, image | truth | prediction
    examples_per_class: int = 4  # patches per row of the Grad-CAM sheet; rows of mask_examples


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
    mil: MilConfig = field(default_factory=MilConfig)
    about: AboutConfig = field(default_factory=AboutConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    recipe_path: str = ""


#: the largest recipe read: recipes are a few kB; more is not a recipe (or a YAML bomb)
MAX_RECIPE_BYTES = 1024 * 1024


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> TrainingConfig:
    """Read a recipe and apply ``key=value`` overrides (dotted keys, YAML values)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found. Recipes shipped with napari-histo: training/recipes/")
    if not path.is_file():
        raise ConfigError(
            f"{path}: is a folder, not a recipe; give a YAML file such as training/recipes/*.yaml"
        )
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes is far too large for a recipe; is this the right file?"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a recipe is YAML text, "
            "see training/recipes/ for examples"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    data = _parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(
            f"{path}: the recipe is empty; it needs at least the sections data and model, "
            "see training/recipes/ for examples"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a recipe is a mapping of sections (data:, model:, train: ...), got a YAML "
            f"{_yaml_kind(data)}"
        )
    data = apply_overrides(data, overrides)
    data["recipe_path"] = str(path.resolve())
    return config_from_dict(data, source=str(path))


def _parse_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{where}: not valid YAML ({problem}{at})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{where}: YAML nested too deeply to be a recipe") from exc


def _yaml_kind(value: Any) -> str:
    names = {list: "list", str: "text", int: "number", float: "number", bool: "true/false"}
    return names.get(type(value), type(value).__name__)


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.batch_size=32", "train.phases[0].lr=1e-4"]`` applied to a copy of ``data``."""
    import copy
    import re

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.batch_size=32")
        value = _parse_yaml(raw, f"--set {item!r}") if raw.strip() else ""
        node: Any = data
        steps: list[str | int] = []
        for part in key.split("."):
            match = re.fullmatch(r"([A-Za-z_]\w*)((?:\[\d+\])*)", part.strip())
            if match is None:
                raise ConfigError(
                    f"--set {item!r}: {part!r} is not a key; use dotted names such as train.batch_size "
                    "or train.phases[0].lr"
                )
            steps.append(match[1])
            steps += [int(i) for i in re.findall(r"\[(\d+)\]", match[2])]
        for i, step in enumerate(steps[:-1]):
            nxt = steps[i + 1]
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    size = len(node) if isinstance(node, list) else 0
                    raise ConfigError(f"--set {item!r}: there is no item [{step}] (the list has {size})")
                node = node[step]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {item!r}: {step!r} is not inside a section")
                node = node.setdefault(step, [] if isinstance(nxt, int) else {})
        last = steps[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise ConfigError(f"--set {item!r}: there is no item [{last}] to set")
            node[last : last + 1] = [value]
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"--set {item!r}: {key.rsplit('.', 1)[0]!r} is not a section")
    return data


def config_from_dict(data: dict[str, Any], source: str = "recipe") -> TrainingConfig:
    """Build a :class:`TrainingConfig`, rejecting unknown keys and wrong types."""
    ssl = data.get("ssl") if isinstance(data, dict) else None
    if isinstance(ssl, dict) and ssl.get("only") is True and ssl.get("data"):
        section = data.get("data")  # SSL only on unlabelled tiles: no labelled data (data.cache may be set)
        if section is None or (isinstance(section, dict) and "source" not in section):
            data = {**data, "data": {**(section or {}), "source": _NO_DATA}}
    try:
        config = _build(TrainingConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
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
    section = where[:-1] if where else "a recipe"
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping of keys (key: value lines), got {_short(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted((k for k in data if k not in names), key=str)
    if unknown:
        shown = [n for n in names if n != "recipe_path"]  # set by load_config, not written in recipes
        described = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), shown, n=1, cutoff=0.6)
            described.append(f"'{where}{key}'" + (f" (did you mean '{where}{close[0]}'?)" if close else ""))
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(described)} in the recipe; "
            f"allowed keys{' in ' + section if where else ''}: {', '.join(shown)}"
        )
    kwargs = {name: _coerce(hints[name], data[name], where + name) for name in names if name in data}
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in kwargs]  # fmt: skip
    if required:
        raise ConfigError(
            f"required key(s) {', '.join(where + r for r in required)} missing; "
            "see training/recipes/ for examples"
        )
    return cls(**kwargs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if value is None:  # an empty section ("augment:" with nothing below): the defaults
            value = {}
        return _build(hint, value, key + ".")
    if value is None:
        raise ConfigError(f"{key}: has no value; give one or remove the key")
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_short(value)}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return tuple(value) if isinstance(value, list) else value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_short(value)}")
        return value
    if hint in (int, float):
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {_short(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_short(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected text, got {_short(value)}")
        return str(value)
    return value


_CHOICES = {
    ("data", "source"): ("folders", "idc", "tiles_csv", "slides", "labels_csv", "synthetic",
                         "synthetic_stain", "synthetic_segmentation", "embeddings"),
    ("data", "balance"): ("none", "undersample", "weighted"),
    ("data", "group_by"): ("none", "slide", "patient"),
    ("model", "task"): ("classification", "segmentation", "mil"),
    ("model", "tta"): ("none", "dihedral8"),
    ("augment", "stain_normalize"): ("none", "macenko", "reinhard", "vahadane"),
    ("train", "loss"): ("ce", "bce", "dice", "dice_ce"),
    ("train", "class_weights"): ("none", "balanced"),
}  # fmt: skip
_PHASE_CHOICES = {
    "optimizer": ("sgd", "adam", "adamw", "adamax"),
    "scheduler": ("none", "plateau", "step", "cosine"),
}


def _between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    def ok(v: float) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return ok


#: (section, key, test, what a good value is); sections' values are numbers already
_RANGES: tuple[tuple[str, str, Any, str], ...] = (
    ("data", "tile_mpp", _between(0.01, 100), "a µm/px between 0.01 and 100 (0.25 to 2 is usual)"),
    ("data", "tile_px", _between(8, 8192), "a tile edge of 8 to 8192 pixels"),
    ("data", "min_tissue", _between(0, 1), "a fraction from 0 to 1"),
    ("data", "valid_fraction", _between(0, 1, high_open=True), "a fraction from 0 to below 1 (0.2 is usual)"),
    ("data", "test_fraction", _between(0, 1, high_open=True), "a fraction from 0 to below 1"),
    ("data", "selection_from_train", _between(0, 1, high_open=True), "0 (off) or below 1 (0.1 is usual)"),
    ("data", "max_per_class", _between(0, math.inf), "0 (all) or a number of patches"),
    ("data", "synthetic_per_class", _between(2, 1_000_000), "2 or more patches"),
    ("data", "synthetic_px", _between(8, 4096), "a patch edge of 8 to 4096 pixels"),
    ("model", "input_size", lambda v: v == 0 or 8 <= v <= 4096, "0 (the patch size) or 8 to 4096 pixels"),
    ("model", "patch_size_pixels", lambda v: v == 0 or 8 <= v <= 8192, "0 (the data's) or 8 to 8192 pixels"),
    ("model", "spacing_um_px", _between(0.01, 100), "a µm/px between 0.01 and 100"),
    ("model", "drop_rate", _between(0, 1, high_open=True), "a fraction from 0 to below 1"),
    ("augment", "rotate_deg", _between(0, 180), "degrees from 0 to 180"),
    ("augment", "shift", _between(0, 1, high_open=True), "a fraction of the patch from 0 to below 1"),
    ("augment", "zoom", _between(0, 1, high_open=True), "a fraction from 0 to below 1 (0.1 = ±10 %)"),
    ("augment", "shear_deg", _between(0, 60), "degrees from 0 to 60"),
    ("augment", "brightness", _between(0, 1), "a fraction from 0 to 1"),
    ("augment", "contrast", _between(0, 1), "a fraction from 0 to 1"),
    ("augment", "hed_sigma", _between(0, 1), "from 0 to 1 (0.03 is usual)"),
    ("train", "batch_size", _between(1, 1_000_000), "1 or more patches per batch (32 or 64 is usual)"),
    ("train", "grad_accum", _between(1, 100_000), "1 or more batches"),
    ("train", "early_stopping", _between(0, math.inf), "0 (off) or a number of epochs"),
    ("train", "num_workers", _between(0, 1024), "0 or more DataLoader processes"),
    ("train", "max_steps_per_epoch", _between(0, math.inf), "0 (all) or a number of steps"),
    ("train", "seed", _between(0, 2**63 - 1), "a whole number from 0"),
    ("ssl", "epochs", _between(1, 1_000_000), "1 or more epochs"),
    ("ssl", "lr", _between(0, 10, low_open=True), "a learning rate above 0 (1e-3 is usual)"),
    ("ssl", "temperature", _between(0, 100, low_open=True), "above 0 (0.5 is usual)"),
    ("ssl", "batch_size", _between(2, 1_000_000), "2 or more patches (pairs of views need two)"),
    ("ssl", "projection_dim", _between(1, 65536), "1 or more"),
    ("ssl", "tile_px", _between(8, 8192), "a tile edge of 8 to 8192 pixels"),
    ("ssl", "min_tissue", _between(0, 1), "a fraction from 0 to 1"),
    ("ssl", "max_tiles", _between(0, math.inf), "0 (all) or a number of tiles (2 or more)"),
    ("clustering", "pca_dims", _between(1, 1024), "1 or more dimensions"),
    ("mil", "hidden", _between(2, 65536), "2 or more (256 is usual)"),
    ("mil", "dropout", _between(0, 1, high_open=True), "a fraction from 0 to below 1 (0.25 is usual)"),
    ("mil", "heads", _between(1, 256), "1 or more heads (8 is usual)"),
    ("mil", "k_sample", _between(1, 100_000), "1 or more tiles (8 is usual)"),
    ("mil", "bag_weight", _between(0, 1), "from 0 to 1 (0.7 is usual)"),
    ("mil", "max_tiles", _between(0, math.inf), "0 (all) or a number of tiles"),
    ("clustering", "max_samples", _between(2, math.inf), "2 or more patches"),
    ("report", "examples_per_class", _between(1, 64), "1 to 64 patches (4 is usual)"),
)
_PHASE_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("epochs", _between(1, 1_000_000), "1 or more epochs"),
    ("lr", _between(0, 10, low_open=True),
     "a learning rate above 0 (1e-4 to 1e-2 is usual; to keep layers fixed use trainable: head or "
     "from:<stage>)"),
    ("weight_decay", _between(0, 1), "from 0 to 1 (1e-4 is usual)"),
    ("momentum", _between(0, 1, high_open=True), "from 0 to below 1 (0.9 is usual)"),
    ("factor", _between(0, 1, low_open=True, high_open=True), "above 0 and below 1 (0.1 is usual)"),
    ("patience", _between(0, math.inf), "0 or more epochs"),
    ("step_size", _between(1, math.inf), "1 or more epochs"),
    ("gamma", _between(0, 1, low_open=True), "above 0 and at most 1 (0.9 is usual)"),
)  # fmt: skip


#: ``data.source`` of an SSL-only recipe that has no data section (its tiles are ``ssl.data``)
_NO_DATA = "none"


def _check(config: TrainingConfig, source: str) -> None:
    _check_ssl(config, source)
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(config, section), key)
        if (section, key) == ("data", "source") and value == _NO_DATA:
            continue  # allowed by _check_ssl
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"{source}: {section}.{key} = {value!r}{hint}; choose one of {', '.join(allowed)}"
            )
    for section, key, ok, what in _RANGES:
        value = getattr(getattr(config, section), key)
        if not ok(value):
            raise ConfigError(f"{source}: {section}.{key} = {value!r}; give {what}")
    if not config.train.phases:
        raise ConfigError(
            f"{source}: train.phases is empty; give at least one phase, e.g. [{{epochs: 5, lr: 1e-3}}]"
        )
    for i, phase in enumerate(config.train.phases):
        for key, allowed in _PHASE_CHOICES.items():
            value = getattr(phase, key)
            if value not in allowed:
                raise ConfigError(
                    f"{source}: train.phases[{i}].{key} = {value!r}; choose one of {', '.join(allowed)}"
                )
        for key, ok, what in _PHASE_RANGES:
            value = getattr(phase, key)
            if not ok(value):
                raise ConfigError(f"{source}: train.phases[{i}].{key} = {value!r}; give {what}")
        if not (phase.trainable in ("all", "head") or phase.trainable.startswith("from:")):
            raise ConfigError(
                f"{source}: train.phases[{i}].trainable = {phase.trainable!r}; use all, head or "
                "from:<stage>, e.g. from:blocks.5 (a parameter-name prefix)"
            )
    _check_mil(config, source)
    data, model = config.data, config.model
    if data.valid_fraction + data.test_fraction >= 1:
        raise ConfigError(
            f"{source}: data.valid_fraction + data.test_fraction = "
            f"{data.valid_fraction + data.test_fraction:g} leaves nothing to train on; keep the sum below 1"
        )
    names = list(data.class_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or any(not n.strip() for n in names):
        raise ConfigError(f"{source}: data.class_names = {names}; give each class one non-empty name")
    if data.class_names and len(data.class_names) < 2:
        raise ConfigError(f"{source}: data.class_names = {names}; a classifier needs two or more classes")
    if (model.mean or model.std) and not (
        len(model.mean) == 3 and len(model.std) == 3 and all(v > 0 for v in model.std)
    ):
        raise ConfigError(
            f"{source}: model.mean = {list(model.mean)}, model.std = {list(model.std)}; give three values "
            "each (red, green, blue), std above 0, or leave both out"
        )
    if not model.architecture.strip():
        raise ConfigError(f"{source}: model.architecture is empty; give a timm name such as resnet18")
    if config.train.loss == "bce" and len(config.data.class_names) not in (0, 2):
        raise ConfigError(f"{source}: train.loss = bce needs two classes, got {config.data.class_names}")
    if not config.name.strip() or Path(config.name).name != config.name or config.name in (".", ".."):
        raise ConfigError(
            f"{source}: name = {config.name!r}; the run's name is one plain folder name (no / or ..)"
        )


def _check_mil(config: TrainingConfig, source: str) -> None:
    mil, embeddings = config.model.task == "mil", config.data.source == "embeddings"
    if mil != embeddings:
        raise ConfigError(
            f"{source}: model.task = {config.model.task!r} with data.source = {config.data.source!r}; "
            "slide-level (MIL) training is model.task: mil with data.source: embeddings (tile embedding "
            "tables + a slide label CSV), and only it reads embeddings"
        )
    if mil and config.model.architecture not in ("abmil", "clam_sb", "transmil"):
        raise ConfigError(
            f"{source}: model.architecture = {config.model.architecture!r}; with model.task: mil choose "
            "abmil, clam_sb or transmil"
        )
    if mil and config.model.architecture == "transmil" and config.mil.hidden % config.mil.heads:
        raise ConfigError(
            f"{source}: mil.hidden = {config.mil.hidden} is not a multiple of mil.heads = {config.mil.heads}"
        )
    if mil and any(phase.trainable != "all" for phase in config.train.phases):
        raise ConfigError(f"{source}: a MIL network trains whole; leave train.phases[*].trainable at all")
    if mil and config.train.loss not in ("ce", "bce"):
        raise ConfigError(f"{source}: train.loss = {config.train.loss!r}; a MIL recipe uses ce or bce")
    if mil and (config.ssl.enabled or config.ssl.only or config.clustering.enabled):
        raise ConfigError(f"{source}: ssl and clustering work on patches, not on a MIL recipe; turn them off")


def _check_ssl(config: TrainingConfig, source: str) -> None:
    ssl = config.ssl
    if config.data.source == _NO_DATA and not (ssl.only and ssl.data):
        raise ConfigError(
            f"{source}: data.source = {_NO_DATA!r} (no labelled data) works only with ssl.only = true and "
            "ssl.data (unlabelled tiles); give a data source such as folders"
        )
    if ssl.max_tiles == 1:
        raise ConfigError(f"{source}: ssl.max_tiles = 1; SimCLR needs 2 or more tiles (0 = all)")
    blank = [i for i, item in enumerate(ssl.data) if not str(item).strip()]
    if blank:
        raise ConfigError(
            f"{source}: ssl.data[{blank[0]}] is empty; give a folder of tiles, a tiles.csv or a slide file"
        )
