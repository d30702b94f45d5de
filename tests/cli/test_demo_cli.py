"""`histo demo --headless`: the README's main job on the built-in sample, offline."""

from __future__ import annotations

import json

import imagecodecs
from click.testing import CliRunner

from napari_histo.cli.main import cli


def test_demo_headless_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--headless", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "slide-info.json").read_text())
    assert record["format"] == "ome-tiff"
    assert record["mpp"] == 0.5
    assert [level["downsample"] for level in record["levels"]] == [1.0, 4.0, 16.0]
    thumbnail = imagecodecs.imread(out / "thumbnail.png")
    assert max(thumbnail.shape[:2]) == 1024
    # the sample is H&E-like: some pixels are tissue (red well above green), most of the rest background
    pixels = thumbnail.reshape(-1, 3).astype(int)
    tissue = (pixels[:, 0] - pixels[:, 1]) > 40
    assert 0.1 < tissue.mean() < 0.9
    assert imagecodecs.imread(out / "region-level0.png").shape == (1024, 1024, 3)
    assert "0.5000 µm/px (OME PhysicalSizeX)" in result.output
