"""``histo cluster --weights``: the shipped ImageNet files, a model directory, and random init."""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner

from napari_histo.cli.main import cli
from napari_histo.models import ModelSpec, create_network, save_model
from tests.conftest import shared_file
from training.clustering import cluster_folders


@pytest.fixture
def class_folders(tmp_path: Path) -> list[Path]:
    """Two folders of 8 generated 48-px tiles each: pinkish and bluish noise."""
    rng = np.random.default_rng(0)
    folders = []
    for name, base in (("pink", (220, 140, 190)), ("blue", (90, 90, 200))):
        folder = tmp_path / "tiles" / name
        folder.mkdir(parents=True)
        for i in range(8):
            tile = np.clip(rng.normal(base, 25, size=(48, 48, 3)), 0, 255).astype(np.uint8)
            (folder / f"{i}.png").write_bytes(imagecodecs.png_encode(tile))
        folders.append(folder)
    return folders


def _spec(**extra: object) -> ModelSpec:
    return ModelSpec(
        architecture="resnet10t",
        num_classes=2,
        class_names=("a", "b"),
        patch_size_pixels=48,
        spacing_um_px=0.5,
        **extra,  # type: ignore[arg-type]
    )


def _check_outputs(out: Path) -> dict:
    assert (out / "clustering.png").exists()
    report = json.loads((out / "clustering.json").read_text())
    assert report["groups"] == ["pink", "blue"]
    assert report["features"]["n"] == 16 and np.isfinite(report["features"]["accuracy"])
    return report


@pytest.mark.parametrize(
    ("architecture", "file"),
    [
        ("mobilenetv2_100", "mobilenet_v2-b0353104.pth"),
        ("tf_efficientnet_lite0", "efficientnet-lite0-57934424.pth"),
    ],
)
def test_cluster_with_each_shipped_imagenet_file(
    class_folders: list[Path], tmp_path: Path, architecture: str, file: str
) -> None:
    weights = shared_file("weights", file)
    out = tmp_path / "out"
    args = ["cluster", *map(str, class_folders), "--architecture", architecture]
    result = CliRunner().invoke(cli, [*args, "--weights", str(weights), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "features: accuracy" in result.output and "randomly initialised" not in result.output
    _check_outputs(out)


def test_cluster_infers_the_architecture_of_a_shipped_file(class_folders: list[Path], tmp_path: Path) -> None:
    weights = shared_file("weights", "mobilenet_v2-b0353104.pth")
    cluster_folders(class_folders, weights=str(weights), out_dir=tmp_path / "out")
    _check_outputs(tmp_path / "out")


def test_cluster_with_a_model_directory(class_folders: list[Path], tmp_path: Path) -> None:
    spec = _spec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model_dir = save_model(create_network(spec), spec, tmp_path / "model")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["cluster", *map(str, class_folders), "--weights", str(model_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    _check_outputs(out)


def test_cluster_model_directory_refuses_another_architecture(
    class_folders: list[Path], tmp_path: Path
) -> None:
    spec = _spec()
    model_dir = save_model(create_network(spec), spec, tmp_path / "model")
    with pytest.raises(ValueError, match="holds a resnet10t"):
        cluster_folders(
            class_folders, architecture="resnet18", weights=str(model_dir), out_dir=tmp_path / "o"
        )


def test_cluster_without_weights_warns_once(class_folders: list[Path], tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="randomly initialised") as record:
        cluster_folders(class_folders, architecture="resnet10t", out_dir=tmp_path / "out")
    random_warnings = [w for w in record if "randomly initialised" in str(w.message)]
    assert len(random_warnings) == 1
    assert "--weights" in str(random_warnings[0].message)
    _check_outputs(tmp_path / "out")
