"""Issue 16's protocol in training: the split that selects epochs and temperature is never the one reported.

The shipped PCam recipe carves its selection split out of PCam's train split
(``data.selection_from_train``), leaves PCam's valid split out of the run, fits the temperature on
the selection split through the inference engine (with the dihedral TTA it ships with), and records
which source splits it touched, so ``histo evaluate`` reports on PCam valid and refuses train.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA

from training.config import ConfigError, load_config
from training.run import train

RECIPE = Path(__file__).resolve().parents[2] / "training" / "recipes" / "pcam_mobilenetv2.yaml"
SHRINK = [
    "train.device=cpu",
    "data.max_per_class=24",
    "train.phases=[{epochs: 1, trainable: head, lr: 1e-3}]",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not (SHARED_DATA / "pcam" / "labels.csv").is_file():
        pytest.skip("real PCam patches not available")
    out = tmp_path_factory.mktemp("selection")
    return train(load_config(RECIPE, [f"output_dir={out}", *SHRINK]), progress=False)


@pytest.mark.slow
def test_selection_split_is_carved_from_train_and_pcam_valid_is_left_out(run) -> None:
    with open(run.run_dir / "predictions_valid.csv", newline="") as fh:
        patches = [row["patch"] for row in csv.DictReader(fh)]
    assert len(patches) == 48 and all("/pcam/train/" in p for p in patches)  # not one PCam valid patch
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert set(metrics["summary"]["counts"]) == {"train", "valid"} and "test" not in metrics
    spec = json.loads((run.model_dir / "model.json").read_text())
    assert spec["provenance"]["touched_splits"] == ["train"]
    assert spec["tta"] == "dihedral8"


@pytest.mark.slow
def test_temperature_is_fitted_on_the_selection_split_and_stored(run) -> None:
    spec = json.loads((run.model_dir / "model.json").read_text())
    calibration = spec["provenance"]["calibration"]
    assert spec["temperature"] == pytest.approx(calibration["temperature"], abs=1e-3)
    assert spec["temperature"] != 1.0
    assert calibration["fitted_on"].startswith("valid (the selection split, 48")
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-5  # the NLL it minimised there
    assert 0 <= calibration["ece_after"] <= 1 and 0 <= calibration["ece_before"] <= 1
    assert (run.run_dir / "reliability_valid.png").stat().st_size > 0


@pytest.mark.slow
def test_histo_evaluate_reports_on_pcam_valid_and_refuses_train(run, tmp_path) -> None:
    from napari_histo.cli.main import cli

    base = ["evaluate", str(run.model_dir), "--data", str(SHARED_DATA / "pcam"), "--max-per-class", "10",
            "--bootstrap", "20", "--no-tta"]  # fmt: skip
    ok = CliRunner().invoke(cli, [*base, "--split", "valid", "--out", str(tmp_path / "v")])
    assert ok.exit_code == 0, ok.output
    assert "WARNING" not in ok.output
    reported = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert reported["touched"] is False and reported["protocol"]["status"] == "untouched"
    refused = CliRunner().invoke(cli, [*base, "--split", "train", "--out", str(tmp_path / "t")])
    assert refused.exit_code != 0 and "refusing to report on 'train'" in str(refused.exception)
    assert not (tmp_path / "t" / "metrics.json").exists()


def test_selection_fraction_is_checked() -> None:
    with pytest.raises(ConfigError, match="selection_from_train"):
        load_config(RECIPE, ["data.selection_from_train=1.5"])
