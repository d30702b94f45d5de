"""Data and spec of a run: load, de-duplicate, split, cap, balance and cache the patches; the ModelSpec.

Shared by :mod:`training.run` (supervised runs) and :mod:`training.ssl` (SimCLR-only runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from napari_histo.models import ModelSpec
from training.config import TrainingConfig
from training.data import Samples, load_samples
from training.loop import Fold
from training.network import imagenet_normalisation, source_spec, weights_path
from training.splits import cap_per_class, sample_weights, split_samples, undersample

__all__ = ["make_spec", "prepare_data"]


def prepare_data(config: TrainingConfig, run_dir: Path, *, record: bool = True) -> dict[str, Fold]:
    """Load, de-duplicate, split, cap and balance the data; pixels in memory when ``data.cache``.

    ``record=False`` (DDP ranks other than 0) neither prints nor writes the class counts.
    """
    base = Path(config.recipe_path).parent if config.recipe_path else Path.cwd()
    samples = load_samples(config.data, base, run_dir, record=record)
    splits = split_samples(samples, config.data, config.train.seed)
    splits = {k: cap_per_class(v, config.data.max_per_class, config.train.seed) for k, v in splits.items()}
    if config.data.balance == "undersample":
        splits["train"] = undersample(splits["train"], config.train.seed)
    stain = None
    if config.data.cache or config.augment.stain_normalize != "none":
        # one patch size for every split: the training set's (odd patches resized, with a warning)
        splits["train"] = splits["train"].with_pixels()
        shape = splits["train"].images.shape[1:3]  # type: ignore[union-attr]
        splits = {k: v if k == "train" else v.with_pixels(shape) for k, v in splits.items()}
    if config.augment.stain_normalize != "none":
        from training.stain import fit_stain_target, normalize_samples

        stain = fit_stain_target(splits["train"], config.augment.stain_normalize, config.train.seed)
        splits = {k: normalize_samples(v, stain)[0] for k, v in splits.items()}
    folds = {}
    for name, part in splits.items():
        folds[name] = _fold(part, config)
        folds[name].stain = stain
    if config.data.balance == "weighted":
        folds["train"].weights = sample_weights(folds["train"].samples.labels, len(samples.class_names))
    return folds


def _fold(samples: Samples, config: TrainingConfig) -> Fold:
    pixels = None if samples.images is None else torch.from_numpy(samples.images)
    masks = None if samples.masks is None else torch.from_numpy(samples.masks)
    if pixels is not None and torch.cuda.is_available():
        pixels = pixels.pin_memory()
    return Fold(samples, pixels, masks)


def make_spec(config: TrainingConfig, train: Samples, stain: dict[str, Any] | None = None) -> ModelSpec:
    """The model's ``ModelSpec`` from the recipe and the training data (patch size, classes)."""
    patch = config.model.patch_size_pixels or _patch_size(train)
    mean, std = imagenet_normalisation(config)
    input_size = config.model.input_size or patch
    source = source_spec(config)
    if source is not None:  # fine-tuning another run: its mean/std (and input size) unless the recipe says
        taken = [] if config.model.mean and config.model.std else ["mean/std"]
        if not config.model.input_size:
            input_size = source.input_size
            taken.append("input size")
        if taken:
            print(
                f"model.weights is the model directory {weights_path(config).parent}: using its "
                f"{' and '.join(taken)} (mean {list(mean)}, std {list(std)}, input {input_size} px); "
                "set model.mean/model.std/model.input_size in the recipe to override",
                flush=True,
            )
    return ModelSpec(
        architecture=config.model.architecture,
        num_classes=len(train.class_names),
        class_names=train.class_names,
        patch_size_pixels=patch,
        spacing_um_px=config.model.spacing_um_px,
        task=config.model.task,
        class_colors=tuple(config.model.class_colors),
        input_size=input_size,
        mean=mean,
        std=std,
        name=config.model.name or config.name,
        description=config.model.description,
        stain=stain,
        tta=config.model.tta,
    )


def _patch_size(samples: Samples) -> int:
    if samples.images is not None:
        return int(samples.images.shape[1])
    from training.samples import decode_image

    return int(decode_image(samples.paths[0]).shape[0])
