"""``histo embed``: help, a run with the shipped encoder, a local ImageNet weight file, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli
from napari_histo.pipeline.embed import read_embeddings

pytest.importorskip("torch")


def _histo(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from napari_histo.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_help_lists_encoders_and_examples():
    result = CliRunner().invoke(cli, ["embed", "--help"])
    assert result.exit_code == 0
    for text in ("--encoder", "pcam-mobilenetv2", "virchow2", "NAME.embeddings.zarr", "Examples:", "--shard"):
        assert text in result.output
    assert "embed" in CliRunner().invoke(cli, ["--help"]).output


def test_embed_a_slide_with_the_default_encoder_then_skip(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    args = ["embed", str(slide), "--out", str(tmp_path), "--device", "cpu", "--workers", "2", "--mpp", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "tiles embedded with pcam-mobilenetv2 (1280 features)" in result.output
    emb = read_embeddings(tmp_path / "CMU-1-Small-Region.embeddings.zarr")
    assert emb.features.shape[1] == 1280 and emb.attrs["mpp"] == 2.0
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "already embedded" in again.output


def test_embed_with_a_local_imagenet_weight_file(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    weights = shared_file("weights", "mobilenet_v2-b0353104.pth")
    result = CliRunner().invoke(cli, [
        "embed", str(slide), "--out", str(tmp_path), "--device", "cpu", "--encoder", str(weights),
        "--architecture", "mobilenetv2_100", "--mpp", "2", "--tile-px", "112", "--min-tissue", "0.8",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    emb = read_embeddings(tmp_path / "CMU-1-Small-Region.embeddings.zarr")
    assert emb.attrs["encoder"] == "mobilenetv2_100:mobilenet_v2-b0353104.pth" and emb.attrs["tile_px"] == 112
    assert len(emb.attrs["encoder_hash"]) == 64 and np.isfinite(emb.features).all()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--encoder", "no-such-encoder"], "not a model directory and not a built-in model name"),
        (["--encoder", "WEIGHTS"], "--architecture"),
        (["--mpp", "-1"], "--mpp"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, expected):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    args = [str(shared_file("weights", "mobilenet_v2-b0353104.pth")) if a == "WEIGHTS" else a for a in args]
    done = _histo("embed", str(slide), "--out", str(tmp_path), *args)
    assert done.returncode != 0
    assert expected in done.stderr
    if done.returncode != 2:  # not a click usage error: exactly one line
        assert done.stderr.strip().count("\n") == 0, done.stderr


def test_missing_slide_is_one_line(tmp_path):
    done = _histo("embed", str(tmp_path / "nope.svs"), "--out", str(tmp_path))
    assert done.returncode == 3 and "nope.svs" in done.stderr


def test_cohort_embed_serial(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    args = ["cohort", "embed", str(slide), "--out", str(tmp_path), "--serial", "--mpp", "2",
            "--device", "cpu", "--threads", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1 done" in result.output
    emb = read_embeddings(tmp_path / "CMU-1-Small-Region.embeddings.zarr")
    assert emb.attrs["tile_px"] == 96 and emb.attrs["mpp"] == 2.0  # the encoder's tile size, --mpp's µm/px
    assert "skipped" in CliRunner().invoke(cli, args).output
