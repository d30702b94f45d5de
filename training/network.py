"""The network a recipe trains: registry model, local ImageNet weights, freezing by stage.

Networks come from :func:`napari_histo.models.create_network`, so every
trained model directory loads again with :func:`napari_histo.models.load_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from napari_histo.models import ModelSpec, ModelSpecError, create_network
from napari_histo.models.spec import SPEC_FILE, WEIGHTS_FILE, load_spec
from napari_histo.models.weights import LOCAL_IMAGENET_FILES, load_imagenet_weights, read_weight_file
from training.config import ConfigError, TrainingConfig

__all__ = [
    "build_network",
    "head_parameters",
    "imagenet_normalisation",
    "set_trainable",
    "source_model_dir",
    "source_spec",
    "weights_path",
]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def imagenet_normalisation(config: TrainingConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean/std: the recipe's, else the source model directory's, else those of the local weight file,
    else ImageNet's."""
    if config.model.mean and config.model.std:
        return tuple(config.model.mean), tuple(config.model.std)
    source = source_spec(config)
    if source is not None:
        return tuple(source.mean), tuple(source.std)
    known = LOCAL_IMAGENET_FILES.get(config.model.architecture)
    if known and Path(config.model.weights).name == known["file"]:
        return tuple(known["mean"]), tuple(known["std"])
    return _IMAGENET


def build_network(config: TrainingConfig, spec: ModelSpec) -> torch.nn.Module:
    """The network for ``spec``, initialised as ``model.weights`` says (none | timm | a local file)."""
    weights = config.model.weights
    if weights in ("none", ""):
        network = create_network(spec)
    elif weights == "timm":
        network = create_network(spec, pretrained=True)
    else:
        path = weights_path(config)
        network = create_network(spec)
        if spec.task.value == "segmentation":
            encoder = getattr(network, "encoder", network)
            state = read_weight_file(path)
            try:
                encoder.load_state_dict(state, strict=False)
            except RuntimeError as exc:
                raise ModelSpecError(
                    f"{path}: does not fit the {spec.architecture} encoder "
                    f"({' '.join(str(exc).split())[:200]}); the file is for another architecture."
                ) from exc
        else:
            fresh = load_imagenet_weights(network, path)
            _reset_head(network, fresh)
    if config.model.drop_rate and hasattr(network, "drop_rate"):
        network.drop_rate = config.model.drop_rate
    return network


def weights_path(config: TrainingConfig) -> Path:
    """``model.weights`` as a path: relative paths start at the recipe's folder; a model directory
    (``model.json`` + ``weights.safetensors``) stands for its weight file."""
    path = Path(config.model.weights).expanduser()
    if not path.is_absolute() and config.recipe_path:
        path = Path(config.recipe_path).parent / path
    if path.is_dir() and (path / SPEC_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return path / WEIGHTS_FILE
    return path


def source_model_dir(config: TrainingConfig) -> Path | None:
    """The model directory ``model.weights`` comes from (the folder, or the weight file inside it)."""
    if config.model.weights in ("none", "", "timm"):
        return None
    path = weights_path(config)
    if path.name == WEIGHTS_FILE and path.is_file() and (path.parent / SPEC_FILE).is_file():
        return path.parent
    return None


def source_spec(config: TrainingConfig) -> ModelSpec | None:
    """The ``model.json`` of the model directory the weights come from, if they come from one."""
    folder = source_model_dir(config)
    return None if folder is None else load_spec(folder)


def _reset_head(network: torch.nn.Module, fresh: list[str]) -> None:
    """Near-zero init of a new classifier: timm's default gives logits of ±20 on ImageNet features,
    which costs the head-only phase most of its steps to undo."""
    params = dict(network.named_parameters())
    with torch.no_grad():
        for name in fresh:
            if name in params:
                params[name].normal_(0, 0.01) if params[name].ndim > 1 else params[name].zero_()


def head_parameters(network: torch.nn.Module) -> list[str]:
    """Names of the classifier (timm) or decoder + head (segmentation) parameters."""
    get = getattr(network, "get_classifier", None)
    if get is not None:
        ids = {id(p) for p in get().parameters()}
    else:
        ids = {id(p) for name, p in network.named_parameters() if not name.startswith("encoder.")}
    return [n for n, p in network.named_parameters() if id(p) in ids]


def set_trainable(network: torch.nn.Module, trainable: str) -> int:
    """Freeze parameters as a phase asks; returns the number of trainable parameters.

    ``all``: everything; ``head``: the classifier only; ``from:<prefix>``: the
    head and every parameter from the first whose name starts with ``prefix``
    on (e.g. ``from:blocks.5`` for timm EfficientNet/MobileNet, ``from:layer4``
    for ResNet, ``from:conv2d_7b`` for Inception-ResNet-v2).
    """
    names = [n for n, _ in network.named_parameters()]
    head = set(head_parameters(network))
    if trainable == "all":
        keep = set(names)
    elif trainable == "head":
        keep = head
    else:
        prefix = trainable.removeprefix("from:")
        start = next((i for i, n in enumerate(names) if n.startswith(prefix)), None)
        if start is None:
            stages = sorted({".".join(n.split(".")[:2]) for n in names})
            raise ConfigError(
                f"trainable {trainable!r}: no parameter starts with {prefix!r}; stages: {stages}"
            )
        keep = set(names[start:]) | head
    count = 0
    for name, param in network.named_parameters():
        param.requires_grad_(name in keep)
        count += param.numel() if name in keep else 0
    return count


def freeze_batchnorm_stats(network: torch.nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen in eval mode (keep ImageNet statistics)."""
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def network_summary(network: Any) -> dict[str, int]:
    total = sum(p.numel() for p in network.parameters())
    return {"parameters": total, "trainable": sum(p.numel() for p in network.parameters() if p.requires_grad)}
