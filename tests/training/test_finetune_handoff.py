"""The fine-tune hand-off: a model directory + class-folder tiles → a recipe the schema checks → a new model.

The end-to-end run trains the shipped PCam model for one epoch on 8 real PCam patches per class
(re-encoded as PNG class folders, the shape the GUI's corrections are exported in).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from napari_histo.models import load_spec
from tests.conftest import shared_file
from training.config import ConfigError, load_config
from training.finetune import RECIPE_FILE, finetune_config, main, write_recipe

REPO = Path(__file__).resolve().parents[2]
PCAM_MODEL = REPO / "napari_histo" / "models" / "builtin" / "pcam-mobilenetv2"


def _noise_tiles(root: Path, names=("normal", "tumour"), n: int = 2) -> Path:
    """Class folders of placeholder PNGs: enough for the config checks, which do not read pixels."""
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(n):
            imagecodecs.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 256, (8, 8, 3), np.uint8))
    return root


@pytest.fixture
def pcam_tiles(tmp_path: Path) -> Path:
    """8 distinct real PCam training patches per class as ``tiles/{normal,tumour}/*.png``."""
    labels = shared_file("pcam", "labels.csv")
    with open(labels, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    root = tmp_path / "tiles"
    for label, name in (("0", "normal"), ("1", "tumour")):
        (root / name).mkdir(parents=True)
        picked: dict[str, str] = {}
        for r in rows:
            if r["label"] == label and r["md5"] not in picked:
                picked[r["md5"]] = r["path"]
            if len(picked) == 8:
                break
        for path in picked.values():
            pixels = imagecodecs.imread(str(labels.parent / path))
            imagecodecs.imwrite(str(root / name / (Path(path).stem + ".png")), pixels)
    return root


def test_config_for_the_shipped_model_carries_its_spec(tmp_path: Path) -> None:
    spec = load_spec(PCAM_MODEL)
    tiles = _noise_tiles(tmp_path / "tiles")
    config = finetune_config(PCAM_MODEL, tiles, tmp_path / "runs", epochs=2, lr=5e-5, batch_size=16)
    assert config.name == "fine-tuned"
    assert config.output_dir == str((tmp_path / "runs").resolve())
    assert config.data.source == "folders"
    assert config.data.root == str(tiles.resolve())
    assert config.data.class_names == spec.class_names == ("normal", "tumour")
    assert config.data.valid_fraction == 0.2 and config.data.dedup is True
    model = config.model
    assert model.architecture == "mobilenetv2_100"
    assert model.weights == str((PCAM_MODEL / "weights.safetensors").resolve())
    assert model.input_size == spec.input_size == 96
    assert model.patch_size_pixels == 96 and model.spacing_um_px == 1.0
    assert model.mean == pytest.approx(spec.mean) and model.std == pytest.approx(spec.std)
    assert model.mean == pytest.approx((0.485, 0.456, 0.406))
    assert model.class_colors == ((0, 158, 115), (213, 94, 0)) == spec.class_colors
    assert model.name == "pcam-mobilenetv2-fine-tuned"
    assert model.description.endswith("Fine-tuned on corrected tiles.")
    assert config.augment.flips and config.augment.rot90
    assert config.train.batch_size == 16 and config.train.monitor == "loss"
    (phase,) = config.train.phases
    assert (phase.epochs, phase.trainable, phase.optimizer) == (2, "all", "adam")
    assert phase.lr == pytest.approx(5e-5)


def test_written_recipe_reads_back_as_the_same_config(tmp_path: Path) -> None:
    config = finetune_config(PCAM_MODEL, _noise_tiles(tmp_path / "tiles"), tmp_path / "runs", name="again")
    path = write_recipe(config, tmp_path / "runs" / "again" / RECIPE_FILE)
    again = load_config(path)
    assert again.recipe_path == str(path.resolve())
    assert again == type(config)(**{**config.__dict__, "recipe_path": str(path.resolve())})


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"epochs": 0}, r"train\.phases\[0\]\.epochs = 0"),
        ({"lr": -1.0}, r"train\.phases\[0\]\.lr = -1\.0"),
        ({"batch_size": 0}, r"train\.batch_size"),
        ({"name": "a/b"}, r"name = 'a/b'"),
    ],
)
def test_wrong_argument_is_refused_naming_the_key(tmp_path: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        finetune_config(PCAM_MODEL, _noise_tiles(tmp_path / "tiles"), tmp_path / "runs", **kwargs)


def test_missing_tiles_folder_or_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.root = .*no-tiles.*not found"):
        finetune_config(PCAM_MODEL, tmp_path / "no-tiles", tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"class folder .*tumour is empty or missing"):
        finetune_config(PCAM_MODEL, _noise_tiles(tmp_path / "tiles", names=("normal",)), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_command_line_error_is_one_line_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from napari_histo.cli._report import EXIT_INPUT

    args = ["--model", str(PCAM_MODEL), "--tiles", str(tmp_path / "no-tiles"), "--runs", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--epochs", "0"])
    assert exit_info.value.code == EXIT_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "train.phases[0].epochs" in err
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == EXIT_INPUT
    assert "data.root" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tune_command_trains_and_prints_the_model_directory_last(
    tmp_path: Path, pcam_tiles: Path
) -> None:
    runs = tmp_path / "runs"
    done = subprocess.run(
        [
            sys.executable, "-m", "training.finetune", "--model", str(PCAM_MODEL), "--tiles", str(pcam_tiles),
            "--runs", str(runs), "--name", "ft", "--epochs", "1", "--batch-size", "8", "--quiet",
        ],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = runs.resolve() / "ft"
    model_dir = run_dir / "model"
    assert done.stdout.strip().splitlines()[-1] == str(model_dir)
    assert (model_dir / "model.json").is_file() and (model_dir / "weights.safetensors").is_file()
    history = (run_dir / "history.csv").read_text().strip().splitlines()
    assert len(history) == 2  # header + the one epoch
    recipe = load_config(run_dir / RECIPE_FILE)
    assert recipe.train.phases[0].epochs == 1 and recipe.data.root == str(pcam_tiles.resolve())
    spec = load_spec(model_dir)
    assert spec.class_names == ("normal", "tumour")
    assert spec.architecture == "mobilenetv2_100" and spec.input_size == 96
    assert spec.name == "pcam-mobilenetv2-ft"
    assert spec.provenance["recipe"] == RECIPE_FILE  # outside the repository: its file name only
    assert spec.provenance["command"].startswith("python -m training.finetune --model")
