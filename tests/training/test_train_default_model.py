"""The shipped default model: what model.json promises, and that it scores on real PCam patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared_file
from training.data import dedup, read_labels_csv
from training.metrics import classification_metrics

BUILTIN = Path(__file__).resolve().parents[2] / "napari_histo" / "models" / "builtin" / "pcam-mobilenetv2"


@pytest.fixture
def builtin() -> Path:
    if not (BUILTIN / "model.json").exists():
        pytest.skip("default model not trained yet")
    return BUILTIN


def test_default_model_directory(builtin: Path) -> None:
    from napari_histo.models import load_spec

    spec = load_spec(builtin)
    assert spec.class_names == ("normal", "tumour")
    assert spec.spacing_um_px == 1.0 and spec.patch_size_pixels == 96
    assert (builtin / "weights.safetensors").stat().st_size < 20 * 2**20
    assert spec.metrics["test"]["n"] == 2907  # the de-duplicated PCam valid split, untouched by training
    assert spec.provenance["touched_splits"] == ["train"]  # selection was carved from PCam train
    assert spec.provenance["recipe"] == "training/recipes/pcam_mobilenetv2.yaml"  # relative, no machine path
    assert spec.tta == "dihedral8" and 0.5 < spec.temperature < 2
    assert "histo train" in spec.provenance["command"]
    assert (builtin / "MODEL_CARD.md").exists()


def test_default_model_loads_by_name_and_scores_on_real_pcam(builtin: Path) -> None:
    from napari_histo.models import load_model, load_spec

    csv_path = shared_file("pcam", "labels.csv")
    samples = dedup(read_labels_csv(csv_path, csv_path.parent, ["normal", "tumour"]))
    valid = np.flatnonzero(samples.split == "valid")
    pick = np.random.default_rng(0).choice(valid, 256, replace=False)
    part = samples.subset(pick).with_pixels()
    spec = load_spec(builtin)
    network = load_model("pcam-mobilenetv2", device="cpu")
    x = torch.from_numpy(part.images).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.cat([network(b).softmax(1) for b in x.split(64)]).numpy()
    metrics = classification_metrics(part.labels, probs, spec.class_names)
    assert metrics["accuracy"] > 0.85 and metrics["roc_auc"] > 0.93, metrics
