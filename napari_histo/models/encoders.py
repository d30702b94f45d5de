"""Tile encoders: a network that turns a batch of tiles into one embedding per tile.

:func:`load_encoder` resolves what ``histo embed --encoder`` names:

* a model directory or a built-in model name (default ``pcam-mobilenetv2``, shipped, so
  embedding works offline): its backbone, ``forward_head(forward_features(x), pre_logits=True)``;
* a foundation model of :data:`~napari_histo.models.foundation.FOUNDATION_MODELS`
  (``uni``, ``virchow2``, ``h-optimus-0`` ...), from the Hugging Face hub through timm;
* ``timm:<name>`` (timm's pretrained weights) or ``hf-hub:<org/name>`` (any timm model on the hub);
* a local weight file (``.pth`` read with ``weights_only=True``, or ``.safetensors``) with
  ``architecture=`` naming its timm model.

Offline, a hub encoder fails at once with one line naming the options.
:func:`encode_batch` runs a uint8 batch through the same device code as tile
classification (:mod:`napari_histo.models.engine`: normalisation and resize on
the device, bf16 autocast on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from napari_histo.errors import DownloadError, InvalidParameterError, MissingDependencyError
from napari_histo.models.foundation import FOUNDATION_MODELS, FoundationModel, foundation_model, timm_kwargs
from napari_histo.models.spec import ModelSpec, ModelSpecError

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "encode_batch",
    "encoder_options",
    "load_encoder",
    "pooled_network",
    "random_foundation_encoder",
]

#: the encoder ``histo embed`` uses when none is named: the shipped model's backbone (works offline)
DEFAULT_ENCODER = "pcam-mobilenetv2"


@dataclass(frozen=True)
class Encoder:
    """A loaded tile encoder and what its embeddings mean.

    ``hash`` identifies the weights (sha256 of the weight file, ``"random-init"``, or
    ``"timm:<name>"`` / ``"hf-hub:<id>"`` for hub weights): a slide-level model trained on
    one encoder's embeddings refuses another's.  ``mpp`` and ``tile_px`` are the µm/px and
    tile size the encoder was trained at (``None`` when unknown: the user gives them).
    """

    name: str
    hash: str
    source: str
    network: Any
    feature_dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mpp: float | None = None
    tile_px: int | None = None
    stain: dict[str, Any] | None = None  # a model directory's stain target (tiles normalised as trained)

    def describe(self) -> dict[str, Any]:
        """The identity recorded with the embeddings (and in a slide-level model's provenance)."""
        return {"encoder": self.name, "encoder_hash": self.hash, "encoder_source": self.source}


def encoder_options() -> str:
    """Every kind of ``--encoder``, in one line (for errors)."""
    return (
        f"--encoder {DEFAULT_ENCODER} (shipped, the default; works offline), a model directory, a local "
        "weight file with --architecture NAME, a foundation model "
        f"({', '.join(FOUNDATION_MODELS)}), timm:<name> or hf-hub:<org/name>"
    )


def load_encoder(
    encoder: str | os.PathLike[str] | None = None,
    device: str | Any = "cpu",
    *,
    architecture: str | None = None,
) -> Encoder:
    """The :class:`Encoder` ``encoder`` names (see the module docstring), in eval mode on ``device``."""
    from napari_histo.models.loading import resolve_device

    text = DEFAULT_ENCODER if encoder is None or not str(encoder).strip() else os.fspath(encoder)
    target = resolve_device(device)
    path = Path(text)
    if path.is_file():
        found = _from_weight_file(path, architecture)
    elif text.startswith("timm:"):
        found = _from_timm(text[5:])
    elif text.startswith(("hf-hub:", "hf_hub:")):
        found = _from_hub(text.split(":", 1)[1])
    elif text.strip().lower() in _foundation_names():
        found = _from_foundation(foundation_model(text))
    else:
        found = _from_model_dir(text)
    found.network.eval().to(target)
    return found


def load_recorded_encoder(record: dict[str, Any], device: str | Any = "cpu") -> Encoder:
    """The encoder a slide-level model records (``{name, hash, source ...}``), loaded here.

    ``source`` is used when it exists here (a weight file or model directory, a hub id), else ``name``.
    """
    name, source = str(record.get("name") or ""), str(record.get("source") or "")
    if source and Path(source).is_file():  # a weight file: its name is "<architecture>:<file>"
        return load_encoder(source, device, architecture=name.split(":")[0])
    usable = source and (Path(source).is_dir() or source.startswith(("hf-hub:", "hf_hub:", "timm:")))
    return load_encoder(source if usable else name or None, device)


def _foundation_names() -> set[str]:
    names = set()
    for entry in FOUNDATION_MODELS.values():
        names |= {entry.key, entry.name.lower()}
    return names


def _from_model_dir(model: str) -> Encoder:
    from napari_histo.io.files import file_digest
    from napari_histo.models.loading import load_model, resolve_model_dir
    from napari_histo.models.spec import WEIGHTS_FILE, Task, load_spec

    try:
        directory = resolve_model_dir(model)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{exc} Encoders: {encoder_options()}.") from exc
    spec = load_spec(directory)
    if spec.task is not Task.CLASSIFICATION:
        raise ModelSpecError(
            f"{model}: is a {spec.task.value} model; an encoder is a classifier's backbone. "
            f"{encoder_options()}"
        )
    network = pooled_network(load_model(directory, device="cpu", spec=spec))
    return Encoder(
        spec.name or directory.name, file_digest(directory / WEIGHTS_FILE), str(directory), network,
        _feature_dim(network, spec.input_size), spec.input_size, spec.mean, spec.std,
        spec.spacing_um_px, spec.patch_size_pixels, stain=spec.stain,
    )  # fmt: skip


def _from_weight_file(path: Path, architecture: str | None) -> Encoder:
    import timm

    from napari_histo.io.files import file_digest
    from napari_histo.models.registry import check_architecture
    from napari_histo.models.weights import LOCAL_IMAGENET_FILES, load_imagenet_weights

    if not architecture:
        raise InvalidParameterError(
            f"{path}: a weight file needs the timm architecture it is for: --architecture NAME "
            "(e.g. mobilenetv2_100 for mobilenet_v2-b0353104.pth)"
        )
    check_architecture(architecture)
    model = timm.create_model(architecture, pretrained=False)
    load_imagenet_weights(model, path)
    known = LOCAL_IMAGENET_FILES.get(architecture)
    mean, std, size = _pretrained_normalisation(model)
    if known is not None:
        mean, std = cast(Any, known["mean"]), cast(Any, known["std"])
    network = pooled_network(model)
    return Encoder(f"{architecture}:{path.name}", file_digest(path), str(path.resolve()), network,
                   _feature_dim(network, size), size, mean, std)  # fmt: skip


def _pretrained_normalisation(
    model: Any,
) -> tuple[tuple[float, float, float], tuple[float, float, float], int]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return cast(Any, mean), cast(Any, std), size


def _offline_error(what: str, hub_id: str | None, gated: bool) -> DownloadError:
    login = (
        f"; {hub_id} is gated: accept its terms on https://huggingface.co/{hub_id} and log in "
        "(huggingface-cli login, or HF_TOKEN)"
        if gated and hub_id
        else ""
    )
    return DownloadError(
        f"{what} needs the Hugging Face hub (huggingface.co), which cannot be reached here (offline, or "
        f"HF_HUB_OFFLINE is set){login}. Options: {encoder_options()}; or run once on a connected machine so "
        "the weights are cached."
    )


def _cached(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    repo, _, revision = hub_id.partition("@")
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, name, revision=revision or None), str):
            return True
    return False


def _hub_create(name: str, what: str, hub_id: str | None, gated: bool, **kwargs: Any) -> Any:
    """``timm.create_model(name, pretrained=True)``, failing at once offline and in one line on hub errors."""
    import timm

    from napari_histo.models.weights import hub_reachable

    if not hub_reachable() and not (hub_id and _cached(hub_id)):
        raise _offline_error(what, hub_id, gated)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:  # hub failures come as many types (HTTP, OSError, gated-repo errors)
        text = " ".join(str(exc).split())[:300]
        gate = "gated" in text.lower() or "401" in text or "403" in text or "Gated" in type(exc).__name__
        if gate and hub_id:
            raise DownloadError(
                f"{what}: the hub refused the download ({type(exc).__name__}); {hub_id} is gated: accept its "
                f"terms on https://huggingface.co/{hub_id} and log in (huggingface-cli login, or HF_TOKEN)"
            ) from exc
        raise DownloadError(
            f"{what}: could not load it from the hub ({type(exc).__name__}: {text}). "
            f"Options: {encoder_options()}"
        ) from exc


def _from_timm(name: str) -> Encoder:
    from napari_histo.models.registry import check_architecture

    check_architecture(name)
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    model = _hub_create(name, f"--encoder timm:{name}", hub_id, False, num_classes=0)
    mean, std, size = _pretrained_normalisation(model)
    network = pooled_network(model)
    return Encoder(
        name, f"timm:{name}", f"timm:{name}", network, _feature_dim(network, size), size, mean, std
    )


def _from_hub(hub_id: str) -> Encoder:
    for entry in FOUNDATION_MODELS.values():
        if entry.hub_id.lower() == hub_id.lower():
            return _from_foundation(entry)
    model = _hub_create(f"hf-hub:{hub_id}", f"--encoder hf-hub:{hub_id}", hub_id, False, num_classes=0)
    mean, std, size = _pretrained_normalisation(model)
    network = pooled_network(model)
    return Encoder(hub_id, f"hf-hub:{hub_id}", f"hf-hub:{hub_id}", network, _feature_dim(network, size), size,
                   mean, std)  # fmt: skip


def _from_foundation(entry: FoundationModel) -> Encoder:
    what = f"--encoder {entry.key} ({entry.name})"
    if entry.loader == "transformers":
        network = _transformers_network(entry, what)
    else:
        model = _hub_create(f"hf-hub:{entry.hub_id}", what, entry.hub_id, entry.gated, **timm_kwargs(entry))
        network = pooled_network(model, entry.pooling)
    return foundation_encoder(entry, network, f"hf-hub:{entry.hub_id}")


def foundation_encoder(entry: FoundationModel, network: Any, weights: str) -> Encoder:
    """An :class:`Encoder` of ``entry`` around ``network`` (``weights``: ``"random-init"`` or the hub id)."""
    return Encoder(
        entry.key, weights, f"hf-hub:{entry.hub_id}", network, entry.feature_dim, entry.input_size,
        entry.mean, entry.std, entry.mpp, entry.input_size,
    )  # fmt: skip


def _transformers_network(entry: FoundationModel, what: str) -> Any:
    import importlib

    from napari_histo.models.weights import hub_reachable

    try:
        auto_model = importlib.import_module("transformers").AutoModel
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} is a Hugging Face transformers model: pip install transformers. Other options: "
            f"{encoder_options()}"
        ) from exc
    if not hub_reachable() and not _cached(entry.hub_id):
        raise _offline_error(what, entry.hub_id, entry.gated)
    return _transformers_cls(auto_model.from_pretrained(entry.hub_id))


def pooled_network(model: Any, pooling: str = "pre_logits") -> Any:
    """``model`` wrapped to return one embedding per image: (b, d) float."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any, how: str) -> None:
            super().__init__()
            self.inner, self.how = inner, how

        def forward(self, x: Any) -> Any:
            tokens = self.inner.forward_features(x)
            if self.how == "cls_mean":  # Virchow: class token + mean of the patch tokens (no registers)
                prefix = int(getattr(self.inner, "num_prefix_tokens", 1))
                return torch.cat([tokens[:, 0], tokens[:, prefix:].mean(1)], dim=-1)
            return self.inner.forward_head(tokens, pre_logits=True)

    return Pooled(model, pooling)


def _transformers_cls(model: Any) -> Any:
    """A ``transformers`` vision model wrapped to return its class token: (b, d)."""
    import torch

    class TransformersCls(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(pixel_values=x).last_hidden_state[:, 0]

    return TransformersCls(model)


def random_foundation_encoder(key: str, *, depth: int | None = None, device: str | Any = "cpu") -> Encoder:
    """A **randomly initialised** network of foundation model ``key``'s shape (hash ``"random-init"``).

    For testing the code paths offline (``depth``: fewer blocks, a shape test); its
    embeddings mean nothing and are never results.
    """
    from napari_histo.models.foundation import build_foundation_network
    from napari_histo.models.loading import resolve_device

    entry = foundation_model(key)
    pooling = "pre_logits" if entry.pooling == "transformers_cls" else entry.pooling
    network = pooled_network(build_foundation_network(entry, depth=depth), pooling)
    return foundation_encoder(entry, network.eval().to(resolve_device(device)), "random-init")


def _feature_dim(network: Any, input_size: int) -> int:
    import torch

    with torch.inference_mode():
        return int(network.eval()(torch.zeros(1, 3, input_size, input_size)).shape[-1])


@dataclass(frozen=True)
class _ViewSpec:
    """What the engine's device code reads of a spec: the input size and no test-time augmentation."""

    input_size: int
    tta: str = "none"
    stain: dict[str, Any] | None = None


def encode_batch(encoder: Encoder, batch: np.ndarray, device: Any, config: Any = None) -> np.ndarray:
    """float32 embeddings (b, d) of a uint8 (b, h, w, 3) batch, through the engine's device code."""
    import torch

    from napari_histo.models.engine import InferenceConfig, _forward_views
    from napari_histo.models.loading import resolve_device

    device = resolve_device(device)
    config = config or InferenceConfig(device=str(device))
    mean = torch.tensor(encoder.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(encoder.std, device=device).view(1, 3, 1, 1) * 255
    spec = cast(ModelSpec, _ViewSpec(encoder.input_size, stain=encoder.stain))  # what is read of a spec
    views = _forward_views(encoder.network, batch, device, mean, std, spec, config, None)
    return views[0].cpu().numpy()
