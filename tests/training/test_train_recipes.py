"""Every literature recipe runs end to end (shrunk: a few patches, one epoch per phase, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import load_config
from training.run import train

RECIPES = Path(__file__).resolve().parents[2] / "training" / "recipes"
SHRINK = {
    "a_efficientnet_simclr_insitu_invasive": [
        "data.synthetic_per_class=12",
        "data.synthetic_px=64",
        "ssl.epochs=1",
        "ssl.batch_size=16",
    ],
    "b_inception_resnet_v2_bach": [
        "data.synthetic_per_class=6",
        "data.synthetic_px=80",
        "model.input_size=80",
        "model.weights=none",
    ],
    "c_unet_fpn_tiger_segmentation": [
        "data.synthetic_per_class=5",
        "data.synthetic_px=64",
        "train.batch_size=4",
    ],
    "d_resnet18_pcam_clustering": [
        "data.max_per_class=24",
        "model.weights=none",
        "clustering.max_samples=40",
    ],
    "e_efficientnetv2s_idc": ["data.synthetic_per_class=16", "model.weights=none", "train.batch_size=8"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHRINK))
def test_recipe_runs_end_to_end(name: str, tmp_path: Path) -> None:
    recipe = RECIPES / f"{name}.yaml"
    config = load_config(recipe, [f"output_dir={tmp_path}", "train.device=cpu", *SHRINK[name]])
    if "pcam" in config.data.root and not (recipe.parent / config.data.root).is_dir():
        pytest.skip("real PCam data not available")
    if config.model.weights.endswith(".pth") and not (recipe.parent / config.model.weights).exists():
        pytest.skip("real ImageNet weights not available")
    phases = ", ".join(
        f"{{epochs: 1, trainable: {p.trainable!r}, lr: {p.lr:g}, optimizer: {p.optimizer}}}"
        for p in config.train.phases
    )
    config = load_config(
        recipe, [f"output_dir={tmp_path}", "train.device=cpu", *SHRINK[name], f"train.phases=[{phases}]"]
    )
    result = train(config, progress=False)
    valid = result.metrics["valid"]
    assert ("iou" in valid) if config.model.task == "segmentation" else ("roc_auc" in valid)
    assert (result.model_dir / "model.json").exists()
    if config.ssl.enabled:
        assert (result.run_dir / "ssl_history.csv").exists()
    if config.clustering.enabled:
        assert set(result.metrics["clustering"]) == {"pixels", "features"}
