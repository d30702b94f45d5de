"""SimCLR on tiles without labels: SSL only → model directory → fine-tuning from it; resume; bad paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, shared_file, tiny_recipe

from napari_histo.models import load_model, load_spec
from napari_histo.models.weights import read_weight_file
from training.checkpoint import load_checkpoint
from training.config import ConfigError, DataConfig, apply_overrides, config_from_dict, load_config
from training.network import build_network
from training.run import make_spec, prepare_data, train
from training.ssl import PLACEHOLDER_CLASSES, SSL_HISTORY, SSL_LAST
from training.synthetic import synthetic_samples

#: not ImageNet's, so a test sees whether the fine-tuning run took them from the SSL model directory
SSL_MEAN, SSL_STD = [0.6, 0.5, 0.7], [0.2, 0.25, 0.3]


def write_unlabelled_tiles(root: Path, n: int = 32, px: int = 32) -> Path:
    """``n`` PNG tiles in two nested folders whose names are no classes (no labels anywhere)."""
    images = synthetic_samples(DataConfig(source="synthetic", class_names=("a", "b"), synthetic_per_class=n,
                                          synthetic_px=px)).images  # fmt: skip
    assert images is not None
    for i, pixels in enumerate(images[:n]):
        folder = root / ("scan_1" if i % 2 else "scan_2/deeper")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"tile_{i:03d}.png").write_bytes(imagecodecs.png_encode(pixels))
    return root


def ssl_recipe(out: Path, tiles: Path | str, *overrides: str):  # type: ignore[no-untyped-def]
    """An SSL-only recipe: no data section, only a folder of unlabelled tiles."""
    data = {
        "name": "ssl",
        "output_dir": str(out),
        "model": {"architecture": TINY_ARCH, "spacing_um_px": 0.5, "mean": SSL_MEAN, "std": SSL_STD},
        "ssl": {"only": True, "data": [str(tiles)], "epochs": 2, "batch_size": 16, "lr": 1e-3},
        "train": {"device": "cpu", "seed": 0},
    }
    return config_from_dict(apply_overrides(data, list(overrides)))


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / SSL_HISTORY, newline="") as fh:
        return list(csv.DictReader(fh))


def test_ssl_only_on_a_folder_then_fine_tune_from_its_model_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiles = write_unlabelled_tiles(tmp_path / "tiles")
    config = ssl_recipe(tmp_path / "runs", tiles)
    assert config.data.source == "none"  # no labelled data in this recipe
    result = train(config)
    out = capsys.readouterr().out
    run_dir = result.run_dir
    # progress: one line per epoch with the loss and the speed; progress.json at the end of the last epoch
    assert "SimCLR only: 32 tiles" in out
    assert "SimCLR epoch 1/2: nt_xent" in out and "SimCLR epoch 2/2: nt_xent" in out and "img/s)" in out
    assert json.loads((run_dir / "progress.json").read_text())["epochs"] == 2
    rows = history(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["nt_xent"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    assert result.metrics["ssl"]["tiles"] == 32 and result.metrics["ssl"]["epochs"] == 2
    assert not (run_dir / "last.pt").exists() and not (run_dir / "history.csv").exists()  # no supervised

    # the model directory: honest model.json, loads with napari_histo, predicts nothing (zero head)
    spec = load_spec(result.model_dir)
    assert spec.class_names == PLACEHOLDER_CLASSES
    assert "NOT a classifier" in spec.description and "SimCLR" in spec.description
    assert list(spec.mean) == SSL_MEAN and list(spec.std) == SSL_STD and spec.input_size == 32
    assert spec.metrics["ssl"]["epochs"] == 2
    network = load_model(result.model_dir, "cpu")
    with torch.no_grad():
        probs = network(torch.rand(3, 3, 32, 32)).softmax(1)
    assert torch.allclose(probs, torch.full_like(probs, 0.5))
    ssl_weights = read_weight_file(result.model_dir / "weights.safetensors")
    # SimCLR trained the backbone: BatchNorm statistics moved from their initial 0, Adam took 2 x 2 steps
    means = [v for k, v in ssl_weights.items() if k.endswith("running_mean")]
    assert means and all(v.abs().sum() > 0 for v in means)
    state = load_checkpoint(run_dir / SSL_LAST)
    assert state["epoch"] == 2 and all(s["step"] == 4 for s in state["optimizer"]["state"].values())

    # a second recipe fine-tunes from it: its network starts from the SSL backbone, mean/std carried
    tuned = tiny_recipe(tmp_path / "runs", f"model.weights={result.model_dir}", "name=tuned")
    folds = prepare_data(tuned, tmp_path / "runs" / "tuned")
    tuned_spec = make_spec(tuned, folds["train"].samples)
    assert list(tuned_spec.mean) == SSL_MEAN and list(tuned_spec.std) == SSL_STD
    start = build_network(tuned, tuned_spec).state_dict()
    backbone = [k for k in ssl_weights if not k.startswith("classifier") and k in start]
    assert len(backbone) > 20
    assert all(torch.equal(start[k], ssl_weights[k]) for k in backbone)
    finished = train(tuned, progress=False)
    tuned_model = load_spec(finished.model_dir)
    assert tuned_model.class_names == ("sparse", "dense")
    assert list(tuned_model.mean) == SSL_MEAN and list(tuned_model.std) == SSL_STD


def test_resume_skips_finished_ssl_and_more_epochs_continue(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiles = write_unlabelled_tiles(tmp_path / "tiles", n=16)
    config = ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=1")
    run_dir = train(config).run_dir
    first = history(run_dir)
    stamp = (run_dir / SSL_LAST).stat().st_mtime_ns
    capsys.readouterr()

    train(config)  # the same recipe again: nothing left to pre-train
    out = capsys.readouterr().out
    assert "1 of 1 epochs done" in out and "skipped" in out
    assert "SimCLR epoch" not in out
    assert (run_dir / SSL_LAST).stat().st_mtime_ns == stamp
    assert history(run_dir) == first

    train(ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=2"))  # more epochs: continue at epoch 2
    out = capsys.readouterr().out
    assert "continuing at epoch 2" in out
    assert "SimCLR epoch 2/2" in out and "SimCLR epoch 1/2" not in out
    rows = history(run_dir)
    assert len(rows) == 2 and rows[0] == first[0]


def test_changed_ssl_key_on_resume_is_refused_naming_it(tmp_path: Path) -> None:
    tiles = write_unlabelled_tiles(tmp_path / "tiles", n=16)
    train(ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=1"), progress=False)
    with pytest.raises(ConfigError, match=r"ssl\.temperature: 0\.5 then, 0\.2 now") as info:
        train(ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=1", "ssl.temperature=0.2"), progress=False)
    assert "\n" not in str(info.value) and "train.resume=false" in str(info.value)
    # other tiles: refused too; train.resume=false starts afresh
    (tmp_path / "tiles" / "scan_1" / "tile_001.png").unlink()
    with pytest.raises(ConfigError, match="other tiles"):
        train(ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=1"), progress=False)
    train(ssl_recipe(tmp_path / "runs", tiles, "ssl.epochs=1", "train.resume=false"), progress=False)


def test_ssl_before_fine_tuning_resumes_without_rerunning_ssl(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiles = write_unlabelled_tiles(tmp_path / "tiles", n=16)
    overrides = ("ssl.enabled=true", "ssl.epochs=1", "ssl.batch_size=8", f"ssl.data=[{tiles}]")
    run_dir = train(tiny_recipe(tmp_path / "runs", *overrides)).run_dir
    out = capsys.readouterr().out
    assert "SimCLR epoch 1/1" in out and len(history(run_dir)) == 1
    stamp = (run_dir / SSL_LAST).stat().st_mtime_ns
    train(tiny_recipe(tmp_path / "runs", *overrides))
    out = capsys.readouterr().out
    assert "SimCLR skipped" in out and "SimCLR epoch" not in out
    assert (run_dir / SSL_LAST).stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"ssl\.lr: 0\.001 then, 0\.01 now"):  # last.pt covers ssl keys
        train(tiny_recipe(tmp_path / "runs", *overrides, "ssl.lr=0.01"), progress=False)


def test_bad_ssl_data_is_one_line_naming_the_value_and_the_fix(tmp_path: Path) -> None:
    recipe = tmp_path / "recipes" / "ssl.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        f"name: ssl\noutput_dir: {tmp_path / 'runs'}\nmodel: {{architecture: {TINY_ARCH}}}\n"
        "ssl: {only: true, data: no_such_tiles, epochs: 1}\ntrain: {device: cpu}\n"
    )
    with pytest.raises(ConfigError) as info:
        train(load_config(recipe), progress=False)
    text = str(info.value)
    assert "\n" not in text
    assert "ssl.data = 'no_such_tiles': not found" in text
    assert str(recipe.parent / "no_such_tiles") in text
    assert "relative paths start at the recipe's folder" in text
    assert "Give a folder of image tiles" in text
    assert not (tmp_path / "runs" / "ssl").exists()  # refused before the run folder is made
    (recipe.parent / "no_such_tiles").mkdir()  # a folder without images
    (recipe.parent / "no_such_tiles" / "notes.txt").write_text("no tiles here")
    with pytest.raises(ConfigError, match=r"ssl\.data = 'no_such_tiles': no image tiles \(.png"):
        train(load_config(recipe), progress=False)
    # no labelled data is allowed only for SSL only on ssl.data
    with pytest.raises(ConfigError, match=r"required key.* data missing"):
        load_config(recipe, ["ssl.only=false"])
    with pytest.raises(ConfigError, match=r"data\.source = 'none' \(no labelled data\) works only with ssl"):
        load_config(recipe, ["ssl.only=false", "data.source=none"])
    only_cache = load_config(recipe, ["data.cache=false"]).data  # a data section without a source
    assert only_cache.source == "none" and only_cache.cache is False
    with pytest.raises(ConfigError, match=r"ssl\.max_tiles = 1"):
        load_config(recipe, ["ssl.max_tiles=1"])


def test_ssl_only_on_a_real_slide_tiles_its_tissue(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    config = ssl_recipe(tmp_path / "runs", slide, "ssl.epochs=1", "ssl.tile_px=32", "ssl.max_tiles=24",
                        "model.spacing_um_px=2")  # fmt: skip
    result = train(config)
    assert "SimCLR only: 24 tiles" in capsys.readouterr().out
    listed = (result.run_dir / "ssl_tiles" / "tiles.csv").read_text().splitlines()
    assert len(listed) - 1 > 24  # the slide's tissue tiles, of which 24 were drawn
    spec = load_spec(result.model_dir)
    assert spec.patch_size_pixels == 32 and spec.spacing_um_px == 2
    assert np.isfinite(result.metrics["ssl"]["nt_xent"])
