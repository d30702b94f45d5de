"""Build the network a :class:`ModelSpec` names: timm classifiers, U-Net/FPN segmenters.

One factory, :func:`create_network`; weights are loaded elsewhere
(:mod:`napari_histo.models.weights`, :mod:`napari_histo.models.loading`).
"""

from __future__ import annotations

import difflib
from typing import Any

from napari_histo.errors import MissingDependencyError
from napari_histo.models.spec import MIL_ARCHITECTURES, ModelSpec, ModelSpecError, Task

__all__ = [
    "CLASSIFIERS",
    "SEGMENTATION_HEADS",
    "check_architecture",
    "create_network",
    "split_segmentation_architecture",
]

#: Classifier backbones the project tests and documents (any timm name works).
CLASSIFIERS = (
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "tf_efficientnetv2_s", "resnet18", "resnet50", "inception_resnet_v2",
    "mobilenetv2_100", "tf_efficientnet_lite0",
)  # fmt: skip

#: ``<head>:<encoder>`` segmentation architectures, e.g. ``unet:resnet34``, ``fpn:resnet34``.
SEGMENTATION_HEADS = ("unet", "fpn")


def split_segmentation_architecture(architecture: str) -> tuple[str, str]:
    """``"unet:resnet34"`` -> ``("unet", "resnet34")``; raises for other forms."""
    head, sep, encoder = architecture.partition(":")
    if not sep or head.lower() not in SEGMENTATION_HEADS or not encoder:
        raise ModelSpecError(
            f"segmentation architecture {architecture!r} must be '<head>:<encoder>' with head in "
            f"{SEGMENTATION_HEADS}, e.g. 'unet:resnet34', 'unet:vgg16' or 'fpn:resnet34'."
        )
    return head.lower(), encoder


def create_network(spec: ModelSpec, *, pretrained: bool = False) -> Any:
    """A randomly initialised (or timm-hub pretrained) ``torch.nn.Module`` for ``spec``.

    ``pretrained=True`` downloads ImageNet weights through timm's hub (online
    users); offline it raises :class:`~napari_histo.errors.DownloadError` that
    says how to use a local weight file instead.
    """
    if spec.task is Task.MIL:
        raise ModelSpecError(
            f"architecture {spec.architecture!r} is a slide-level (MIL) model on tile embeddings; build it "
            "with napari_histo.models.mil (load_mil_model, build_mil_network)"
        )
    check_architecture(spec.architecture, spec.task)
    if spec.task is Task.SEGMENTATION:
        return _segmentation_network(spec, pretrained)
    import timm

    if pretrained:
        from napari_histo.models.weights import timm_pretrained

        return timm_pretrained(spec.architecture, spec.num_classes)
    return timm.create_model(spec.architecture, pretrained=False, num_classes=spec.num_classes)


def check_architecture(architecture: str, task: Task | str = Task.CLASSIFICATION) -> None:
    """Raise :class:`ModelSpecError` (with the nearest names) unless ``architecture`` can be built."""
    if Task(task) is Task.SEGMENTATION:
        split_segmentation_architecture(architecture)
        return
    if Task(task) is Task.MIL or architecture in MIL_ARCHITECTURES:
        if Task(task) is not Task.MIL or architecture not in MIL_ARCHITECTURES:
            raise ModelSpecError(
                f"architecture {architecture!r} with task {Task(task).value}: slide-level (MIL) models are "
                f"task mil with architecture {' | '.join(MIL_ARCHITECTURES)}"
            )
        return
    if ":" in architecture and architecture.split(":")[0].lower() in SEGMENTATION_HEADS:
        raise ModelSpecError(
            f"architecture {architecture!r} is a segmentation network; set task: segmentation "
            "(classifiers are timm names such as resnet18)"
        )
    import timm

    if not timm.is_model(architecture):
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        raise ModelSpecError(
            f"architecture {architecture!r} is not a timm model"
            + (f"; did you mean {close}?" if close else ".")
            + f" Tested backbones: {', '.join(CLASSIFIERS)}."
        )


def _segmentation_network(spec: ModelSpec, pretrained: bool) -> Any:
    head, encoder = split_segmentation_architecture(spec.architecture)
    try:
        import segmentation_models_pytorch as smp
    except ImportError as exc:
        raise MissingDependencyError(
            "segmentation models need segmentation-models-pytorch: pip install 'napari-histo[models]'"
        ) from exc
    factory = {"unet": smp.Unet, "fpn": smp.FPN}[head]
    weights = "imagenet" if pretrained else None
    try:
        return factory(encoder_name=encoder, encoder_weights=weights, classes=spec.num_classes)
    except (KeyError, ValueError) as exc:
        raise ModelSpecError(
            f"encoder {encoder!r} is not available for {head} ({exc}); use e.g. resnet34, vgg16, "
            "or any timm encoder as 'tu-<timm name>'."
        ) from exc
