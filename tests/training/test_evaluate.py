"""``histo evaluate``: touched splits refused, bootstrap intervals, ECE, temperature, relative provenance."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from training.evaluate import (
    REPORTED_METRICS,
    TouchedSplitError,
    check_untouched,
    evaluate_model,
    fit_temperature,
    probabilities,
)
from training.metrics import bootstrap_intervals, expected_calibration_error, reliability_bins

PCAM = SHARED_DATA / "pcam"
needs_pcam = pytest.mark.skipif(not (PCAM / "labels.csv").is_file(), reason="shared PCam patches absent")
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- metrics
def _ece_by_loop(y, p, n_bins):  # type: ignore[no-untyped-def]
    conf, pred = p.max(1), p.argmax(1)
    edges = np.linspace(1 / p.shape[1], 1, n_bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi) if lo > edges[0] else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.sum() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total / len(y)


def test_ece_by_hand_and_against_a_loop():
    y = np.array([1, 1, 0, 0])
    p1 = np.array([0.95, 0.65, 0.25, 0.85])
    probs = np.stack([1 - p1, p1], 1)  # top-class confidences .95 .65 .75 .85; the last one wrong
    assert expected_calibration_error(y, probs, n_bins=5) == pytest.approx((0.05 + 0.35 + 0.25 + 0.85) / 4)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 500)
    y = rng.integers(0, 3, 500)
    assert expected_calibration_error(y, probs, 10) == pytest.approx(_ece_by_loop(y, probs, 10))
    bins = reliability_bins(y, probs, 10)
    assert bins["count"].sum() == 500 and len(bins["edges"]) == 11


def test_bootstrap_intervals_are_seeded_and_sensible():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 200)
    score = np.clip(y * 0.3 + rng.normal(0.35, 0.2, 400), 0, 1)
    probs = np.stack([1 - score, score], 1)
    a = bootstrap_intervals(y, probs, ("n", "t"), n_boot=300, seed=3)
    b = bootstrap_intervals(y, probs, ("n", "t"), n_boot=300, seed=3)
    assert a == b
    assert set(REPORTED_METRICS) <= set(a)
    for m in a.values():
        assert m["low"] <= m["value"] <= m["high"]
    acc = a["accuracy"]["value"]
    normal = 1.96 * np.sqrt(acc * (1 - acc) / 400)  # the textbook interval, for scale
    assert 0.6 * normal < (a["accuracy"]["high"] - a["accuracy"]["low"]) / 2 < 1.4 * normal
    wide = bootstrap_intervals(y[::4], probs[::4], ("n", "t"), n_boot=300, seed=3)
    assert wide["roc_auc"]["high"] - wide["roc_auc"]["low"] > a["roc_auc"]["high"] - a["roc_auc"]["low"]
    none = bootstrap_intervals(y, probs, ("n", "t"), n_boot=0)
    assert np.isnan(none["accuracy"]["low"])


# ---------------------------------------------------------------- temperature
def _synthetic_logits(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary logits whose calibrated version is ``logits / scale`` (labels drawn from it)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return np.stack([np.zeros(n), z * scale], 1), y


def test_temperature_scaling_finds_overconfidence_and_lowers_the_ece():
    logits, y = _synthetic_logits(6000, 3.0)  # three times too confident
    t = fit_temperature(logits, y)
    assert 2.6 < t < 3.4
    before = expected_calibration_error(y, probabilities(logits[None], 1.0))
    after = expected_calibration_error(y, probabilities(logits[None], t))
    assert before > 0.1 and after < before / 3
    under, y2 = _synthetic_logits(6000, 0.5, seed=1)  # underconfident: T < 1
    assert fit_temperature(under, y2) < 0.65
    views = np.stack([logits, logits])  # (views, n, C) as with test-time augmentation
    assert fit_temperature(views, y) == pytest.approx(t, rel=1e-3)


# ---------------------------------------------------------------- the protocol, end to end on real patches
def _pcam_rows(per_split_class: int) -> list[dict[str, str]]:
    with open(PCAM / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["n_exact_copies_in_subset"] == "1"]
    out = []
    for split, source in (("train", "train"), ("valid", "valid"), ("test", "valid")):
        for label in ("0", "1"):
            pool = [r for r in rows if r["split"] == source and r["label"] == label]
            offset = per_split_class if split == "test" else 0  # test: other valid patches
            out += [dict(r, split=split) for r in pool[offset : offset + per_split_class]]
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A labels.csv data root of real PCam patches (train/valid/test), and a tiny model 'trained' on it."""
    pytest.importorskip("torch")
    if not (PCAM / "labels.csv").is_file():
        pytest.skip("shared PCam patches absent")
    import torch

    from napari_histo.models import ModelSpec, create_network, save_model

    base = tmp_path_factory.mktemp("eval")
    data = base / "data"
    data.mkdir()
    rows = _pcam_rows(12)
    rows.append(dict(rows[0], split="test"))  # a byte-identical copy of a training patch in test
    with open(data / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["path", "split", "label", "md5"], extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(dict(r, path=str(PCAM / r["path"])))
    spec = ModelSpec(
        architecture="mobilenetv3_small_050", num_classes=2, class_names=("normal", "tumour"),
        patch_size_pixels=96, spacing_um_px=1.0, name="tiny",
        provenance={"recipe": str(base / "recipes" / "r.yaml"),  # absolute, as older model.json have it
                    "config": {"data": {"source": "labels_csv", "root": "../data"}},
                    "counts": {"train": {"normal": 12, "tumour": 12}, "valid": {"normal": 12, "tumour": 12}}},
    )  # fmt: skip
    torch.manual_seed(0)
    model = save_model(create_network(spec), spec, base / "model")
    return data, model


def test_a_split_that_selected_the_model_is_refused_in_one_line(lab, tmp_path, capsys):
    from napari_histo.cli.main import main

    data, model = lab
    with pytest.raises(TouchedSplitError, match="refusing to report on 'valid'"):
        evaluate_model(model, data, "valid", bootstrap=0, near_duplicates=False)
    with pytest.raises(SystemExit) as ended:
        main(["evaluate", str(model), "--data", str(data), "--split", "train", "--out", str(tmp_path / "x"),
              "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert ended.value.code != 0
    assert len(err) == 1 and err[0].startswith("error: refusing to report on 'train'"), err
    assert not (tmp_path / "x" / "metrics.json").exists()
    with pytest.raises(TouchedSplitError, match="another split than the one reported"):
        evaluate_model(model, data, "test", fit_split="test", bootstrap=0, near_duplicates=False)


def test_evaluate_an_untouched_split_writes_metrics_with_intervals(lab, tmp_path):
    from click.testing import CliRunner

    from napari_histo.cli.main import cli

    data, model = lab
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", str(model), "--data", str(data), "--split", "test",
                                      "--bootstrap", "50", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.output and "accuracy" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["status"] == "untouched" and metrics["touched"] is False
    assert metrics["n"] == 24  # the copy of a training patch was de-duplicated away
    assert metrics["tta"] == "none" and metrics["temperature"] == 1.0
    for name in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "f1", "ece"):
        m = metrics["metrics"][name]
        assert m["low"] <= m["value"] <= m["high"], name
    assert np.array(metrics["confusion_matrix"]).sum() == 24
    assert [d["between"] for d in metrics["near_duplicates"]] == [["test", "train"], ["test", "valid"]]
    assert all(d["pairs"] == 0 for d in metrics["near_duplicates"])
    for name in ("reliability.png", "confusion.png", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    assert len((out / "predictions.csv").read_text().splitlines()) == 25


def test_touched_when_allowed_tta_and_a_temperature_fitted_elsewhere(lab):
    data, model = lab
    messages: list[str] = []
    touched = evaluate_model(model, data, "valid", allow_touched=True, bootstrap=0, near_duplicates=False,
                             device="cpu", echo=messages.append)  # fmt: skip
    assert touched.metrics["touched"] is True and "TOUCHED" in messages[0]
    tta = evaluate_model(model, data, "test", tta=True, fit_split="valid", bootstrap=0, near_duplicates=False,
                         device="cpu")  # fmt: skip
    assert tta.metrics["tta"] == "dihedral8"
    calibration = tta.metrics["calibration"]
    assert calibration["fitted_on"] == "valid" and tta.metrics["temperature"] != 1.0
    assert calibration["ece_at_temperature_1"] >= 0


def test_protocol_reads_new_provenance_relative_to_the_repository(tmp_path):
    """A model trained with the repository's PCam recipe: its valid split is touched, test data is not."""
    from napari_histo.models import ModelSpec
    from training.config import load_config
    from training.provenance import portable_config

    config = load_config(REPO / "training" / "recipes" / "pcam_mobilenetv2.yaml",
                         [f"output_dir={tmp_path / 'runs'}", f"data.root={PCAM}"])  # fmt: skip
    recipe, portable = portable_config(config)
    assert recipe == "training/recipes/pcam_mobilenetv2.yaml"
    assert portable["data"]["root"] == "../../../shared/data/pcam"  # the absolute root made relative
    assert portable["output_dir"] == "runs" and portable["recipe_path"] == recipe
    text = json.dumps(portable)
    assert str(REPO) not in text and str(tmp_path) not in text
    spec = ModelSpec(architecture="resnet18", num_classes=2, class_names=("normal", "tumour"),
                     patch_size_pixels=96, spacing_um_px=1.0,
                     provenance={"recipe": recipe, "config": portable,
                                 "touched_splits": ["train"]})  # fmt: skip
    if PCAM.is_dir():
        assert check_untouched(spec, PCAM, "train")[0] == "touched"
        assert check_untouched(spec, PCAM, "valid")[0] == "untouched"  # selection carved from train
    assert check_untouched(spec, tmp_path, "valid")[0] == "untouched"  # other data
    counts = {"train": {}, "valid": {}}
    old = spec.with_updates(provenance={"recipe": recipe, "config": portable, "counts": counts})
    if PCAM.is_dir():
        assert check_untouched(old, PCAM, "valid")[0] == "touched"


def test_a_trained_run_records_no_absolute_paths(tiny, tmp_path):
    pytest.importorskip("torch")
    from training.run import train

    config = dataclasses.replace(tiny(), recipe_path=str(tmp_path / "recipes" / "tiny.yaml"))
    result = train(config, progress=False)
    provenance = json.loads((result.model_dir / "model.json").read_text())["provenance"]
    assert provenance["recipe"] == "tiny.yaml"  # outside the repository: its name only
    assert "paths_relative_to" in provenance
    recorded = json.dumps({"recipe": provenance["recipe"], "config": provenance["config"],
                           "argv": provenance["environment"]["argv"][:1]})  # fmt: skip
    for machine_path in ("/work/", "/tmp/", str(tmp_path)):
        assert machine_path not in recorded, machine_path
