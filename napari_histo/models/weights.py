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

from napari_histo.errors import DownloadError
from napari_histo.models.spec import ModelSpecError

__all__ = ["LOCAL_IMAGENET_FILES", "load_imagenet_weights", "remap_state_dict", "timm_pretrained"]

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


def timm_pretrained(architecture: str, num_classes: int) -> Any:
    """timm's ImageNet weights from its hub, or a clear error when offline."""
    import timm

    try:
        return timm.create_model(architecture, pretrained=True, num_classes=num_classes)
    except Exception as exc:  # hub failures come as many types (HTTP, OSError, HF errors)
        known = LOCAL_IMAGENET_FILES.get(architecture)
        hint = (
            f" A local copy works offline: pass weights=PATH to {known['file']}."
            if known
            else " Download the weights on a connected machine, or pass a local .pth/.safetensors file."
        )
        raise DownloadError(
            f"could not fetch ImageNet weights for {architecture!r} from the timm hub ({type(exc).__name__}: "
            f"{exc}). Are you offline?{hint}"
        ) from exc


def load_imagenet_weights(
    model: Any, path: str | os.PathLike[str], *, strict_backbone: bool = True
) -> list[str]:
    """Load a local ImageNet weight file into ``model`` (a timm classifier).

    The classifier head is skipped when its shape differs (a new number of
    classes).  Returns the names of the parameters left at their initial values.
    """
    state = _read_state_dict(Path(path))
    target = model.state_dict()
    mapped = remap_state_dict(state, target)
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


def _read_state_dict(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelSpecError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    return state


def _head_keys(model: Any) -> list[str]:
    get = getattr(model, "get_classifier", None)
    head = get() if get else None
    if head is None:
        return []
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in head.parameters() if id(p) in names]


def _is_head(name: str) -> bool:
    return name.split(".")[0] in {"classifier", "fc", "head", "last_linear"}
