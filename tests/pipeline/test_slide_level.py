"""Slide-level prediction: a MIL model on a slide's embeddings → call, probabilities, attention, QuPath tiles.

The MIL model here is randomly initialised (the code path, not a result).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.progress import run_to_end
from napari_histo.errors import InvalidParameterError
from napari_histo.pipeline.embed import EmbedSettings, embed_slide, read_embeddings
from napari_histo.pipeline.session import open_session

torch = pytest.importorskip("torch")
mil = pytest.importorskip("napari_histo.models.mil")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    with open_session(slide) as session:
        settings = EmbedSettings(mpp=2.0, device="cpu", batch_size=32, workers=2)
        return run_to_end(embed_slide(session, None, tmp_path_factory.mktemp("emb"), settings))


def make_mil_model(path, attrs, *, hash_=None):  # type: ignore[no-untyped-def]
    from napari_histo.models.spec import ModelSpec, Task

    torch.manual_seed(0)
    network = mil.build_mil_network("abmil", int(attrs["feature_dim"]), 2, hidden=32, dropout=0.0)
    spec = ModelSpec(
        "abmil", 2, ("benign", "tumour"), int(attrs["tile_px"]), float(attrs["mpp"]), task=Task.MIL,
        name="test-mil",
        provenance={"mil": {"in_features": int(attrs["feature_dim"]), "hidden": 32, "dropout": 0.0},
                    "encoder": {"name": attrs["encoder"], "hash": hash_ or attrs["encoder_hash"],
                                "mpp": attrs["mpp"], "tile_px": attrs["tile_px"]}},
    )  # fmt: skip
    return mil.save_mil_model(network, spec, path), network


def test_predict_slide_level_gives_call_and_attention(table, tmp_path):
    from napari_histo.pipeline.slide_level import predict_slide_level, write_slide_level_outputs

    emb = read_embeddings(table)
    model_dir, network = make_mil_model(tmp_path / "mil", emb.attrs)
    result = predict_slide_level(table, model_dir)
    assert result.probabilities.shape == (2,) and abs(result.probabilities.sum() - 1) < 1e-5
    assert result.attention.shape == (len(emb),) and abs(result.attention.sum() - 1) < 1e-4
    with torch.inference_mode():
        expected = network.eval()(torch.from_numpy(emb.features))
    np.testing.assert_allclose(result.attention, expected["attention"].numpy(), rtol=1e-5, atol=1e-7)
    assert result.call in ("benign", "tumour") and result.tile_scores is not None
    outputs = write_slide_level_outputs(result, tmp_path / "out", "CMU-1-Small-Region")
    summary = json.loads(outputs["json"].read_text())
    assert summary["call"] == result.call and set(summary["probabilities"]) == {"benign", "tumour"}
    features = json.loads(outputs["geojson"].read_text())["features"]
    assert len(features) == len(emb)
    measurements = features[0]["properties"]["measurements"]
    assert {"attention", "benign", "tumour"} <= set(measurements)
    best = int(np.argmax(result.attention))
    x0 = min(p[0] for p in features[best]["geometry"]["coordinates"][0])
    assert abs(x0 - emb.coords[best, 1]) <= 1  # QuPath x = column


def test_another_encoders_embeddings_are_refused(table, tmp_path):
    from napari_histo.pipeline.slide_level import predict_slide_level

    emb = read_embeddings(table)
    model_dir, _ = make_mil_model(tmp_path / "mil", emb.attrs, hash_="0" * 64)
    with pytest.raises(InvalidParameterError, match="histo embed --encoder pcam-mobilenetv2") as info:
        predict_slide_level(table, model_dir)
    assert "\n" not in str(info.value)


def test_histo_predict_with_a_mil_model_embeds_then_calls(table, tmp_path):
    from click.testing import CliRunner

    from napari_histo.cli.main import cli

    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    model_dir, _ = make_mil_model(tmp_path / "mil", read_embeddings(table).attrs)
    out = tmp_path / "out"
    args = [
        "predict",
        str(slide),
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--workers",
        "2",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "slide call" in result.output
    summary = json.loads((out / "CMU-1-Small-Region.slide.json").read_text())
    assert summary["model"] == "test-mil" and summary["n_tiles"] == len(read_embeddings(table))
    assert (out / "CMU-1-Small-Region.attention.geojson").is_file()
    assert (out / "CMU-1-Small-Region.embeddings.zarr").is_dir()
    again = CliRunner().invoke(cli, args)  # the finished table is reused
    assert again.exit_code == 0 and json.loads((out / "CMU-1-Small-Region.slide.json").read_text()) == summary


def test_the_recorded_encoder_is_found_by_source_or_name():
    from napari_histo.io.files import file_digest
    from napari_histo.models.encoders import load_recorded_encoder

    weights = shared_file("weights", "mobilenet_v2-b0353104.pth")
    record = {"name": "mobilenetv2_100:mobilenet_v2-b0353104.pth", "source": str(weights)}
    assert load_recorded_encoder(record).hash == file_digest(weights)
    moved = {
        "name": "pcam-mobilenetv2",
        "source": "/elsewhere/models/pcam-mobilenetv2",
    }  # another machine's path
    assert load_recorded_encoder(moved).name == "pcam-mobilenetv2"
