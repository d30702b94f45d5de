"""The example sheets a run writes: Grad-CAM of correct and wrong patches, masks of a segmentation run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from napari_histo.models import ModelSpec, create_network
from tests.training.conftest import TINY_ARCH
from training import sheets
from training.run import prepare_data, train
from training.samples import Samples

GREEN, RED = (0, 158, 115), (213, 50, 0)


def _png(path: Path) -> np.ndarray:
    return np.asarray(imagecodecs.imread(str(path)))[..., :3]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_pick_examples_takes_the_most_confident_correct_and_wrong_per_class() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.3, 0.7], [0.95, 0.05], [0.1, 0.9]])
    rows = sheets.pick_examples(labels, probs, per_class=1)
    assert [(r["kind"], r["true"]) for r in rows] == [
        ("correct", 0),
        ("wrong", 0),
        ("correct", 1),
        ("wrong", 1),
    ]
    assert rows[0] == {"kind": "correct", "true": 0, "indices": [0], "of": 2}
    assert rows[1] == {"kind": "wrong", "true": 0, "indices": [2], "of": 2}  # 0.8 beats 0.55
    assert rows[2] == {"kind": "correct", "true": 1, "indices": [6], "of": 2}
    assert rows[3] == {"kind": "wrong", "true": 1, "indices": [5], "of": 1}
    assert sheets.pick_examples(labels, probs, per_class=5)[1]["indices"] == [2, 3]


def test_gradcam_sheet_grid_frames_and_overlays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, px = 10, 40
    images = rng.integers(0, 255, (n, px, px, 3), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    samples = Samples(labels=labels, class_names=("a", "b", "c"), images=images)
    # saved predictions: patch 1 and 8 wrong, class b all correct, class c has one wrong (8 → a)
    pred = np.array([0, 2, 0, 1, 1, 1, 2, 2, 0, 2])
    probs = np.full((n, 3), 0.1)
    probs[np.arange(n), pred] = 0.8
    probs[0, :] = [0.7, 0.2, 0.1]
    spec = ModelSpec(architecture=TINY_ARCH, num_classes=3, class_names=("a", "b", "c"), patch_size_pixels=px,
                     spacing_um_px=0.5)  # fmt: skip
    network = create_network(spec)
    for p in network.parameters():  # as after a head-only phase: Grad-CAM must still work
        p.requires_grad_(False)
    path = sheets.write_gradcam_sheet(
        network, spec, samples, probs, tmp_path / "g.png", split="test", per_class=3
    )
    info = json.loads(path.with_suffix(".json").read_text())
    image = _png(path)
    size = info["cell_px"]
    assert size == 96  # 40 px patches are shown at least 96 px
    cell_w, cell_h = 2 * size + 2 + 2 * 3, 28 + size + 2 * 3
    assert image.shape == (18 + 6 * (18 + cell_h + 6), 6 + 3 * (cell_w + 6), 3)
    assert [(r["kind"], r["true"]) for r in info["rows"]] == [
        ("correct", "a"), ("wrong", "a"), ("correct", "b"), ("wrong", "b"), ("correct", "c"), ("wrong", "c")
    ]  # fmt: skip
    shown = {r["kind"]: [] for r in info["rows"]}
    for row in info["rows"]:
        shown[row["kind"]] += [e["index"] for e in row["examples"]]
        for example in row["examples"]:
            i = example["index"]
            assert example["true"] == "abc"[labels[i]] == row["true"]
            assert example["predicted"] == "abc"[pred[i]]
            assert example["probability"] == pytest.approx(probs[i].max())
            r0, c0, r1, c1 = example["box"]
            assert tuple(image[r0, c0]) == (GREEN if row["kind"] == "correct" else RED)
            inner = image[r0 + 3 : r1 - 3, c0 + 3 : c1 - 3]
            patch, overlay = inner[:, :size], inner[:, size + 2 :]
            assert overlay.shape == patch.shape == (size, size, 3)
            assert np.abs(overlay.astype(int) - patch.astype(int)).mean() > 5  # the Grad-CAM colours are on
    assert sorted(shown["wrong"]) == [1, 8]  # exactly the misclassified patches
    assert sorted(shown["correct"]) == [0, 2, 3, 4, 5, 6, 7, 9]
    assert info["rows"][3]["examples"] == [] and info["rows"][3]["of"] == 0  # b: no wrong prediction
    assert all(p.requires_grad is False for p in network.parameters())  # frozen again afterwards


def test_classification_run_writes_predictions_sheet_and_readme(tiny) -> None:  # type: ignore[no-untyped-def]
    config = tiny("data.class_names=[a, b, c]", "data.synthetic_per_class=16", "data.test_fraction=0.4")
    result = train(config, progress=False)
    run = result.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    rows = _csv(run / "predictions_test.csv")
    assert len(rows) == metrics["test"]["n"]
    cm = np.zeros((3, 3), int)
    for row in rows:
        cm["abc".index(row["true"]), "abc".index(row["predicted"])] += 1
    assert cm.tolist() == metrics["test"]["confusion_matrix"]  # the saved predictions are the evaluated ones
    info = json.loads((run / "gradcam_sheet.json").read_text())
    assert info["split"] == "test" and len(info["rows"]) == 6
    for sheet_row in info["rows"]:
        for example in sheet_row["examples"]:
            saved = rows[example["index"]]
            assert (example["true"], example["predicted"]) == (saved["true"], saved["predicted"])
            assert (saved["true"] != saved["predicted"]) == (sheet_row["kind"] == "wrong")
        probs = [e["probability"] for e in sheet_row["examples"]]
        assert probs == sorted(probs, reverse=True)
    wrong = sum(r["true"] != r["predicted"] for r in rows)
    assert sum(r["of"] for r in info["rows"] if r["kind"] == "wrong") == wrong
    image = _png(run / "gradcam_sheet.png")
    assert image.shape[0] == 18 + 6 * (18 + 28 + info["cell_px"] + 6 + 6)
    readme = (run / "README.md").read_text()
    assert "Synthetic stand-in data" in readme and "gradcam_sheet.png" in readme
    assert not (run / "mask_examples.png").exists()


def test_report_switch_turns_the_sheet_off(tiny) -> None:  # type: ignore[no-untyped-def]
    result = train(tiny("report.gradcam_sheet=false", "data.synthetic_per_class=8"), progress=False)
    assert not (result.run_dir / "gradcam_sheet.png").exists()
    assert (result.run_dir / "predictions_valid.csv").exists()


def test_segmentation_run_writes_image_truth_prediction_rows(tmp_path: Path) -> None:
    from napari_histo.models import load_model, load_spec
    from training.config import load_config

    recipe = (
        Path(__file__).resolve().parents[2] / "training" / "recipes" / "c_unet_fpn_tiger_segmentation.yaml"
    )
    overrides = [
        f"output_dir={tmp_path}",
        "train.device=cpu",
        "data.synthetic_per_class=4",
        "data.synthetic_px=64",
        "train.batch_size=4",
        "train.phases=[{epochs: 1, lr: 1.0e-3}]",
        "report.examples_per_class=3",
    ]
    config = load_config(recipe, overrides)
    result = train(config, progress=False)
    run = result.run_dir
    assert not (run / "gradcam_sheet.png").exists() and not list(run.glob("predictions_*.csv"))
    info = json.loads((run / "mask_examples.json").read_text())
    image = _png(run / "mask_examples.png")
    spec = load_spec(result.model_dir)
    colors = np.array(spec.class_colors, np.uint8)
    assert info["class_colors"] == colors.tolist() == [[0, 0, 0], [230, 159, 0]]
    test = prepare_data(config, tmp_path / "again")["test"].samples
    assert info["split"] == "test" and 1 <= len(info["rows"]) <= 3
    network = load_model(result.model_dir, device="cpu")
    size = info["panel_px"]
    rows = (np.arange(size) * 64 / size).astype(int)
    for row in info["rows"]:
        i = row["index"]
        truth = test.masks[i][rows[:, None], rows[None, :]]
        r0, c0, r1, c1 = row["truth_box"]
        assert np.array_equal(image[r0:r1, c0:c1], colors[truth])  # the truth column is the mask, in colour
        predicted = sheets.predict_masks(network, test.images[i : i + 1], spec)[0]
        r0, c0, r1, c1 = row["prediction_box"]
        assert np.array_equal(image[r0:r1, c0:c1], colors[predicted[rows[:, None], rows[None, :]]])
        assert row["pixel_accuracy"] == pytest.approx((predicted == test.masks[i]).mean(), abs=1e-6)
        r0, c0, r1, c1 = row["image_box"]
        assert image[r0:r1, c0:c1].std() > 10  # the tissue, not a flat colour
    last = max(r["image_box"][2] for r in info["rows"])
    legend = image[last + 6 :]
    assert legend.shape[0] >= 2 * 12  # the legend strip: one line per class
    for color in colors:
        assert (legend == color).all(axis=2).sum() >= 50  # each class colour's square
