"""Weights and their truths: a model directory's normalisation travels with its weights (item 7), and
``weights: timm`` offline fails at once naming every option (item 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from napari_histo.errors import DownloadError
from napari_histo.models import ModelSpec, create_network, save_model
from napari_histo.models import weights as weights_module
from training.network import imagenet_normalisation, source_model_dir, weights_path
from training.run import train

TINY_ARCH = "mobilenetv3_small_050"  # as tests/training/conftest.py

MEAN, STD = (0.6, 0.5, 0.4), (0.3, 0.2, 0.1)


def _source_model(folder: Path, input_size: int = 40) -> Path:
    spec = ModelSpec(
        architecture=TINY_ARCH, num_classes=2, class_names=("a", "b"), patch_size_pixels=32,
        spacing_um_px=0.5, input_size=input_size, mean=MEAN, std=STD,
    )  # fmt: skip
    return save_model(create_network(spec), spec, folder)


@pytest.mark.parametrize("point_at", ["folder", "file"])
def test_finetune_keeps_source_normalisation(tiny, tmp_path, capsys, point_at) -> None:  # type: ignore[no-untyped-def]
    source = _source_model(tmp_path / "source")
    target = source if point_at == "folder" else source / "weights.safetensors"
    config = tiny(f"model.weights={target}")
    assert source_model_dir(config) == source
    assert weights_path(config) == source / "weights.safetensors"
    result = train(config, progress=False)
    saved = json.loads((result.model_dir / "model.json").read_text())
    assert saved["mean"] == pytest.approx(MEAN) and saved["std"] == pytest.approx(STD)
    assert saved["input_size"] == 40
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "model directory" in line]
    assert len(lines) == 1 and "mean/std" in lines[0] and "input size" in lines[0]


def test_recipe_mean_std_win_over_source(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = _source_model(tmp_path / "source")
    config = tiny(f"model.weights={source}", "model.mean=[0.1,0.2,0.3]", "model.std=[0.4,0.5,0.6]")
    assert imagenet_normalisation(config) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


def test_plain_weight_file_is_no_model_directory(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = _source_model(tmp_path / "source")
    loose = tmp_path / "loose" / "weights.safetensors"
    loose.parent.mkdir()
    loose.write_bytes((source / "weights.safetensors").read_bytes())
    config = tiny(f"model.weights={loose}")
    assert source_model_dir(config) is None
    assert imagenet_normalisation(config) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _check_offline_error(exc: DownloadError) -> None:
    text = str(exc)
    assert "--set model.weights=none" in text
    assert "model.weights=/path/file.pth" in text
    for known in weights_module.LOCAL_IMAGENET_FILES.values():
        assert known["file"] in text
    assert "../shared/data/weights" in text


@pytest.mark.parametrize("how", ["env", "socket"])
def test_timm_offline_fails_at_once(tiny, monkeypatch, how) -> None:  # type: ignore[no-untyped-def]
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

        def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError("network is unreachable")

        monkeypatch.setattr("socket.create_connection", refuse)
    monkeypatch.setattr(weights_module, "_cached_hub_file", lambda architecture: None)

    def no_download(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("timm's download was called although offline")

    monkeypatch.setattr("timm.create_model", no_download)
    started = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        train(tiny("model.weights=timm"), progress=False)
    assert time.perf_counter() - started < 5
    _check_offline_error(info.value)


def test_hub_reachable_env_and_socket(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights_module.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    opened = []

    class Conn:
        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *a):  # type: ignore[no-untyped-def]
            return False

    def connect(address, timeout):  # type: ignore[no-untyped-def]
        opened.append((address, timeout))
        return Conn()

    monkeypatch.setattr("socket.create_connection", connect)
    assert weights_module.hub_reachable() is True
    assert opened == [(("huggingface.co", 443), 3.0)]


def test_offline_with_cached_weights_uses_cache(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(weights_module, "hub_reachable", lambda timeout=3.0: False)
    cached = str(tmp_path / "w.safetensors")
    monkeypatch.setattr(weights_module, "_cached_hub_file", lambda architecture: cached)
    seen = {}

    def create(name, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return "net"

    monkeypatch.setattr("timm.create_model", create)
    assert weights_module.timm_pretrained(TINY_ARCH, 2) == "net"
    assert seen["pretrained_cfg_overlay"] == {"file": cached}
