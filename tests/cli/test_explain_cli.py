"""``histo explain``: Grad-CAM of a slide's tissue tiles or of a folder of patches."""

from __future__ import annotations

import json

import imagecodecs
import numpy as np
import pytest
from conftest import shared_file

from napari_histo.cli.main import main

pytest.importorskip("torch")

MODEL = "pcam-mobilenetv2"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code: object = 0
    try:
        main(list(args))
    except SystemExit as ended:
        code = 0 if ended.code is None else ended.code
    captured = capsys.readouterr()
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_explain_a_slide_writes_overlay_maps_and_qupath_tiles(tmp_path, capsys):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    out = tmp_path / "why"
    code, stdout, err = run(capsys, "explain", str(slide), "--model", MODEL, "--out", str(out),
                            "--max-tiles", "8", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "8 tiles" in stdout
    overlay = imagecodecs.imread(str(out / "CMU-1-Small-Region.gradcam.png"))
    assert overlay.ndim == 3 and overlay.shape[2] == 3
    assert overlay.std() > 10  # not blank
    maps = np.load(out / "CMU-1-Small-Region.gradcam.npy")
    assert maps.shape[0] == 8 and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() <= 1 + 1e-6
    geojson = json.loads((out / "CMU-1-Small-Region.gradcam.geojson").read_text())
    tiles = [f for f in geojson["features"] if f["properties"]["objectType"] == "tile"]
    assert len(tiles) == 8
    means = [f["properties"]["measurements"]["Grad-CAM mean"] for f in tiles]
    assert all(0.0 <= m <= 1.0 for m in means)
    np.testing.assert_allclose(sorted(means), sorted(maps.mean(axis=(1, 2))), rtol=1e-5)


def test_explain_a_patch_folder_writes_one_heatmap_per_patch(tmp_path, capsys):
    patches = tmp_path / "patches"
    patches.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        imagecodecs.imwrite(str(patches / f"p{i}.png"), rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    out = tmp_path / "why"
    code, _, err = run(capsys, "explain", str(patches), "--model", MODEL, "--out", str(out),
                       "--device", "cpu", "--class", "tumour")  # fmt: skip
    assert code == 0, err
    written = sorted(out.glob("*.gradcam.png"))
    assert [p.name for p in written] == ["p0.gradcam.png", "p1.gradcam.png", "p2.gradcam.png"]
    sheet = imagecodecs.imread(str(written[0]))
    assert sheet.shape == (96, 192, 3)  # patch | overlay
    np.testing.assert_array_equal(sheet[:, :96], imagecodecs.imread(str(patches / "p0.png")))


def test_a_bad_model_is_one_line_and_fails(tmp_path, capsys):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    code, _, err = run(capsys, "explain", str(slide), "--model", str(tmp_path / "no-such-model"),
                       "--out", str(tmp_path / "why"))  # fmt: skip
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err


def test_an_unknown_class_names_the_classes(tmp_path, capsys):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    code, _, err = run(capsys, "explain", str(slide), "--model", MODEL, "--out", str(tmp_path / "why"),
                       "--class", "banana")  # fmt: skip
    assert code != 0
    assert "banana" in err and "tumour" in err
    assert len(err.strip().splitlines()) == 1


def test_help_has_examples(capsys):
    code, stdout, _ = run(capsys, "explain", "--help")
    assert code == 0
    assert "histo explain slide.svs" in stdout and "Grad-CAM mean" in stdout
