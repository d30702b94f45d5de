"""The loop on real PCam patches and synthetic stand-ins: learning, resume, NaN, full disk."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

import training.checkpoint as checkpoint
import training.run as run_module
from tests.conftest import shared_file
from training.checkpoint import CheckpointError, load_checkpoint
from training.config import config_from_dict
from training.loop import NonFiniteLossError
from training.run import train


def test_a_few_hundred_pcam_patches_beat_chance_clearly(tmp_path: Path) -> None:
    pcam = shared_file("pcam", "labels.csv").parent
    weights = shared_file("weights", "mobilenet_v2-b0353104.pth")
    config = config_from_dict(
        {
            "name": "pcam-tiny",
            "output_dir": str(tmp_path),
            "data": {
                "source": "labels_csv",
                "root": str(pcam),
                "class_names": ["normal", "tumour"],
                "max_per_class": 150,
            },
            "model": {"architecture": "mobilenetv2_100", "weights": str(weights), "spacing_um_px": 1.0},
            "train": {
                "batch_size": 32,
                "device": "cpu",
                "monitor": "roc_auc",
                "phases": [{"epochs": 1, "trainable": "head", "lr": 0.002}],
            },
        }
    )
    result = train(config, progress=False)
    valid = result.metrics["valid"]
    assert valid["n"] == 300
    assert valid["accuracy"] > 0.65 and valid["roc_auc"] > 0.75, valid
    assert result.history[0]["phase"] == 0


def test_outputs_of_a_run(tiny) -> None:  # type: ignore[no-untyped-def]
    from napari_histo.models import load_model, load_spec

    result = train(tiny("train.grad_accum=2"), progress=False)
    run = result.run_dir
    for name in (
        "config.yaml",
        "environment.json",
        "history.csv",
        "metrics.json",
        "last.pt",
        "best.pt",
        "learning_curves.png",
        "roc_valid.png",
        "confusion_valid.png",
    ):
        assert (run / name).exists(), name
    spec = load_spec(result.model_dir)
    assert spec.class_names == ("sparse", "dense")
    assert spec.metrics["valid"]["accuracy"] == pytest.approx(result.metrics["valid"]["accuracy"])
    assert spec.provenance["config"]["model"]["architecture"] == spec.architecture
    network = load_model(result.model_dir, device="cpu")
    with torch.no_grad():
        assert network(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_resume_continues_from_the_last_checkpoint(tiny) -> None:  # type: ignore[no-untyped-def]
    first = train(tiny(), progress=False)
    saved = load_checkpoint(first.run_dir / "last.pt")
    assert (saved["phase"], saved["epoch"]) == (0, 1)
    second = train(tiny("train.phases=[{epochs: 2, lr: 0.01}]"), progress=False)
    assert len(second.history) == 2
    assert second.history[0] == first.history[0]  # read back, not trained again
    assert second.history[1]["global_epoch"] == 1
    assert load_checkpoint(second.run_dir / "last.pt")["epoch"] == 2


def test_two_phases_freeze_then_unfreeze_from_a_stage(tiny) -> None:  # type: ignore[no-untyped-def]
    config = tiny(
        "train.phases=[{epochs: 1, trainable: head, lr: 0.01}, "
        "{epochs: 1, trainable: 'from:blocks.4', optimizer: sgd, lr: 0.01, scheduler: step}]"
    )
    first_conv = None

    def remember(network, *args):  # type: ignore[no-untyped-def]
        nonlocal first_conv
        first_conv = network.conv_stem.weight.detach().clone()
        return original(network, *args)

    original = run_module.fit
    run_module.fit = remember
    try:
        result = train(config, progress=False)
    finally:
        run_module.fit = original
    from napari_histo.models import load_model

    network = load_model(result.model_dir, device="cpu")
    assert [r["phase"] for r in result.history] == [0, 1]
    torch.testing.assert_close(network.conv_stem.weight, first_conv)  # before blocks.4: never trained


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = train(tiny(), progress=False)
    original = run_module.make_loss

    def poisoned(name, weights=None):  # type: ignore[no-untyped-def]
        loss = original(name, weights)
        return lambda logits, y: loss(logits, y) * float("nan")

    monkeypatch.setattr(run_module, "make_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan .*Lower the learning rate"):
        train(tiny("train.phases=[{epochs: 2, lr: 0.01}]"), progress=False)
    assert load_checkpoint(first.run_dir / "last.pt")["epoch"] == 1


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = train(tiny(), progress=False)
    before = (first.run_dir / "last.pt").read_bytes()

    def disk_full(obj, path):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"No space left on device.*previous checkpoint .* is intact"):
        train(tiny("train.phases=[{epochs: 2, lr: 0.01}]"), progress=False)
    assert (first.run_dir / "last.pt").read_bytes() == before
    assert not list(first.run_dir.glob("*.part"))
    monkeypatch.undo()
    assert load_checkpoint(first.run_dir / "last.pt")["epoch"] == 1


def test_early_stopping_and_loss_options(tiny) -> None:  # type: ignore[no-untyped-def]
    config = tiny(
        "train.phases=[{epochs: 4, lr: 1e-30}]",  # about lr 0: the weights stay as they are
        "train.early_stopping=1",
        "train.monitor=loss",
        "train.loss=bce",
        "train.class_weights=balanced",
        "data.balance=weighted",
    )
    result = train(config, progress=False)
    assert len(result.history) == 2  # lr ~0: no improvement after the first epoch
    assert "early stopping" in (result.run_dir / "metrics.json").read_text()
    again = train(config, progress=False)  # resuming a stopped run trains no further
    assert len(again.history) == 2


def test_synthetic_segmentation_reports_iou(tiny) -> None:  # type: ignore[no-untyped-def]
    config = tiny(
        "data.source=synthetic_segmentation",
        "data.class_names=[other, stroma]",
        "data.synthetic_px=64",
        "data.synthetic_per_class=12",
        "model.architecture=unet:resnet18",
        "model.task=segmentation",
        "train.loss=dice_ce",
        "train.monitor=iou",
        "train.batch_size=8",
    )
    result = train(config, progress=False)
    valid = result.metrics["valid"]
    assert 0 <= valid["iou"] <= 1 and 0 <= valid["dice"] <= 1
    assert "stroma" in valid["per_class"]
    assert np.isfinite(result.history[0]["train_loss"])


def test_stain_normalisation_target_goes_into_the_model(tiny) -> None:  # type: ignore[no-untyped-def]
    from napari_histo.core.stain import StainParams
    from napari_histo.models import load_spec

    config = tiny("augment.stain_normalize=macenko", "data.synthetic_per_class=16")
    result = train(config, progress=False)
    spec = load_spec(result.model_dir)
    target = StainParams.from_dict(spec.stain)
    assert target.method.value == "macenko"

    # inference normalises raw patches to that target as training did (each patch its own stain; a
    # blank patch left as it is), so the engine's logits on raw patches are those of normalised ones
    from PIL import Image

    from napari_histo.core.stain import normalize_stain
    from napari_histo.errors import NoTissueError
    from napari_histo.models import load_model
    from napari_histo.models.engine import forward_logits

    real = sorted(shared_file("pcam", "valid", "1").glob("*.jpg"))[:6]  # real H&E (tumour) patches
    raw = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in real])
    raw = np.concatenate([raw, np.full_like(raw[:1], 240)])  # + background: too pale to normalise

    def as_training_did(patch: np.ndarray) -> np.ndarray:
        try:
            return normalize_stain(patch[None], target)[0]
        except NoTissueError:
            return patch

    normalised = np.stack([as_training_did(p) for p in raw])
    assert np.abs(normalised[:-1].astype(int) - raw[:-1]).mean() > 5  # the target really changes them
    network = load_model(result.model_dir, device="cpu")
    got = forward_logits(network, raw, spec)
    want = forward_logits(network, normalised, spec.with_updates(stain=None))
    unnormalised = forward_logits(network, raw, spec.with_updates(stain=None))
    tolerance = 0.05 * float(np.abs(want).max() + 1e-6)
    assert np.abs(got - want).max() < tolerance
    assert np.abs(unnormalised[:, :-1] - want[:, :-1]).max() > tolerance  # the check can fail
    np.testing.assert_allclose(got[:, -1], unnormalised[:, -1], rtol=1e-5, atol=1e-5)
