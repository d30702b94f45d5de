"""Recipe E's (IDC) stand-in is as imbalanced as IDC, and its undersampling shows in the run report."""

from __future__ import annotations

import json
from pathlib import Path

from training.config import load_config
from training.run import train
from training.synthetic import STAND_IN_PROPORTIONS, synthetic_samples

RECIPE = Path(__file__).resolve().parents[2] / "training" / "recipes" / "e_efficientnetv2s_idc.yaml"
SHRINK = ["train.device=cpu", "data.synthetic_per_class=30", "model.weights=none", "train.batch_size=8",
          "train.phases=[{epochs: 1, trainable: all, optimizer: adamax, lr: 1.0e-3}]"]  # fmt: skip


def test_stand_in_is_as_imbalanced_as_idc() -> None:
    config = load_config(RECIPE, SHRINK)
    assert config.data.source == "synthetic"  # a stand-in, not IDC
    assert config.data.balance == "undersample"
    counts = synthetic_samples(config.data).counts()
    negative, idc = STAND_IN_PROPORTIONS[("negative", "idc")]
    assert counts == {"negative": round(30 * negative / idc), "idc": 30}
    assert 2.4 < counts["negative"] / counts["idc"] < 2.6  # IDC: 198,738 / 78,786 = 2.52


def test_undersampling_balances_training_fold_and_report_shows_both(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = load_config(RECIPE, [f"output_dir={tmp_path}", *SHRINK])
    result = train(config, progress=False)
    run_dir = tmp_path / config.name
    assert result.model_dir.is_dir()
    before = json.loads((run_dir / "class_counts.json").read_text())
    assert before["balance"] == "undersample" and "stand-in" in before["data"]
    assert before["before_balancing"] == {"negative": 76, "idc": 30}
    after = json.loads((run_dir / "metrics.json").read_text())["summary"]["counts"]
    assert after["train"]["negative"] == after["train"]["idc"] > 0  # undersampled to the rarer class
    assert after["valid"]["negative"] > after["valid"]["idc"]  # validation keeps the real imbalance
    printed = capsys.readouterr().out
    assert "class counts before balancing (all splits): negative 76, idc 30" in printed
    assert "undersampled" in printed
    readme = (run_dir / "README.md").read_text()  # the run report shows both
    assert "loaded, before balancing (all source splits):** negative 76, idc 30" in readme
    shown = f"train, after data.balance = undersample:** negative {after['train']['negative']}"
    assert shown in readme
