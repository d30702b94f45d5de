"""DDP under torchrun with gloo: 2 CPU processes train one tiny recipe together."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TINY_ARCH = "mobilenetv3_small_050"


def _failure(stderr: str) -> str:
    """Rank 0's own traceback lines (torchrun's summary alone hides the root cause) and the tail."""
    rank0 = [line for line in stderr.splitlines() if line.startswith("[rank0]")]
    return "\n".join(rank0[-40:]) + "\n...\n" + stderr[-2000:]


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo_and_two_phases(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "ddp",
                "output_dir": str(tmp_path / "runs"),
                "data": {
                    "source": "synthetic",
                    "class_names": ["sparse", "dense"],
                    "synthetic_per_class": 32,
                    "synthetic_px": 32,
                },
                "model": {"architecture": TINY_ARCH},
                "train": {
                    "batch_size": 8,
                    "phases": [
                        {"epochs": 1, "trainable": "head", "lr": 0.01},
                        {"epochs": 1, "trainable": "from:blocks.3", "lr": 0.01},
                    ],
                },
            }
        )
    )
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {
        "HISTO_DDP_BACKEND": "gloo",
        "OMP_NUM_THREADS": "1",
        "PATH": str(Path(sys.executable).parent),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.cli", str(recipe), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, _failure(done.stderr)
    run = tmp_path / "runs" / "ddp"
    assert (run / "model" / "weights.safetensors").exists()
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs, written once (rank 0 only)
    assert "validation" in done.stdout


_DRIVER = """
import json, os, sys
from training.config import load_config
from training.run import train

result = train(load_config(sys.argv[1], []), progress=False)
rank = os.environ["RANK"]
out = {"history": result.history, "valid": result.metrics["valid"]}
with open(sys.argv[2] + f".rank{rank}.json", "w") as fh:
    json.dump(out, fh, default=str)
"""


@pytest.mark.slow
def test_torchrun_ranks_agree_on_validation_metrics_and_early_stopping(tmp_path: Path) -> None:
    """BatchNorm statistics differ per shard; validation, best epoch and stopping must still agree."""
    recipe = tmp_path / "agree.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "agree",
                "output_dir": str(tmp_path / "runs"),
                "data": {
                    "source": "synthetic",
                    "class_names": ["sparse", "dense"],
                    "synthetic_per_class": 24,
                    "synthetic_px": 32,
                },
                "model": {"architecture": TINY_ARCH},
                "train": {
                    "batch_size": 4,
                    "monitor": "loss",
                    "early_stopping": 1,
                    "phases": [{"epochs": 4, "trainable": "all", "lr": 0.05}],
                },
            }
        )
    )
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {
        "HISTO_DDP_BACKEND": "gloo",
        "OMP_NUM_THREADS": "1",
        "PATH": str(Path(sys.executable).parent),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HOME": str(tmp_path),
    }
    prefix = tmp_path / "out"
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(driver), str(recipe), str(prefix)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, _failure(done.stderr)
    # rank 0 alone loads first and records the class counts; rank 1 then reads (they once raced on one file)
    assert done.stdout.count("class counts before balancing") == 1, done.stdout
    assert not list((tmp_path / "runs" / "agree").glob("*.part"))
    import csv
    import json

    ranks = [json.loads(Path(f"{prefix}.rank{r}.json").read_text()) for r in (0, 1)]
    keys = [k for k in ranks[0]["history"][0] if k.startswith(("val_", "train_loss"))]
    assert keys and "val_loss" in keys
    histories = [[{k: row[k] for k in keys} for row in rank["history"]] for rank in ranks]
    assert histories[0] == histories[1]  # same metrics every epoch, so the same stop epoch
    assert ranks[0]["valid"] == ranks[1]["valid"]  # final validation of best.pt
    with open(tmp_path / "runs" / "agree" / "history.csv", newline="") as fh:
        saved = list(csv.DictReader(fh))
    assert len(saved) == len(histories[1])
    for row, logged in zip(saved, histories[1]):
        for key in keys:
            assert float(row[key]) == pytest.approx(float(logged[key]), rel=1e-6)
