"""`histo demo`: the journey, headless, writing every output and one PNG per step."""

from __future__ import annotations

import json
import shutil

import imagecodecs
import pytest
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli
from napari_histo.data.synthetic import write_synthetic_slide

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from napari_histo.models import ModelSpec, create_network, save_model

    spec = ModelSpec("resnet18", 2, ("normal", "tumour"), patch_size_pixels=64, spacing_um_px=2.0)
    torch.manual_seed(0)
    return save_model(create_network(spec), spec, tmp_path_factory.mktemp("m") / "tiny")


def test_demo_headless_runs_every_step(tmp_path, tiny_model):
    from qupath_bridge import read_class_list, read_geojson

    slide = write_synthetic_slide(
        tmp_path / "s.ome.tif", shape_rc=(2048, 3072), tile_px=512, downsamples=(4,)
    )
    out = tmp_path / "demo"
    args = ["demo", "--headless", "--out", str(out), "--model", str(tiny_model), "--slide", str(slide),
            "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    steps = json.loads((out / "journey.json").read_text())
    assert [s["name"].split(" (")[0] for s in steps] == [
        "open the slide", "detect tissue and tile", "normalise stain", "run the model", "export to QuPath",
    ]  # fmt: skip
    for step in steps:
        if step["image"]:
            image = imagecodecs.imread(out / step["image"])
            assert image.ndim == 3
            assert image.std() > 5  # a real picture, not a blank
    summary = json.loads((out / "predictions" / "s.summary.json").read_text())
    tiles = read_geojson(out / "predictions" / "s.geojson")
    assert len(tiles) == summary["n_tiles"] > 0
    assert "OK for QuPath" in steps[-1]["detail"]
    assert [c.name for c in read_class_list(out / "qupath-classes.json")] == ["normal", "tumour"]
    assert (out / "slide-info.json").exists()


@pytest.mark.slow
def test_readme_demo_with_the_shipped_model_on_real_tissue(tmp_path, monkeypatch):
    """`histo demo --headless`: what `bash scripts/demo` runs, with every default: CMU-1, the shipped model.

    The cache is seeded from ../shared (offline); fetching itself is tested in tests/io/test_samples.py.
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(shared_file("wsi", "CMU-1-Small-Region.svs"), cache / "CMU-1-Small-Region.svs")
    monkeypatch.setenv("HISTO_CACHE_DIR", str(cache))
    out = tmp_path / "histo-demo"
    result = CliRunner().invoke(cli, ["demo", "--headless", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "CMU-1-Small-Region" in result.output and "warning" not in result.output
    steps = json.loads((out / "journey.json").read_text())
    assert steps[0]["detail"].startswith("2,220 x 2,967 px")
    assert steps[3]["name"] == "run the model (pcam-mobilenetv2)"
    summary = json.loads((out / "predictions" / "CMU-1-Small-Region.summary.json").read_text())
    assert summary["n_tiles"] > 40
    assert summary["class_names"] == ["normal", "tumour"]
    assert abs(sum(c["fraction"] for c in summary["classes"].values()) - 1) < 1e-3
    for name in ("step1-slide.png", "step2-tissue-tiles.png", "step3-stain.png", "step4-predictions.png"):
        assert imagecodecs.imread(out / name).std() > 5


def test_demo_offline_without_cmu1_says_so_and_uses_the_synthetic_slide(tmp_path, monkeypatch, tiny_model):
    from napari_histo.data import samples
    from napari_histo.errors import DownloadError

    def offline(*args, **kwargs):
        raise DownloadError("could not download CMU-1 (are you offline?)")

    monkeypatch.setattr(samples, "cmu_small_region_path", offline)
    small = write_synthetic_slide(
        tmp_path / "small.ome.tif", shape_rc=(1024, 1024), tile_px=512, downsamples=(4,)
    )
    monkeypatch.setattr(samples, "synthetic_slide_path", lambda: small)
    args = ["demo", "--headless", "--out", str(tmp_path / "d"), "--model", str(tiny_model), "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "warning: CMU-1 could not be fetched; using the synthetic slide instead." in result.output
    assert (tmp_path / "d" / "predictions" / "small.summary.json").exists()
