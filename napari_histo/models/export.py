"""Export a model directory for QuPath's WSInfer extension: TorchScript + ``config.json``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from napari_histo.errors import InvalidParameterError
from napari_histo.models.loading import load_model, resolve_model_dir
from napari_histo.models.spec import ModelSpecError, Task, load_spec

__all__ = ["export_wsinfer"]

TORCHSCRIPT_FILE = "torchscript_model.pt"
CONFIG_FILE = "config.json"


def export_wsinfer(model: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``torchscript_model.pt`` and ``config.json`` into ``out_dir``; returns it.

    The TorchScript module takes a float tensor (N, 3, H, W) already normalised
    as ``config.json``'s ``transform`` says, and returns logits, as WSInfer expects.
    Both files are written to temporary names and renamed.
    """
    import torch

    model_dir = resolve_model_dir(model)
    spec = load_spec(model_dir)
    if spec.task is not Task.CLASSIFICATION:
        raise ModelSpecError(
            f"{model_dir}: QuPath's WSInfer extension runs patch classifiers, and {spec.architecture} is a "
            "segmentation model; export a classification model"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(
            f"{out}: is a file; give a folder (new or existing) for the WSInfer model."
        )
    network = load_model(model_dir, device="cpu")
    example = torch.zeros(1, 3, spec.input_size, spec.input_size)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InvalidParameterError(
            f"{out}: cannot be made a folder ({exc.strerror}: {exc.filename}); choose another output folder."
        ) from exc
    tmp = out / (TORCHSCRIPT_FILE + ".part")
    # QuPath's WSInfer extension loads TorchScript (through DJL); torch >= 2.10 calls TorchScript
    # deprecated, but torch.export's format is not loadable there, so the warning is expected here.
    config = out / (CONFIG_FILE + ".part")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.trace(network, example)
            torch.jit.save(scripted, str(tmp))
        os.replace(tmp, out / TORCHSCRIPT_FILE)
        config.write_text(json.dumps(spec.to_wsinfer_config(), indent=2) + "\n")
        os.replace(config, out / CONFIG_FILE)
    finally:  # a failed write (full disk) leaves no .part behind
        tmp.unlink(missing_ok=True)
        config.unlink(missing_ok=True)
    return out
