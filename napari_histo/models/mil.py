"""Slide-level (multiple-instance) models on tile embeddings: ABMIL, CLAM-SB, TransMIL.

A slide is a *bag* of tile embeddings ``features`` (n, d) (written by ``histo embed``); a MIL
model maps the bag to slide logits.  Every network here has the same call::

    out = network(features)          # features: float tensor (n, d), one bag
    out["logits"]                    # (C,) slide logits
    out["attention"]                 # (n,) softmax-normalised attention over the bag's tiles
    out["tile_scores"]               # (n, C) per-tile scores (see each class)

and CLAM-SB, given ``label=`` while training, adds ``out["instance_loss"]``.

* :class:`ABMIL`: gated attention pooling (Ilse, Tomczak & Welling, ICML 2018).
* :class:`CLAMSB`: CLAM single-branch (Lu et al., Nat. Biomed. Eng. 2021): gated attention plus an
  instance-level clustering loss on the top-k / bottom-k attended tiles while training.
* :class:`TransMIL`: Shao et al., NeurIPS 2021: linear projection, class token, two transformer
  layers with the PPEG positional module on the square-padded sequence.  Self-attention is
  ``torch.nn.MultiheadAttention`` (exact softmax attention), not the paper's Nyström
  approximation: the same function for bags of a few thousand tiles, quadratic memory beyond.

A model directory is the usual ``model.json`` + ``weights.safetensors`` with ``task: mil``;
``patch_size_pixels``/``spacing_um_px`` are the tile edge and µm/px of the embeddings, and
``provenance["mil"]`` holds the network's shape (``in_features``, ``hidden``, ``dropout`` ...)
and ``provenance["encoder"]`` the encoder ``{name, hash, mpp, tile_px}`` the model was trained
on.  :func:`load_mil_model` reads one; :func:`napari_histo.models.load_model` refuses them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from napari_histo.models.spec import (
    MIL_ARCHITECTURES,
    SPEC_FILE,
    WEIGHTS_FILE,
    ModelSpec,
    ModelSpecError,
    Task,
    load_spec,
)

__all__ = [
    "ABMIL",
    "CLAMSB",
    "MIL_ARCHITECTURES",
    "TransMIL",
    "build_mil_network",
    "is_mil_model",
    "load_mil_model",
    "save_mil_model",
]


class GatedAttention(nn.Module):
    """``a_i = w^T (tanh(V h_i) * sigmoid(U h_i))``, softmax over the bag (Ilse et al. eq. 9)."""

    def __init__(self, dim: int, attention_dim: int, dropout: float = 0.0):
        super().__init__()
        self.V = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Dropout(dropout))
        self.U = nn.Sequential(nn.Linear(dim, attention_dim), nn.Sigmoid(), nn.Dropout(dropout))
        self.w = nn.Linear(attention_dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Raw (pre-softmax) attention scores (n,)."""
        return self.w(self.V(h) * self.U(h)).squeeze(-1)


def _check_bag(features: torch.Tensor, in_features: int) -> torch.Tensor:
    if features.dim() == 3 and features.shape[0] == 1:
        features = features[0]
    if features.dim() != 2 or features.shape[1] != in_features or features.shape[0] == 0:
        raise ValueError(
            f"a bag is a (n, {in_features}) tensor of n >= 1 tile embeddings, got {tuple(features.shape)}"
        )
    return features.float()


class ABMIL(nn.Module):
    """Gated-attention MIL (Ilse et al. 2018): ``z = sum_i a_i h_i``, logits = classifier(z).

    ``tile_scores`` is the bag classifier applied to each tile's hidden embedding ``h_i`` (the
    logits the bag would get if it held that tile alone); attention, not these, is the model's
    own account of which tiles decided.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 2,
        hidden: int = 256,
        dropout: float = 0.25,
        attention_dim: int = 0,
    ):
        super().__init__()
        self.in_features = in_features
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention = GatedAttention(hidden, attention_dim or max(hidden // 2, 1), dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, label: Any = None) -> dict[str, torch.Tensor]:
        h = self.fc(_check_bag(features, self.in_features))
        attention = torch.softmax(self.attention(h), dim=0)
        pooled = attention @ h
        return {"logits": self.classifier(pooled), "attention": attention, "tile_scores": self.classifier(h)}


class CLAMSB(nn.Module):
    """CLAM single-branch (Lu et al. 2021): gated attention + instance-level clustering.

    While training (``label`` given), the ``k_sample`` most and least attended tiles are
    pseudo-labelled in-class / out-of-class for the true class's instance classifier, and the
    smooth-SVM loss of the paper is replaced by cross-entropy (as CLAM's own ``inst_loss ce``
    option); ``instance_loss`` is returned for the caller to mix with the bag loss (CLAM:
    0.7 bag + 0.3 instance).  ``tile_scores`` (n, C): each class's instance classifier's
    in-class logit minus its out-of-class logit, per tile.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 2,
        hidden: int = 256,
        dropout: float = 0.25,
        attention_dim: int = 0,
        k_sample: int = 8,
    ):
        super().__init__()
        self.in_features = in_features
        self.k_sample = k_sample
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention = GatedAttention(hidden, attention_dim or max(hidden // 2, 1), dropout)
        self.classifier = nn.Linear(hidden, num_classes)
        self.instance_classifiers = nn.ModuleList([nn.Linear(hidden, 2) for _ in range(num_classes)])

    def forward(self, features: torch.Tensor, label: Any = None) -> dict[str, torch.Tensor]:
        h = self.fc(_check_bag(features, self.in_features))
        raw = self.attention(h)
        attention = torch.softmax(raw, dim=0)
        out = {"logits": self.classifier(attention @ h), "attention": attention}
        inst = torch.stack([c(h) for c in self.instance_classifiers], dim=1)  # (n, C, 2)
        out["tile_scores"] = inst[..., 1] - inst[..., 0]
        if label is not None:
            out["instance_loss"] = self._instance_loss(h, raw, int(label))
        return out

    def _instance_loss(self, h: torch.Tensor, raw: torch.Tensor, label: int) -> torch.Tensor:
        k = min(self.k_sample, len(h) // 2)
        if k < 1:
            return h.sum() * 0.0
        top = torch.topk(raw, k).indices
        bottom = torch.topk(-raw, k).indices
        logits = self.instance_classifiers[label](h[torch.cat([top, bottom])])
        targets = torch.cat([torch.ones(k), torch.zeros(k)]).long().to(h.device)
        return nn.functional.cross_entropy(logits, targets)


class _TransLayer(nn.Module):
    """Pre-norm residual self-attention (TransMIL's TransLayer, exact attention)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Any]:
        y = self.norm(x)
        out, weights = self.attn(y, y, y, need_weights=need_weights, average_attn_weights=True)
        return x + out, weights


class _PPEG(nn.Module):
    """Pyramid position encoding generator: depthwise 7/5/3 convolutions on the token grid + identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        cls, tokens = x[:, :1], x[:, 1:]
        grid = tokens.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)
        grid = grid + self.proj(grid) + self.proj1(grid) + self.proj2(grid)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


class TransMIL(nn.Module):
    """TransMIL (Shao et al. 2021) with exact multi-head attention instead of Nyström attention.

    The n tiles are projected, padded to the next square (repeating the first tiles, as the
    paper's code does), a class token is prepended, then layer → PPEG → layer → LayerNorm,
    and the class token is classified.  ``attention`` is the class token's attention in the last
    layer, averaged over heads, over the n real tiles (padding copies dropped) and renormalised
    to sum to 1.  ``tile_scores`` is the classifier applied to each tile's final token.
    """

    def __init__(
        self, in_features: int, num_classes: int = 2, hidden: int = 256, dropout: float = 0.25, heads: int = 8
    ):
        super().__init__()
        if hidden % heads:
            raise ModelSpecError(f"TransMIL: hidden = {hidden} must be a multiple of heads = {heads}")
        self.in_features = in_features
        self.fc1 = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.layer1 = _TransLayer(hidden, heads, dropout)
        self.ppeg = _PPEG(hidden)
        self.layer2 = _TransLayer(hidden, heads, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, label: Any = None) -> dict[str, torch.Tensor]:
        h = self.fc1(_check_bag(features, self.in_features))
        n = len(h)
        side = math.ceil(math.sqrt(n))
        pad = side * side - n
        if pad:
            h = torch.cat([h, h[torch.arange(pad, device=h.device) % n]], dim=0)
        x = torch.cat([self.cls_token, h[None]], dim=1)
        x, _ = self.layer1(x)
        x = self.ppeg(x, side)
        x, weights = self.layer2(x, need_weights=True)
        x = self.norm(x)
        attention = weights[0, 0, 1 : n + 1]
        attention = attention / attention.sum().clamp_min(1e-12)
        return {
            "logits": self.classifier(x[0, 0]),
            "attention": attention,
            "tile_scores": self.classifier(x[0, 1 : n + 1]),
        }


_CLASSES: dict[str, type[nn.Module]] = {"abmil": ABMIL, "clam_sb": CLAMSB, "transmil": TransMIL}


def build_mil_network(architecture: str, in_features: int, num_classes: int, **options: Any) -> nn.Module:
    """A fresh MIL network; ``options`` are the class's keyword arguments (``hidden``, ``dropout`` ...)."""
    if architecture not in _CLASSES:
        raise ModelSpecError(
            f"MIL architecture {architecture!r} is unknown; choose one of {', '.join(MIL_ARCHITECTURES)}"
        )
    return _CLASSES[architecture](in_features, num_classes, **options)


def network_options(spec: ModelSpec) -> dict[str, Any]:
    """The network's constructor options stored in ``provenance["mil"]`` (all but ``in_features``)."""
    mil = dict(spec.provenance.get("mil") or {})
    mil.pop("in_features", None)
    return mil


def is_mil_model(model_dir: str | os.PathLike[str]) -> bool:
    """True when ``model_dir`` holds a ``model.json`` with ``task: mil``."""
    path = Path(model_dir) / SPEC_FILE
    if not path.is_file():
        return False
    try:
        return load_spec(path).task is Task.MIL
    except ModelSpecError:
        return False


def save_mil_model(network: nn.Module, spec: ModelSpec, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``weights.safetensors`` + ``model.json`` (``spec.task`` must be mil)."""
    from napari_histo.models.loading import save_model

    if spec.task is not Task.MIL:
        raise ModelSpecError(f"save_mil_model: spec.task is {spec.task.value!r}, not 'mil'")
    return save_model(network, spec, model_dir)


def load_mil_model(
    model_dir: str | os.PathLike[str], device: str | Any = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """``(network in eval mode, spec)`` from a MIL model directory.

    Raises :class:`ModelSpecError` for a directory that is not a MIL model, or whose weights do
    not fit the network ``model.json`` describes.
    """
    from napari_histo.models.loading import _check_finite, _check_fits, resolve_device
    from napari_histo.models.weights import read_safetensors

    model_dir = Path(model_dir)
    spec = load_spec(model_dir)
    if spec.task is not Task.MIL:
        raise ModelSpecError(
            f"{model_dir}: is a {spec.task.value} model, not a slide-level (MIL) one; load it with "
            "napari_histo.models.load_model"
        )
    weights = model_dir / WEIGHTS_FILE
    if not weights.exists():
        raise ModelSpecError(f"{model_dir}: {WEIGHTS_FILE} is missing; copy the whole model folder again")
    in_features = int(spec.provenance["mil"]["in_features"])
    try:
        network = build_mil_network(spec.architecture, in_features, spec.num_classes, **network_options(spec))
    except TypeError as exc:
        raise ModelSpecError(
            f"{model_dir / SPEC_FILE}: provenance.mil has an unknown option ({exc})"
        ) from exc
    state = read_safetensors(weights)
    _check_fits(network.state_dict(), state, spec, weights)
    _check_finite(state, weights)
    network.load_state_dict(state)
    return network.eval().to(resolve_device(device)), spec
