"""``ModelSpec``: what a model directory's ``model.json`` says (no torch import).

A model directory holds ``model.json`` and ``weights.safetensors``.  The field
names follow WSInfer's ``config.json`` (``architecture``, ``num_classes``,
``class_names``, ``patch_size_pixels``, ``spacing_um_px``, ``transform``) so a
model exports to QuPath's WSInfer extension without renaming anything.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from napari_histo.errors import HistoError

__all__ = [
    "MIL_ARCHITECTURES",
    "SPEC_FILE",
    "TTA_MODES",
    "WEIGHTS_FILE",
    "ModelSpec",
    "ModelSpecError",
    "Task",
    "load_spec",
    "save_spec",
]

SPEC_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
SPEC_VERSION = "1.0"
#: test-time augmentation modes: none, or the mean over the 8 rotations/flips (dihedral group D4)
TTA_MODES = ("none", "dihedral8")
#: the largest model.json read (provenance and metrics make a few tens of kB; more is not a spec)
MAX_SPEC_BYTES = 16 * 1024 * 1024

# distinct, colour-blind-friendly defaults (Okabe-Ito) for classes without a colour
_DEFAULT_COLORS = [
    (0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167),
    (86, 180, 233), (213, 94, 0), (240, 228, 66), (0, 0, 0),
]  # fmt: skip


class ModelSpecError(HistoError, ValueError):
    """``model.json`` is missing, malformed, or disagrees with the weights."""


class Task(str, Enum):
    """What the model predicts."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    #: slide-level multiple-instance model on tile embeddings (:mod:`napari_histo.models.mil`)
    MIL = "mil"


#: MIL architectures (:mod:`napari_histo.models.mil`); a MIL spec's ``patch_size_pixels`` and
#: ``spacing_um_px`` are the tile edge and µm/px of the embeddings it was trained on
MIL_ARCHITECTURES = ("abmil", "clam_sb", "transmil")


@dataclass(frozen=True)
class ModelSpec:
    """The contract between a model's weights and the rest of napari-histo.

    Attributes
    ----------
    architecture : str
        timm model name (``resnet18``, ``efficientnet_b0`` ...), or for
        segmentation ``unet:<encoder>`` / ``fpn:<encoder>``.
    num_classes : int
    class_names : tuple of str
    patch_size_pixels : int
        Patch edge, in pixels **at** ``spacing_um_px``, read from the slide.
    spacing_um_px : float
        µm/px the model was trained at.
    task : Task
    class_colors : tuple of (r, g, b)
        0-255 display colours, one per class (Labels layers, QuPath classes).
    input_size : int
        Edge the patch is resized to before the network (often = patch size).
    mean, std : tuple of 3 floats
        Per-channel normalisation of 0-1 RGB input.
    stain : dict or None
        Fitted stain normaliser parameters the model expects (``core.stain`` JSON).
    name, description : str
    provenance, metrics : dict
        How the model was made (recipe, data, commit) and what it scored.
    tta : str
        Test-time augmentation at inference: ``"none"``, or ``"dihedral8"`` (the softmax
        probabilities averaged over the 8 rotations/flips of each patch, 8x the compute).
    temperature : float
        Logits are divided by it before the softmax (temperature scaling, fitted on the
        selection split; 1.0 = uncalibrated).
    """

    architecture: str
    num_classes: int
    class_names: tuple[str, ...]
    patch_size_pixels: int
    spacing_um_px: float
    task: Task = Task.CLASSIFICATION
    class_colors: tuple[tuple[int, int, int], ...] = ()
    input_size: int = 0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    stain: dict[str, Any] | None = None
    name: str = ""
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tta: str = "none"
    temperature: float = 1.0
    spec_version: str = SPEC_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if not self.class_colors:
            colors = tuple(_DEFAULT_COLORS[i % len(_DEFAULT_COLORS)] for i in range(self.num_classes))
            object.__setattr__(self, "class_colors", colors)
        object.__setattr__(self, "class_colors", tuple(tuple(int(v) for v in c) for c in self.class_colors))
        if not self.input_size:
            object.__setattr__(self, "input_size", int(self.patch_size_pixels))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "temperature", float(self.temperature))
        _validate(self)

    # -- WSInfer interop ------------------------------------------------------------
    def to_wsinfer_config(self) -> dict[str, Any]:
        """WSInfer's ``config.json`` (spec 1.0) for this model."""
        transform: list[dict[str, Any]] = []
        if self.input_size != self.patch_size_pixels:
            transform.append({"name": "Resize", "arguments": {"size": self.input_size}})
        transform.append({"name": "ToTensor"})
        transform.append({"name": "Normalize", "arguments": {"mean": list(self.mean), "std": list(self.std)}})
        return {
            "spec_version": "1.0",
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "patch_size_pixels": self.patch_size_pixels,
            "spacing_um_px": self.spacing_um_px,
            "transform": transform,
        }

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task"] = self.task.value
        data["class_names"] = list(self.class_names)
        data["class_colors"] = [list(c) for c in self.class_colors]
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["transform"] = self.to_wsinfer_config()["transform"]  # so WSInfer can read model.json too
        return data

    def with_updates(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)


def _validate(spec: ModelSpec) -> None:
    problems = []
    if not spec.architecture.strip():
        problems.append("architecture is empty; give a timm model name such as resnet18")
    if spec.num_classes < 2:
        problems.append(
            f"num_classes must be 2 or more (a model tells classes apart), got {spec.num_classes}"
        )
    if len(spec.class_names) != spec.num_classes:
        problems.append(f"class_names has {len(spec.class_names)} names for num_classes={spec.num_classes}")
    if len(spec.class_colors) != spec.num_classes:
        problems.append(
            f"class_colors has {len(spec.class_colors)} colours for num_classes={spec.num_classes}"
        )
    blank = [i for i, n in enumerate(spec.class_names) if not n.strip()]
    if blank:
        problems.append(f"class_names has empty names (at positions {blank})")
    repeated = sorted({n for n in spec.class_names if spec.class_names.count(n) > 1})
    if repeated:
        problems.append(f"class_names repeats {repeated}; every class needs its own name")
    if any(not 0 <= v <= 255 for c in spec.class_colors for v in c) or any(
        len(c) != 3 for c in spec.class_colors
    ):
        problems.append(f"class_colors must be [r, g, b] with 0-255 values, got {list(spec.class_colors)}")
    if spec.patch_size_pixels < 8 or spec.input_size < 8:
        problems.append(
            f"patch_size_pixels/input_size must be >= 8, got {spec.patch_size_pixels}/{spec.input_size}"
        )
    if not (math.isfinite(spec.spacing_um_px) and 0.01 <= spec.spacing_um_px <= 100):
        problems.append(f"spacing_um_px must be a µm/px between 0.01 and 100, got {spec.spacing_um_px}")
    values = (*spec.mean, *spec.std)
    if (
        len(spec.mean) != 3
        or len(spec.std) != 3
        or any(s <= 0 for s in spec.std)
        or not all(math.isfinite(v) for v in values)
    ):
        problems.append(f"mean/std need 3 values each with std > 0, got {spec.mean}/{spec.std}")
    if spec.tta not in TTA_MODES:
        problems.append(f"tta must be one of {list(TTA_MODES)}, got {spec.tta!r}")
    if not (math.isfinite(spec.temperature) and 0.01 <= spec.temperature <= 100):
        problems.append(f"temperature must be between 0.01 and 100 (1 = none), got {spec.temperature}")
    if spec.task is Task.MIL:
        problems += _mil_problems(spec)
    elif spec.architecture in MIL_ARCHITECTURES:
        problems.append(f"architecture {spec.architecture!r} is a slide-level (MIL) model; set task to mil")
    if problems:
        raise ModelSpecError("invalid model spec: " + "; ".join(problems) + ". Fix model.json.")


def _mil_problems(spec: ModelSpec) -> list[str]:
    """A MIL model reads embeddings: its architecture is a MIL one and it names its encoder."""
    problems = []
    if spec.architecture not in MIL_ARCHITECTURES:
        problems.append(
            f"task mil needs architecture {' | '.join(MIL_ARCHITECTURES)}, got {spec.architecture!r}"
        )
    mil = spec.provenance.get("mil")
    if not (isinstance(mil, dict) and isinstance(mil.get("in_features"), int) and mil["in_features"] > 0):
        problems.append("task mil needs provenance.mil.in_features (the embedding dimension, a whole number)")
    encoder = spec.provenance.get("encoder")
    if not (isinstance(encoder, dict) and encoder.get("name")):
        problems.append(
            "task mil needs provenance.encoder {name, hash, mpp, tile_px} (the embeddings' encoder)"
        )
    if spec.tta != "none":
        problems.append(f"tta {spec.tta!r} means nothing for a MIL model (it reads embeddings); use none")
    return problems


def load_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """Read ``model.json`` (or a WSInfer ``config.json``) from a file or model directory."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / SPEC_FILE, path / "config.json"]
        path = next((p for p in candidates if p.exists()), candidates[0])
    if not path.exists():
        raise ModelSpecError(
            f"{path}: no model spec here. A model directory holds {SPEC_FILE} and {WEIGHTS_FILE}; "
            "make one with `histo train` or napari_histo.models.save_model."
        )
    if not path.is_file():
        raise ModelSpecError(
            f"{path}: is a folder, not a JSON file; a model directory holds a file {SPEC_FILE}."
        )
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ModelSpecError(
                f"{path}: {size / 2**20:.0f} MiB is far too large for a model spec (at most "
                f"{MAX_SPEC_BYTES // 2**20} MiB); is this the right file?"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    if not raw.strip():
        raise ModelSpecError(f"{path}: is empty. Regenerate it (histo train writes it) or copy it again.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelSpecError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); {SPEC_FILE} is JSON text. "
            "Regenerate it (histo train writes it) or copy it again."
        ) from exc
    except json.JSONDecodeError as exc:
        raise ModelSpecError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Fix or regenerate the file."
        ) from exc
    except RecursionError as exc:
        raise ModelSpecError(
            f"{path}: JSON nested too deeply to be a model spec; regenerate the file."
        ) from exc
    return spec_from_dict(data, source=str(path))


#: JSON types of model.json's fields: (check, what to say)
_FIELD_TYPES: dict[str, tuple[Any, str]] = {
    "architecture": (lambda v: isinstance(v, str), "text, a timm model name such as resnet18"),
    "num_classes": (lambda v: _is_int(v), "a whole number"),
    "class_names": (lambda v: _is_list(v, lambda n: isinstance(n, str) or _is_int(n)), "a list of names"),
    "patch_size_pixels": (lambda v: _is_int(v), "a whole number of pixels"),
    "spacing_um_px": (lambda v: _is_number(v), "a number (µm/px)"),
    "task": (lambda v: v in [t.value for t in Task], "classification, segmentation or mil"),
    "class_colors": (lambda v: _is_list(v, lambda c: _is_list(c, _is_int)), "a list of [r, g, b] lists"),
    "input_size": (lambda v: _is_int(v), "a whole number of pixels"),
    "mean": (lambda v: _is_list(v, _is_number), "a list of 3 numbers"),
    "std": (lambda v: _is_list(v, _is_number), "a list of 3 numbers"),
    "stain": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "name": (lambda v: isinstance(v, str), "text"),
    "description": (lambda v: isinstance(v, str), "text"),
    "provenance": (lambda v: isinstance(v, dict), "an object"),
    "metrics": (lambda v: isinstance(v, dict), "an object"),
    "tta": (lambda v: v in TTA_MODES, " or ".join(TTA_MODES)),
    "temperature": (lambda v: _is_number(v), "a number (1.0 = no temperature scaling)"),
    "spec_version": (lambda v: isinstance(v, str), "text"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value: Any, item: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(item(v) for v in value)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def spec_from_dict(data: dict[str, Any], source: str = "model spec") -> ModelSpec:
    """A :class:`ModelSpec` from ``model.json`` content or a WSInfer ``config.json``.

    Raises :class:`ModelSpecError` naming the field, the value and what it should be.
    """
    if not isinstance(data, dict):
        raise ModelSpecError(
            f"{source}: holds a JSON {type(data).__name__}, not an object of fields "
            f"(architecture, num_classes, class_names ...). Regenerate it."
        )
    data = dict(data)
    transform = data.pop("transform", None)
    if transform and "mean" not in data:
        _read_transform(transform, data, source)
    known = [f.name for f in fields(ModelSpec)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        hints = [
            f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)
            for name in unknown
            for close in [difflib.get_close_matches(name, known, n=1)]
        ]
        raise ModelSpecError(
            f"{source}: unknown field(s) [{', '.join(hints)}]; known fields are {sorted(known)}."
        )
    missing = [n for n in ("architecture", "num_classes", "class_names", "patch_size_pixels", "spacing_um_px")
               if n not in data]  # fmt: skip
    if missing:
        raise ModelSpecError(f"{source}: required field(s) {missing} are missing.")
    wrong = [
        f"{name} = {_short(data[name])} should be {what}"
        for name, (ok, what) in _FIELD_TYPES.items()
        if name in data and not ok(data[name])
    ]
    if wrong:
        raise ModelSpecError(f"{source}: " + "; ".join(wrong) + ". Fix the file.")
    try:
        return ModelSpec(**data)
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(f"{source}: {exc}") from exc


def _read_transform(transform: Any, data: dict[str, Any], source: str) -> None:
    """mean/std and input size from WSInfer's ``transform`` list."""
    try:
        for step in transform:
            if step.get("name") == "Normalize":
                data["mean"] = list(step["arguments"]["mean"])
                data["std"] = list(step["arguments"]["std"])
            elif step.get("name") == "Resize":
                data["input_size"] = step["arguments"]["size"]
    except (AttributeError, KeyError, TypeError) as exc:
        raise ModelSpecError(
            f"{source}: transform = {_short(transform)} is not a WSInfer transform list "
            '([{"name": "Normalize", "arguments": {"mean": [...], "std": [...]}}, ...]).'
        ) from exc


def save_spec(spec: ModelSpec, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``model.json`` into ``model_dir`` atomically; returns its path."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / SPEC_FILE
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(spec.to_json_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path
