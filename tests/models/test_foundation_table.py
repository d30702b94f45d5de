"""The foundation-model table: each named model's architecture builds (randomly initialised, offline) and
gives its documented embedding width; hub loading fails at once, in one line, when the hub cannot be reached.

These are shape tests of randomly initialised networks (one transformer block: the width is the full
model's): they test the code paths of each entry, never what the model is worth.
"""

from __future__ import annotations

import sys
import time

import pytest

from napari_histo.errors import DownloadError
from napari_histo.models.foundation import FOUNDATION_MODELS, foundation_model

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("key", sorted(FOUNDATION_MODELS))
def test_each_entry_builds_with_its_documented_width(key):
    from napari_histo.models.encoders import random_foundation_encoder

    entry = FOUNDATION_MODELS[key]
    encoder = random_foundation_encoder(key, depth=1)  # shape test: 1 block
    with torch.inference_mode():
        out = encoder.network(torch.rand(2, 3, entry.input_size, entry.input_size))
    assert tuple(out.shape) == (2, entry.feature_dim)
    assert encoder.hash == "random-init" and encoder.mpp == entry.mpp == 0.5
    assert entry.hub_id.count("/") == 1 and entry.licence and entry.url.startswith("https://huggingface.co/")


def test_documented_widths():
    widths = {k: m.feature_dim for k, m in FOUNDATION_MODELS.items()}
    assert widths == {"uni": 1024, "uni2-h": 1536, "virchow2": 2560, "h-optimus-0": 1536,
                      "h-optimus-1": 1536, "phikon-v2": 1024, "prov-gigapath": 1536}  # fmt: skip
    assert foundation_model("UNI2-h") is FOUNDATION_MODELS["uni2-h"]
    assert foundation_model("bioptimus/H-optimus-0").mean == (0.707223, 0.578729, 0.703617)


def _block_the_hub(monkeypatch):
    import napari_histo.models.encoders as encoders

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("network is unreachable")

    def no_download(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("timm's download was called although offline")

    monkeypatch.setattr("socket.create_connection", refuse)
    monkeypatch.setattr(encoders, "_cached", lambda hub_id: False)
    monkeypatch.setattr("timm.create_model", no_download)


@pytest.mark.parametrize("name", ["uni", "virchow2", "h-optimus-0", "hf-hub:org/some-model", "timm:resnet18"])
def test_offline_hub_encoder_fails_at_once_in_one_line(monkeypatch, name):
    from napari_histo.models.encoders import load_encoder

    _block_the_hub(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        load_encoder(name, "cpu")
    assert time.perf_counter() - started < 5
    text = str(info.value)
    assert "\n" not in text and "pcam-mobilenetv2" in text and "--architecture" in text
    assert "timm:<name>" in text and "hf-hub:<org/name>" in text
    if name == "uni":
        assert "gated" in text and "HF_TOKEN" in text


def test_phikon_needs_transformers_said_in_one_line(monkeypatch):
    from napari_histo.errors import MissingDependencyError
    from napari_histo.models.encoders import load_encoder

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="pip install transformers"):
        load_encoder("phikon-v2", "cpu")
