"""ImageNet initialisation: timm's hub for online users, local weight files always.

Local files are read with ``torch.load(weights_only=True)`` (never unpickling
code) and mapped onto timm's parameter names.  Files from other code bases
(torchvision's MobileNetV2, lukemelas' EfficientNet-Lite0) use other names for
the same tensors in the same order, so they are matched by order and shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_histo.errors import DownloadError, UnsupportedModelError
from napari_histo.models.spec import ModelSpecError

__all__ = [
    "LOCAL_IMAGENET_FILES",
    "WeightFileNotFoundError",
    "check_weight_file",
    "holds_code",
    "hub_reachable",
    "load_imagenet_weights",
    "offline_message",
    "read_safetensors",
    "read_weight_file",
    "remap_state_dict",
    "timm_pretrained",
]


class WeightFileNotFoundError(ModelSpecError, FileNotFoundError):
    """A weight file named in a recipe or on the command line does not exist."""


#: file names of known local ImageNet weights per timm architecture, and their normalisation
LOCAL_IMAGENET_FILES = {
    "mobilenetv2_100": {
        "file": "mobilenet_v2-b0353104.pth",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
    "tf_efficientnet_lite0": {
        "file": "efficientnet-lite0-57934424.pth",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    },
}


#: where timm's hub lives; a quick connect to it tells "offline" apart before timm's minute of retries
HUB_HOST = ("huggingface.co", 443)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether timm's hub can be reached: ``HF_HUB_OFFLINE`` unset and a TCP connect within ``timeout`` s."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hub_file(architecture: str) -> str | None:
    """The weight file timm downloaded earlier for ``architecture`` (Hugging Face cache), if any."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(architecture)
        repo = cfg.hf_hub_id if cfg is not None else None
        if not repo:
            return None
        repo, _, revision = repo.partition("@")
        for name in ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, name, revision=revision or None)
            if isinstance(found, str):
                return found
    except (ImportError, AttributeError, KeyError, ValueError, RuntimeError, OSError):  # treat as not cached
        return None
    return None


def offline_message(architecture: str, *, reached: bool = False) -> str:
    """Every way to start a run without timm's hub, for ``architecture``."""
    known = LOCAL_IMAGENET_FILES.get(architecture)
    local = (
        f"; shipped ImageNet files: {known['file']} (in ../shared/data/weights for the tests)"
        if known
        else f"; shipped ImageNet files exist for {', '.join(sorted(LOCAL_IMAGENET_FILES))} ("
        f"{', '.join(str(v['file']) for v in LOCAL_IMAGENET_FILES.values())}, in ../shared/data/weights "
        "for the tests)"
    )
    why = (
        "Without the hub"
        if reached
        else f"model.weights = timm needs timm's hub (huggingface.co) to fetch ImageNet weights for "
        f"{architecture!r}, and it cannot be reached here (offline, or HF_HUB_OFFLINE is set)"
    )
    return (
        f"{why}. Options: --set model.weights=none "
        "(random initialisation); --set model.weights=/path/file.pth (a local .pth or .safetensors weight "
        f"file, or a model directory){local}; or run once on a connected machine so timm caches the weights."
    )


def timm_pretrained(architecture: str, num_classes: int) -> Any:
    """timm's ImageNet weights from its hub (or its cache), or at once a clear error when offline."""
    import timm

    overlay: dict[str, Any] = {}
    if not hub_reachable():
        cached = _cached_hub_file(architecture)
        if cached is None:
            raise DownloadError(offline_message(architecture))
        overlay = {"pretrained_cfg_overlay": {"file": cached}}
    try:
        return timm.create_model(architecture, pretrained=True, num_classes=num_classes, **overlay)
    except Exception as exc:  # hub failures come as many types (HTTP, OSError, HF errors)
        raise DownloadError(
            f"could not fetch ImageNet weights for {architecture!r} from the timm hub ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}). {offline_message(architecture, reached=True)}"
        ) from exc


def load_imagenet_weights(
    model: Any, path: str | os.PathLike[str], *, strict_backbone: bool = True
) -> list[str]:
    """Load a local ImageNet weight file into ``model`` (a timm classifier).

    The classifier head is skipped when its shape differs (a new number of
    classes).  Returns the names of the parameters left at their initial values.
    """
    state = read_weight_file(Path(path))
    target = model.state_dict()
    try:
        mapped = remap_state_dict(state, target)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{path}: {exc}") from exc
    head = _head_keys(model)
    skipped = [k for k in head if k in mapped and mapped[k].shape != target[k].shape]
    for key in skipped:
        del mapped[key]
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked")]
    backbone_missing = [k for k in missing if k not in head]
    if strict_backbone and backbone_missing:
        raise ModelSpecError(
            f"{path}: {len(backbone_missing)} backbone tensors have no counterpart "
            f"(first: {backbone_missing[:3]}). This file is for another architecture."
        )
    model.load_state_dict(mapped, strict=False)
    return missing


def remap_state_dict(state: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Rename ``state``'s tensors to ``target``'s names: by name when they agree, else by order.

    Order matching pairs the i-th tensor of each (ignoring BatchNorm's
    ``num_batches_tracked`` counters) and requires every shape to agree.
    """
    if set(target) <= set(state) or set(state) <= set(target):
        return {k: v for k, v in state.items() if k in target}
    src = [k for k in state if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ModelSpecError(
            f"weight file has {len(src)} tensors but the model has {len(dst)}; "
            "it is for another architecture."
        )
    out = {}
    for s, d in zip(src, dst):
        if tuple(state[s].shape) != tuple(target[d].shape) and not _is_head(d):
            raise ModelSpecError(
                f"tensor {s!r} {tuple(state[s].shape)} does not fit {d!r} {tuple(target[d].shape)}; "
                "the weight file is for another architecture."
            )
        out[d] = state[s]
    return out


def read_weight_file(path: Path) -> dict[str, Any]:
    """The tensors of a local weight file: safetensors, or a ``torch.save`` state dict of tensors.

    PyTorch files are read with ``torch.load(weights_only=True)``, whose unpickler builds
    tensors and plain containers only: a file that holds anything else (classes, code)
    is refused with :class:`~napari_histo.errors.UnsupportedModelError`, never run.
    """
    import pickle
    import zipfile

    path = Path(path)
    if not path.exists():
        raise WeightFileNotFoundError(f"{path}: weight file not found")
    if path.is_dir():
        raise ModelSpecError(f"{path}: is a folder, not a weight file (.pth or .safetensors)")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        return read_safetensors(path)
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if holds_code(exc):
            raise UnsupportedModelError(
                f"{path}: holds Python objects besides tensors, which could run code when loaded; refused. "
                "Use a file of weights only (a state dict saved with torch.save(model.state_dict(), ...)) "
                "or a .safetensors file."
            ) from exc
        raise ModelSpecError(
            f"{path}: not a PyTorch weight file (the first bytes are {head[:4]!r}); use a .pth state dict "
            "or a .safetensors file."
        ) from exc
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        AttributeError,
        TypeError,
    ) as exc:
        raise ModelSpecError(
            f"{path}: not a readable PyTorch weight file ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); it is damaged, truncated or another format."
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    tensors = (
        {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    )
    if not tensors:
        raise ModelSpecError(
            f"{path}: holds a {type(state).__name__} without tensors, not a state dict of weights"
        )
    return tensors


def holds_code(exc: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused a file for holding classes or callables
    (which unpickling would import and run), rather than for being damaged."""
    text = str(exc).lower()
    return "unsupported global" in text or "unsupported class" in text


def _head_keys(model: Any) -> list[str]:
    get = getattr(model, "get_classifier", None)
    head = get() if get else None
    if head is None:
        return []
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in head.parameters() if id(p) in names]


def _is_head(name: str) -> bool:
    return name.split(".")[0] in {"classifier", "fc", "head", "last_linear"}


_ZIP_MAGIC = b"PK\x03\x04"


def check_weight_file(path: Path) -> None:
    """Refuse files that are pickles (``torch.save``, ``pickle``) where tensors alone are expected.

    Pickles are never unpickled: a pickle can run any code when it is loaded.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except IsADirectoryError:
        raise ModelSpecError(f"{path}: is a folder, not a weight file.") from None
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    if head[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        return
    if head.startswith(_ZIP_MAGIC) or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        kind = "a PyTorch checkpoint (torch.save zip)" if head.startswith(_ZIP_MAGIC) else "a Python pickle"
        raise UnsupportedModelError(
            f"{path}: is {kind}, not a safetensors file. napari-histo never unpickles model files (a pickle "
            f"can run any code when loaded). Save the weights as safetensors (napari_histo.models.save_model "
            "writes a model directory), or train the model with `histo train`."
        )


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; one clear error for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_weight_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        size = path.stat().st_size if path.is_file() else 0
        what = "an empty file" if size == 0 else f"{size:,} bytes"
        raise ModelSpecError(
            f"{path}: not a readable safetensors file ({what}; {exc}). It is damaged or another format: "
            "copy the model directory again, or re-export it."
        ) from exc
