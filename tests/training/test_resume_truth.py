"""Issue 18 item 1: switching SimCLR off in recipe A (as its header suggests) never reloads the SSL run.

Before, ``--set ssl.enabled=false`` with the same run name reloaded the finished SSL run's
``last.pt``, printed its result and wrote ``ssl.enabled: false`` into ``model.json`` for
SSL-pretrained weights.  Now the resumed run must match the saved settings or be refused, and a
run under another name is a real run without SSL whose provenance says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import ConfigError, load_config
from training.run import train

RECIPES = Path(__file__).resolve().parents[2] / "training" / "recipes"
RECIPE = RECIPES / "a_efficientnet_simclr_insitu_invasive.yaml"
SHRINK = [
    "train.device=cpu",
    "data.synthetic_per_class=10",
    "data.synthetic_px=64",
    "ssl.epochs=1",
    "ssl.batch_size=16",
    "train.phases=[{epochs: 1, lr: 1e-3}]",
]


def _config(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    config = load_config(RECIPE, [f"output_dir={tmp_path}", *SHRINK, *extra])
    if not (RECIPE.parent / config.model.weights).exists():
        pytest.skip("real ImageNet EfficientNet-Lite0 weights not available")
    return config


@pytest.mark.slow
def test_ssl_off_is_refused_for_the_ssl_run_and_runs_afresh_under_another_name(tmp_path: Path) -> None:
    first = train(_config(tmp_path), progress=False)
    model_json = first.model_dir / "model.json"
    saved = model_json.read_bytes()
    assert json.loads(saved)["provenance"]["config"]["ssl"]["enabled"] is True
    assert (first.run_dir / "ssl_history.csv").exists()

    with pytest.raises(ConfigError, match=r"other settings \(ssl\.enabled: true then, false now\).*name="):
        train(_config(tmp_path, "ssl.enabled=false"), progress=False)
    assert model_json.read_bytes() == saved  # the SSL run's model and provenance are untouched

    second = train(_config(tmp_path, "ssl.enabled=false", "name=a-without-ssl"), progress=False)
    assert second.run_dir != first.run_dir
    provenance = json.loads((second.model_dir / "model.json").read_text())["provenance"]
    assert provenance["config"]["ssl"]["enabled"] is False
    assert not (second.run_dir / "ssl_history.csv").exists()
    # the same settings again resume the finished run instead of training it anew
    again = train(_config(tmp_path, "ssl.enabled=false", "name=a-without-ssl"), progress=False)
    assert again.history == second.history
