"""Model directories: ``save_model`` and ``load_model`` (safetensors + ``model.json``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_histo.errors import DeviceUnavailableError, InvalidParameterError
from napari_histo.models.registry import create_network
from napari_histo.models.spec import WEIGHTS_FILE, ModelSpec, ModelSpecError, load_spec, save_spec

__all__ = ["BUILTIN_MODELS_DIR", "load_model", "resolve_device", "resolve_model_dir", "save_model"]

BUILTIN_MODELS_DIR = Path(__file__).resolve().parent / "builtin"


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
    """A model directory from a path, or the name of a model shipped with napari-histo."""
    path = Path(model)
    if path.is_dir():
        return path
    builtin = BUILTIN_MODELS_DIR / str(model)
    if builtin.is_dir():
        return builtin
    shipped = (
        sorted(p.name for p in BUILTIN_MODELS_DIR.iterdir() if p.is_dir())
        if BUILTIN_MODELS_DIR.is_dir()
        else []
    )
    raise ModelSpecError(
        f"{model}: not a model directory and not a built-in model name. Built-in models: "
        f"{shipped or 'none'}; a model directory holds model.json and {WEIGHTS_FILE}."
    )


def save_model(model: Any, spec: ModelSpec, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``weights.safetensors`` and ``model.json`` atomically into ``model_dir``."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = model_dir / (WEIGHTS_FILE + ".part")
    save_file(state, str(tmp), metadata={"architecture": spec.architecture})
    os.replace(tmp, model_dir / WEIGHTS_FILE)
    save_spec(spec, model_dir)
    return model_dir


def load_model(
    model: str | os.PathLike[str], device: str | Any = "auto", *, spec: ModelSpec | None = None
) -> Any:
    """A ready ``torch.nn.Module`` in eval mode from a model directory or built-in name.

    ``spec`` is the directory's already-read ``model.json`` (read here when not given).
    Raises :class:`ModelSpecError` naming the first mismatching tensors when the
    weights do not fit the architecture ``model.json`` describes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = resolve_model_dir(model)
    spec = spec if spec is not None else load_spec(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.exists():
        raise ModelSpecError(f"{model_dir}: {WEIGHTS_FILE} is missing; the model directory is incomplete.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ModelSpecError(f"{weights}: not a readable safetensors file ({exc}).") from exc
    network = create_network(spec)
    _check_fits(network.state_dict(), state, spec, weights)
    network.load_state_dict(state)
    return network.eval().to(resolve_device(device))


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
