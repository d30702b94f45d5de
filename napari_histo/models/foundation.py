"""Pathology foundation models as tile encoders: what each is, how timm builds it, under which licence.

Each :class:`FoundationModel` names the Hugging Face hub repository, the timm
architecture and keyword arguments that build the network (randomly
initialised offline, for shape tests; with the weights from the hub online),
the input size, the µm/px the model was trained at, its normalisation, how a
tile's embedding is pooled from the tokens, its licence and whether the hub
repository is gated (the user accepts the terms on the model's page and logs
in: ``huggingface-cli login`` or ``HF_TOKEN``).

The facts come from the model cards; where a card is the only authority (the
licence of a gated model changes with its version), the table says so.  Nothing
here claims what a model scores: a randomly initialised network of the right
shape tests the code paths, never the science.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FOUNDATION_MODELS", "FoundationModel", "build_foundation_network", "foundation_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FoundationModel:
    """One pathology foundation model, as an entry of :data:`FOUNDATION_MODELS`.

    Attributes
    ----------
    key : str
        The short name used with ``histo embed --encoder`` (``uni``, ``virchow2`` ...).
    hub_id : str
        The Hugging Face hub repository (``org/name``).
    architecture : str
        The timm model that builds it, with ``timm_kwargs``.
    feature_dim : int
        Length of one tile's embedding (after ``pooling``).
    input_size, mpp : int, float
        Input edge in pixels and the µm/px the model was trained at.
    mean, std : 3 floats each
        Normalisation of 0-1 RGB input.
    pooling : str
        ``"pre_logits"`` (timm's pooled features: the class token for these ViTs),
        ``"cls_mean"`` (class token concatenated with the mean of the patch tokens,
        as Virchow prescribes) or ``"transformers_cls"`` (a Hugging Face
        ``transformers`` model's class token).
    loader : str
        ``"timm"`` (``timm.create_model("hf-hub:...")``) or ``"transformers"``.
    licence, gated, notes : str, bool, str
    """

    key: str
    name: str
    hub_id: str
    architecture: str
    feature_dim: int
    input_size: int = 224
    mpp: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pooling: str = "pre_logits"
    loader: str = "timm"
    licence: str = "see the model card"
    gated: bool = True
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hub_id}"


def _swiglu() -> dict[str, Any]:
    """The SwiGLU MLP and SiLU activation some of these ViTs use (resolved when the network is built)."""
    return {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}


FOUNDATION_MODELS: dict[str, FoundationModel] = {
    m.key: m
    for m in (
        FoundationModel(
            "uni", "UNI", "MahmoodLab/UNI", "vit_large_patch16_224", 1024,
            licence="CC-BY-NC-ND 4.0 (non-commercial, academic research; see the model card)",
            timm_kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0,
                         "dynamic_img_size": True},
        ),
        FoundationModel(
            "uni2-h", "UNI2-h", "MahmoodLab/UNI2-h", "vit_giant_patch14_224", 1536,
            licence="CC-BY-NC-ND 4.0 (non-commercial, academic research; see the model card)",
            timm_kwargs={"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5,
                         "embed_dim": 1536, "mlp_ratio": 2.66667 * 2, "num_classes": 0,
                         "no_embed_class": True,
                         **_swiglu(), "reg_tokens": 8, "dynamic_img_size": True},
        ),
        FoundationModel(
            "virchow2", "Virchow2", "paige-ai/Virchow2", "vit_huge_patch14_224", 2560, pooling="cls_mean",
            licence="CC-BY-NC-ND 4.0 (see the model card)",
            timm_kwargs={"img_size": 224, "init_values": 1e-5, "num_classes": 0, "mlp_ratio": 5.3375,
                         "reg_tokens": 4, "global_pool": "", "dynamic_img_size": True, **_swiglu()},
            notes="embedding = class token (1280) concatenated with the mean of the patch tokens (1280); "
            "the 4 register tokens are left out",
        ),
        FoundationModel(
            "h-optimus-0", "H-optimus-0", "bioptimus/H-optimus-0", "vit_giant_patch14_reg4_dinov2", 1536,
            mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517),
            licence="Apache-2.0", gated=False,
            timm_kwargs={"img_size": 224, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": False},
        ),
        FoundationModel(
            "h-optimus-1", "H-optimus-1", "bioptimus/H-optimus-1", "vit_giant_patch14_reg4_dinov2", 1536,
            mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517),
            licence="see the model card (access on request; commercial licences from Bioptimus)",
            timm_kwargs={"img_size": 224, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": False},
        ),
        FoundationModel(
            "phikon-v2", "Phikon-v2", "owkin/phikon-v2", "vit_large_patch16_224", 1024,
            pooling="transformers_cls", loader="transformers", gated=False,
            licence="Owkin non-commercial licence (see the model card)",
            timm_kwargs={"img_size": 224, "num_classes": 0},
            notes="a Hugging Face transformers (DINOv2) model: needs `pip install transformers`; the "
            "randomly initialised shape test builds timm's ViT-L/16 of the same width",
        ),
        FoundationModel(
            "prov-gigapath", "Prov-GigaPath (tile encoder)", "prov-gigapath/prov-gigapath",
            "vit_giant_patch14_dinov2", 1536,
            licence="Apache-2.0 per the model card, with usage terms (research only; see the model card)",
            timm_kwargs={"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.33334, "num_classes": 0},
        ),
    )
}  # fmt: skip


def foundation_model(key: str) -> FoundationModel:
    """The entry named ``key`` (case-insensitive; ``UNI2-h`` and ``uni2-h`` alike), or a clear error."""
    from napari_histo.models.spec import ModelSpecError

    wanted = key.strip().lower()
    for entry in FOUNDATION_MODELS.values():
        if wanted in (entry.key, entry.name.lower(), entry.hub_id.lower()):
            return entry
    raise ModelSpecError(
        f"{key!r} is not a known foundation model; known: {', '.join(FOUNDATION_MODELS)} "
        "(or give timm:<name> / hf-hub:<org/name>)"
    )


def timm_kwargs(entry: FoundationModel) -> dict[str, Any]:
    """``entry.timm_kwargs`` with the layer names resolved to timm/torch classes."""
    import timm.layers
    import torch

    kwargs = dict(entry.timm_kwargs)
    if kwargs.get("mlp_layer") == "SwiGLUPacked":
        kwargs["mlp_layer"] = timm.layers.SwiGLUPacked
    if kwargs.get("act_layer") == "SiLU":
        kwargs["act_layer"] = torch.nn.SiLU
    return kwargs


def build_foundation_network(entry: FoundationModel, *, depth: int | None = None) -> Any:
    """``entry``'s network, randomly initialised (no download), for shape and code-path tests.

    ``depth`` builds only that many transformer blocks (a **shape test**: the
    embedding width is the full model's; CPU time and memory are not).  Never
    use the features of a randomly initialised network as results.
    """
    import timm

    kwargs = timm_kwargs(entry)
    if depth is not None:
        kwargs["depth"] = int(depth)
    return timm.create_model(entry.architecture, pretrained=False, **kwargs)
