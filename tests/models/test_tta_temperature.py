"""Dihedral test-time augmentation and temperature scaling in the inference engine, and their spec fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_histo.models import ModelSpec, ModelSpecError, load_spec, save_spec  # noqa: E402
from napari_histo.models.engine import InferenceConfig, forward_logits, forward_scores  # noqa: E402

CPU = InferenceConfig(device="cpu", batch_size=8, workers=1)
SPEC = ModelSpec(architecture="resnet18", num_classes=3, class_names=("a", "b", "c"), patch_size_pixels=24,
                 spacing_um_px=1.0)  # fmt: skip


class NotInvariant(torch.nn.Module):
    """A classifier that sees where things are: a conv, then a linear layer on the flattened map."""

    def __init__(self, px: int = 24, classes: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * px * px, classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(torch.relu(self.conv(x)).flatten(1))


class NotEquivariantSegmenter(torch.nn.Module):
    """Per-pixel classes with a position-dependent bias: turning the input does not turn the output."""

    def __init__(self, px: int = 24, classes: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 3, padding=1)
        self.bias = torch.nn.Parameter(torch.randn(1, classes, px, px))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.conv(x) + self.bias


def _scores(model, batch, spec):  # type: ignore[no-untyped-def]
    device = torch.device("cpu")
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255
    return forward_scores(model, batch, device, mean, std, spec, CPU, None)


def _batch(n: int = 4, px: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, px, px, 3), dtype=np.uint8)


def _dihedral(batch: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(batch, k, axes=(1, 2)) for k in range(4)]
    return [np.ascontiguousarray(t) for t in turns + [t[:, :, ::-1] for t in turns]]


def test_dihedral_tta_makes_a_non_invariant_classifier_invariant():
    torch.manual_seed(0)
    model = NotInvariant().eval()
    batch = _batch()
    plain = [_scores(model, b, SPEC) for b in _dihedral(batch)]
    assert max(np.abs(p - plain[0]).max() for p in plain[1:]) > 1e-3  # the network itself is not invariant
    tta = SPEC.with_updates(tta="dihedral8")
    with_tta = [_scores(model, b, tta) for b in _dihedral(batch)]
    for scores in with_tta[1:]:
        np.testing.assert_allclose(scores, with_tta[0], atol=1e-5)
    np.testing.assert_allclose(with_tta[0], np.mean([p for p in plain], axis=0), atol=1e-5)  # = mean of views
    np.testing.assert_allclose(with_tta[0].sum(1), 1.0, atol=1e-5)


def test_dihedral_tta_turns_segmentation_maps_back():
    torch.manual_seed(0)
    model = NotEquivariantSegmenter().eval()
    spec = SPEC.with_updates(task="segmentation", tta="dihedral8")
    batch = _batch(2)
    base = _scores(model, batch, spec)
    assert base.shape == (2, 3, 24, 24)
    turned = _scores(model, np.ascontiguousarray(np.rot90(batch, 1, axes=(1, 2))), spec)
    np.testing.assert_allclose(turned, np.rot90(base, 1, axes=(2, 3)), atol=1e-5)  # equivariant with TTA
    plain = spec.with_updates(tta="none")
    no_tta = _scores(model, np.ascontiguousarray(np.rot90(batch, 1, axes=(1, 2))), plain)
    assert np.abs(no_tta - np.rot90(_scores(model, batch, plain), 1, axes=(2, 3))).max() > 1e-3


def test_temperature_divides_the_logits_before_the_softmax():
    torch.manual_seed(0)
    model = NotInvariant().eval()
    batch = _batch()
    logits = forward_logits(model, batch, SPEC, device="cpu")
    assert logits.shape == (1, 4, 3)
    hot = _scores(model, batch, SPEC.with_updates(temperature=2.5))
    expected = torch.softmax(torch.from_numpy(logits[0]) / 2.5, dim=1).numpy()
    np.testing.assert_allclose(hot, expected, atol=1e-6)
    assert (hot.max(1) < _scores(model, batch, SPEC).max(1)).all()  # T > 1 softens
    assert forward_logits(model, batch, SPEC.with_updates(tta="dihedral8"), device="cpu").shape == (8, 4, 3)


def test_spec_fields_round_trip_and_old_model_json_loads_as_before(tmp_path):
    spec = SPEC.with_updates(tta="dihedral8", temperature=1.7)
    path = save_spec(spec, tmp_path / "new")
    data = json.loads(path.read_text())
    assert data["tta"] == "dihedral8" and data["temperature"] == 1.7
    assert load_spec(path) == spec
    for key in ("tta", "temperature"):  # a model.json written before these fields existed
        data.pop(key)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.json").write_text(json.dumps(data))
    old = load_spec(tmp_path / "old")
    assert (old.tta, old.temperature) == ("none", 1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"tta": "flips"}, "tta must be one of"), ({"temperature": 0.0}, "temperature must be"),
     ({"temperature": float("nan")}, "temperature must be")],
)  # fmt: skip
def test_bad_tta_or_temperature_is_refused(changes, message):
    with pytest.raises(ModelSpecError, match=message):
        SPEC.with_updates(**changes)


def test_bad_tta_in_model_json_names_the_field(tmp_path):
    data = SPEC.to_json_dict() | {"tta": "eight"}
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelSpecError, match="tta"):
        load_spec(tmp_path)
