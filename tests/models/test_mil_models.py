"""MIL networks (ABMIL, CLAM-SB, TransMIL): shapes, attention, permutation invariance, model directories."""

from __future__ import annotations

import pytest
import torch

from napari_histo.models import ModelSpec, ModelSpecError, Task, load_model, load_spec
from napari_histo.models.mil import (
    MIL_ARCHITECTURES,
    build_mil_network,
    is_mil_model,
    load_mil_model,
    save_mil_model,
)
from napari_histo.models.registry import create_network

D = 24


def _spec(architecture: str, **options: object) -> ModelSpec:
    return ModelSpec(
        architecture=architecture,
        num_classes=2,
        class_names=("normal", "tumour"),
        patch_size_pixels=224,
        spacing_um_px=0.5,
        task=Task.MIL,
        provenance={
            "mil": {"in_features": D, "hidden": 32, "dropout": 0.1, **options},
            "encoder": {"name": "test", "hash": "abc", "mpp": 0.5, "tile_px": 224},
        },
    )


def _options(architecture: str) -> dict[str, int]:
    return {"heads": 4} if architecture == "transmil" else {}


@pytest.mark.parametrize("architecture", MIL_ARCHITECTURES)
@pytest.mark.parametrize("n", [1, 7, 50])
def test_shapes_and_attention(architecture: str, n: int) -> None:
    torch.manual_seed(0)
    net = build_mil_network(architecture, D, 3, hidden=32, dropout=0.1, **_options(architecture)).eval()
    out = net(torch.randn(n, D))
    assert out["logits"].shape == (3,)
    assert out["attention"].shape == (n,)
    assert out["tile_scores"].shape == (n, 3)
    assert torch.isclose(out["attention"].sum(), torch.tensor(1.0), atol=1e-5)
    assert (out["attention"] >= 0).all()


@pytest.mark.parametrize("architecture", ["abmil", "clam_sb"])
def test_permutation_invariance(architecture: str) -> None:
    torch.manual_seed(0)
    net = build_mil_network(architecture, D, 2, hidden=32).eval()
    x = torch.randn(30, D)
    perm = torch.randperm(30)
    a, b = net(x), net(x[perm])
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5)
    assert torch.allclose(a["attention"][perm], b["attention"], atol=1e-6)


def test_clam_instance_loss_and_bag_check() -> None:
    net = build_mil_network("clam_sb", D, 2, hidden=32, k_sample=4).train()
    out = net(torch.randn(20, D), label=1)
    assert out["instance_loss"].ndim == 0 and torch.isfinite(out["instance_loss"])
    out["instance_loss"].backward()
    assert "instance_loss" not in net(torch.randn(20, D))
    with pytest.raises(ValueError, match="a bag is a"):
        net(torch.randn(20, D + 1))


@pytest.mark.parametrize("architecture", MIL_ARCHITECTURES)
def test_save_load_round_trip(tmp_path, architecture: str) -> None:
    spec = _spec(architecture, **_options(architecture))
    net = build_mil_network(architecture, D, 2, hidden=32, dropout=0.1, **_options(architecture)).eval()
    save_mil_model(net, spec, tmp_path / "m")
    assert is_mil_model(tmp_path / "m") and not is_mil_model(tmp_path)
    loaded, spec2 = load_mil_model(tmp_path / "m")
    assert spec2.task is Task.MIL and spec2.provenance["encoder"]["hash"] == "abc"
    x = torch.randn(12, D)
    assert torch.allclose(net(x)["logits"], loaded(x)["logits"], atol=1e-6)


def test_patch_loaders_refuse_a_mil_model(tmp_path) -> None:
    net = build_mil_network("abmil", D, 2, hidden=32, dropout=0.1)
    save_mil_model(net, _spec("abmil"), tmp_path / "m")
    with pytest.raises(ModelSpecError, match="load_mil_model"):
        load_model(tmp_path / "m", device="cpu")
    with pytest.raises(ModelSpecError, match="MIL"):
        create_network(load_spec(tmp_path / "m"))


def test_spec_validation() -> None:
    with pytest.raises(ModelSpecError, match="architecture"):
        _spec("resnet18")
    with pytest.raises(ModelSpecError, match="set task to mil"):
        ModelSpec("abmil", 2, ("a", "b"), 224, 0.5)
    with pytest.raises(ModelSpecError, match="in_features"):
        ModelSpec("abmil", 2, ("a", "b"), 224, 0.5, task=Task.MIL, provenance={"encoder": {"name": "x"}})


def test_load_mil_model_refuses_a_patch_model(tmp_path) -> None:
    from napari_histo.models import save_model

    spec = ModelSpec("resnet18", 2, ("a", "b"), 224, 0.5)
    save_model(torch.nn.Linear(2, 2), spec, tmp_path / "p")
    with pytest.raises(ModelSpecError, match="not a slide-level"):
        load_mil_model(tmp_path / "p")
