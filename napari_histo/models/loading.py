"""Model directories: ``save_model`` and ``load_model`` (safetensors + ``model.json``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_histo.errors import DeviceUnavailableError, InvalidParameterError, UnsupportedModelError
from napari_histo.models.registry import create_network
from napari_histo.models.spec import (
    SPEC_FILE,
    WEIGHTS_FILE,
    ModelSpec,
    ModelSpecError,
    Task,
    load_spec,
    save_spec,
)
from napari_histo.models.weights import check_weight_file, read_safetensors

__all__ = [
    "BUILTIN_MODELS_DIR",
    "check_weight_file",
    "load_model",
    "resolve_device",
    "resolve_model_dir",
    "save_model",
]

BUILTIN_MODELS_DIR = Path(__file__).resolve().parent / "builtin"
#: what load_model/create_network say about a slide-level model
_MIL_REFUSAL = (
    "{where}: is a slide-level (MIL) model that reads tile embeddings, not image patches; load it with "
    "napari_histo.models.mil.load_mil_model"
)


def resolve_device(device: str | Any = "auto") -> Any:
    """``"auto"`` → CUDA when available, else CPU; honours ``HISTO_DEVICE``."""
    import torch

    if isinstance(device, torch.device):
        return device
    device = os.environ.get("HISTO_DEVICE", device) if device == "auto" else device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(
            f"device {device!r} is not a device name; use auto, cpu, cuda or cuda:N"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {device!r} was asked for but CUDA is not available here; use --device cpu (or auto)"
        )
    return resolved


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """A model directory from a path, or the name of a model shipped with napari-histo.

    Raises :class:`~napari_histo.errors.UnsupportedModelError` for folders of other formats
    (WSInfer/TorchScript, PyTorch pickles, ONNX) and :class:`ModelSpecError` for anything else
    that is not a model directory.
    """
    path = Path(model)
    if path.is_dir():
        _refuse_foreign_folder(path)
        return path
    builtin = BUILTIN_MODELS_DIR / str(model)
    if builtin.is_dir() and path.name == str(model):
        return builtin
    shipped = (
        sorted(p.name for p in BUILTIN_MODELS_DIR.iterdir() if p.is_dir())
        if BUILTIN_MODELS_DIR.is_dir()
        else []
    )
    if path.is_file():
        hint = "give the folder that holds it" if path.name == SPEC_FILE else "give the model's folder"
        raise ModelSpecError(
            f"{model}: is a file, not a model directory; {hint} ({SPEC_FILE} + {WEIGHTS_FILE})."
        )
    import difflib

    close = difflib.get_close_matches(str(model), shipped, n=1)
    raise ModelSpecError(
        f"{model}: not a model directory and not a built-in model name"
        + (f" (did you mean {close[0]!r}?)" if close else "")
        + f". Built-in models: {shipped or 'none'}; a model directory holds {SPEC_FILE} and {WEIGHTS_FILE}."
    )


#: files that mark a model folder of another tool, and what to say about it
_TORCHSCRIPT_FILE = "torchscript_model.pt"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar")


def _refuse_foreign_folder(path: Path) -> None:
    """A clear refusal for WSInfer/TorchScript, pickle and ONNX model folders (no safetensors weights)."""
    if (path / WEIGHTS_FILE).exists():
        return
    if (path / _TORCHSCRIPT_FILE).exists():
        raise UnsupportedModelError(
            f"{path}: is a WSInfer model folder (config.json + {_TORCHSCRIPT_FILE}), which napari-histo does "
            "not load: TorchScript files are unpickled on loading, which can run code stored in them, "
            "so napari-histo reads only safetensors weights. Use the napari-histo model directory it was "
            f"exported from ({SPEC_FILE} + {WEIGHTS_FILE}), run it in QuPath's WSInfer extension or wsinfer, "
            "or train an "
            "equivalent model with `histo train`."
        )
    others = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (*_PICKLE_SUFFIXES, ".onnx"))
    if others:
        raise UnsupportedModelError(
            f"{path}: holds {', '.join(others[:3])} but no {WEIGHTS_FILE}; napari-histo loads only "
            "safetensors weights with a model.json (pickled PyTorch files can run code on loading, ONNX is "
            "not supported). "
            f"Save the model as a model directory (napari_histo.models.save_model writes {SPEC_FILE} + "
            f"{WEIGHTS_FILE}) or train one with `histo train`."
        )


def save_model(model: Any, spec: ModelSpec, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``weights.safetensors`` and ``model.json`` atomically into ``model_dir``."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = model_dir / (WEIGHTS_FILE + ".part")
    try:
        save_file(state, str(tmp), metadata={"architecture": spec.architecture})
        os.replace(tmp, model_dir / WEIGHTS_FILE)
    finally:  # a failed write (full disk) leaves no .part behind
        tmp.unlink(missing_ok=True)
    save_spec(spec, model_dir)
    return model_dir


def load_model(
    model: str | os.PathLike[str], device: str | Any = "auto", *, spec: ModelSpec | None = None
) -> Any:
    """A ready ``torch.nn.Module`` in eval mode from a model directory or built-in name.

    ``spec`` is the directory's already-read ``model.json`` (read here when not given).
    Raises :class:`ModelSpecError` naming the first mismatching tensors when the
    weights do not fit the architecture ``model.json`` describes, and
    :class:`~napari_histo.errors.UnsupportedModelError` for a pickle where safetensors belong.
    """
    model_dir = resolve_model_dir(model)
    spec = spec if spec is not None else load_spec(model_dir)
    if spec.task is Task.MIL:
        raise ModelSpecError(_MIL_REFUSAL.format(where=model_dir))
    weights = model_dir / WEIGHTS_FILE
    if not weights.exists():
        raise ModelSpecError(
            f"{model_dir}: {WEIGHTS_FILE} is missing; the model directory is incomplete. Copy the whole "
            f"folder again ({SPEC_FILE} + {WEIGHTS_FILE})."
        )
    state = read_safetensors(weights)
    try:
        network = create_network(spec)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{model_dir / SPEC_FILE}: {exc}") from exc
    _check_fits(network.state_dict(), state, spec, weights)
    _check_finite(state, weights)
    network.load_state_dict(state)
    return network.eval().to(resolve_device(device))


def _check_finite(state: dict[str, Any], source: Path) -> None:
    import torch

    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelSpecError(
            f"{source}: {len(bad)} tensor(s) hold NaN or infinite values (first: {bad[:3]}); these weights "
            "would give meaningless predictions (a training run that diverged?). Use an earlier checkpoint "
            "or train again with a lower learning rate."
        )


def _check_fits(expected: dict[str, Any], state: dict[str, Any], spec: ModelSpec, source: Path) -> None:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        parts.append(f"{len(wrong)} tensors differ in shape (first: {wrong[:2]})")
    if missing:
        parts.append(f"{len(missing)} tensors missing (first: {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[:3]})")
    raise ModelSpecError(
        f"{source} does not match model.json (architecture={spec.architecture!r}, "
        f"num_classes={spec.num_classes}): " + "; ".join(parts) + ". Were the weights trained for "
        "another architecture or number of classes? Fix model.json or use the matching weights."
    )
