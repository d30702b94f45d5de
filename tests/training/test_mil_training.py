"""MIL recipes on synthetic embedding tables (histo embed's format): train, stop, resume, refuse, split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from napari_histo.models.mil import load_mil_model
from training.config import ConfigError, apply_overrides, config_from_dict
from training.mil_data import load_bags
from training.run import train

D = 16


def write_table(path: Path, features: np.ndarray, encoder_hash: str = "h0", complete: bool = True) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    n = len(features)
    group.create_array("features", data=features.astype(np.float16))
    group.create_array("coords", data=(np.arange(2 * n).reshape(n, 2) * 224).astype(np.int64))
    group.create_array("tissue", data=np.ones(n, dtype=np.float32))
    group.attrs.update(
        {
            "encoder": "toy",
            "encoder_hash": encoder_hash,
            "feature_dim": features.shape[1],
            "mpp": 0.5,
            "tile_px": 224,
            "slide": path.name,
            "complete": complete,
        }
    )


def make_cohort(root: Path, n_slides: int = 24, seed: int = 0) -> Path:
    """Slides of 20-40 tiles; a tumour slide holds 3 tiles shifted along one direction; 2 slides a patient."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=D)
    direction /= np.linalg.norm(direction)
    tables = root / "tables"
    tables.mkdir(parents=True)
    rows = []
    for i in range(n_slides):
        label = i % 2
        x = rng.normal(size=(int(rng.integers(20, 41)), D))
        if label:
            x[rng.choice(len(x), 3, replace=False)] += 4 * direction
        write_table(tables / f"slide{i:02d}.embeddings.zarr", x)
        rows.append(
            {"slide": f"slide{i:02d}.svs", "label": ["normal", "tumour"][label], "patient": f"p{i // 2}"}
        )
    with open(root / "slides.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["slide", "label", "patient"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def mil_recipe(root: Path, out: Path, *overrides: str):  # type: ignore[no-untyped-def]
    data = {
        "name": "mil",
        "output_dir": str(out),
        "data": {
            "source": "embeddings",
            "root": str(root / "tables"),
            "labels_csv": str(root / "slides.csv"),
            "class_names": ["normal", "tumour"],
            "valid_fraction": 0.25,
            "test_fraction": 0.25,
        },
        "model": {"architecture": "abmil", "task": "mil"},
        "mil": {"hidden": 32, "dropout": 0.0},
        "train": {"phases": [{"epochs": 6, "lr": 5e-3}], "monitor": "roc_auc", "device": "cpu"},
    }
    return config_from_dict(apply_overrides(data, list(overrides)))


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    return make_cohort(tmp_path / "cohort")


def test_split_by_patient(cohort: Path, tmp_path: Path) -> None:
    parts, encoder = load_bags(mil_recipe(cohort, tmp_path))
    assert set(parts) == {"train", "valid", "test"}
    patients = [set(bags.patients) for bags in parts.values()]
    assert (
        not (patients[0] & patients[1])
        and not (patients[0] & patients[2])
        and not (patients[1] & patients[2])
    )
    assert sum(len(b) for b in parts.values()) == 24
    assert encoder == {"name": "toy", "hash": "h0", "mpp": 0.5, "tile_px": 224, "feature_dim": D}
    assert parts["train"].tables[0].features.dtype == np.float32


@pytest.mark.parametrize("architecture", ["abmil", "clam_sb", "transmil"])
def test_trains_and_writes_a_run(cohort: Path, tmp_path: Path, architecture: str) -> None:
    config = mil_recipe(
        cohort, tmp_path, f"model.architecture={architecture}", "mil.heads=4", "mil.k_sample=3"
    )
    result = train(config, progress=False)
    run = result.run_dir
    for name in (
        "last.pt",
        "best.pt",
        "history.csv",
        "progress.json",
        "metrics.json",
        "README.md",
        "learning_curves.png",
        "roc_valid.png",
        "confusion_test.png",
        "predictions_test.csv",
        "attention_test.csv",
        "config.yaml",
    ):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "predictions_test.csv", newline="") as fh:
        assert metrics["test"]["n"] == len(list(csv.DictReader(fh)))
    _, spec = load_mil_model(result.model_dir)
    assert spec.architecture == architecture and spec.provenance["encoder"]["hash"] == "h0"
    assert spec.provenance["mil"]["in_features"] == D and spec.patch_size_pixels == 224
    if architecture == "abmil":
        assert result.metrics["valid"]["roc_auc"] >= 0.9  # three shifted tiles are easy to find


def test_early_stopping_and_resume(cohort: Path, tmp_path: Path) -> None:
    config = mil_recipe(
        cohort, tmp_path, "train.early_stopping=1", "train.phases[0].lr=1e-9", "train.monitor=loss"
    )
    first = train(config, progress=False)
    assert len(first.history) < 6  # the loss does not improve at lr 1e-9: stops after one stale epoch
    metrics = json.loads((first.run_dir / "metrics.json").read_text())
    assert metrics["summary"]["stopped"].startswith("early stopping")
    again = train(config, progress=False)  # resumed from last.pt: stays stopped, nothing retrained
    assert len(again.history) == len(first.history)
    done = train(mil_recipe(cohort, tmp_path, "train.phases[0].epochs=3", "name=more"), progress=False)
    resumed = train(mil_recipe(cohort, tmp_path, "train.phases[0].epochs=4", "name=more"), progress=False)
    assert len(resumed.history) == len(done.history) + 1


def test_refuses_changed_settings_and_data(cohort: Path, tmp_path: Path) -> None:
    train(mil_recipe(cohort, tmp_path, "train.phases[0].epochs=1"), progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        train(mil_recipe(cohort, tmp_path, "train.phases[0].epochs=1", "mil.hidden=64"), progress=False)
    write_table(cohort / "tables" / "slide00.embeddings.zarr", np.zeros((5, D)))
    with pytest.raises(ConfigError, match="other training data"):
        train(mil_recipe(cohort, tmp_path, "train.phases[0].epochs=1"), progress=False)


def test_recipe_checks(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="abmil, clam_sb or transmil"):
        mil_recipe(cohort, tmp_path, "model.architecture=resnet18")
    with pytest.raises(ConfigError, match=r"data\.source: embeddings"):
        mil_recipe(cohort, tmp_path, "data.source=folders")
    with pytest.raises(ConfigError, match="trains whole"):
        mil_recipe(cohort, tmp_path, "train.phases[0].trainable=head")


def test_refuses_mixed_encoders_and_incomplete_tables(cohort: Path, tmp_path: Path) -> None:
    write_table(cohort / "tables" / "slide01.embeddings.zarr", np.zeros((5, D)), encoder_hash="other")
    with pytest.raises(ConfigError, match="different encoders"):
        load_bags(mil_recipe(cohort, tmp_path))
    write_table(cohort / "tables" / "slide01.embeddings.zarr", np.zeros((5, D)), complete=False)
    with pytest.raises(ConfigError, match=r"incomplete|not complete"):
        load_bags(mil_recipe(cohort, tmp_path))


def test_histo_train_routes_a_mil_recipe(cohort: Path, tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from training.cli import train as train_command

    recipe = tmp_path / "mil.yaml"
    recipe.write_text(
        yaml.safe_dump({
            "name": "cli", "output_dir": str(tmp_path / "runs"),
            "about": {"paper": "Ilse 2018", "data": "SYNTHETIC embeddings", "differs_from_paper": "toy"},
            "data": {"source": "embeddings", "root": "cohort/tables", "labels_csv": "cohort/slides.csv"},
            "model": {"architecture": "abmil", "task": "mil"},
            "mil": {"hidden": 16},
            "train": {"phases": [{"epochs": 1}], "device": "cpu"},
        })
    )  # fmt: skip
    result = CliRunner().invoke(train_command, [str(recipe), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation:" in result.output
    assert (tmp_path / "runs" / "cli" / "model" / "model.json").exists()
