"""DDP under torchrun with gloo: 2 CPU processes train one tiny recipe together."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TINY_ARCH = "mobilenetv3_small_050"


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
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "ddp"
    assert (run / "model" / "weights.safetensors").exists()
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs, written once (rank 0 only)
    assert "validation" in done.stdout
