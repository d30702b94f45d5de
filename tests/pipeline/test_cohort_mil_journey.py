"""Issue 15's journey on the real slides from the CLI: cohort embed → MIL training → predict → QuPath.

The cohort is the real slides in ``../shared/data`` (two copies each, so that every class has a
slide in training and in validation); the slide labels are the slides' sources. It checks the code
path end to end with a trained model; the figures of such a run mean nothing and none is asserted.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import shared_file

pytest.importorskip("torch")

from napari_histo.cli.main import cli

RECIPE = """\
name: cohort-abmil
output_dir: {runs}
about:
  paper: Ilse et al. 2018 (ABMIL), a code-path check
  paper_data: whole-slide images with slide labels
  data: the real slides in ../shared/data, copied; labels are the slides' sources, not diagnoses
  differs_from_paper: four slides; meaningless labels; a test of the journey, not a result
data:
  source: embeddings
  root: {tables}
  labels_csv: {labels}
model:
  architecture: abmil
  task: mil
mil:
  hidden: 32
  dropout: 0.0
train:
  device: cpu
  monitor: loss
  phases:
    - {{epochs: 3, optimizer: adam, lr: 1.0e-3}}
"""


@pytest.mark.slow
def test_cohort_embed_train_mil_predict_and_qupath(tmp_path: Path) -> None:
    import qupath_bridge as qb

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    rows = []
    for source, mpp, label in (("CMU-1-Small-Region.svs", "", "aperio-skin"),
                               ("tcga-cr-7395-01a-01-ts1.svs", "0.25", "tcga-frozen")):  # fmt: skip
        for copy in ("a", "b"):
            name = f"{label}-{copy}.svs"
            shutil.copy(shared_file("wsi", source), cohort / name)
            rows.append(
                {"slide": str(cohort / name), "mpp": mpp, "label": label, "patient": f"{label}-{copy}"}
            )
    manifest = tmp_path / "cohort.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["slide", "mpp", "label", "patient"])
        writer.writeheader()
        writer.writerows(rows)

    tables = tmp_path / "embeddings"
    embedded = CliRunner().invoke(cli, ["cohort", "embed", str(manifest), "--out", str(tables), "--serial",
                                        "--device", "cpu"])  # fmt: skip
    assert embedded.exit_code == 0, embedded.output
    assert "4 slides: 4 done" in embedded.output
    assert len(list(tables.glob("*.embeddings.zarr"))) == 4

    labels = tmp_path / "slides.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["slide", "label", "patient", "split"])
        writer.writeheader()
        for row in rows:
            split = "train" if row["slide"].endswith("-a.svs") else "valid"
            stem = Path(row["slide"]).stem
            writer.writerow({"slide": stem, "label": row["label"], "patient": row["patient"], "split": split})
    recipe = tmp_path / "mil.yaml"
    recipe.write_text(RECIPE.format(runs=tmp_path / "runs", tables=tables, labels=labels))
    trained = CliRunner().invoke(cli, ["train", str(recipe), "--quiet"])
    assert trained.exit_code == 0, trained.output + repr(trained.exception)
    model_dir = tmp_path / "runs" / "cohort-abmil" / "model"
    spec = json.loads((model_dir / "model.json").read_text())
    assert spec["task"] == "mil" and spec["provenance"]["encoder"]["name"] == "pcam-mobilenetv2"

    out = tmp_path / "predicted"
    slide = cohort / "aperio-skin-b.svs"
    predicted = CliRunner().invoke(cli, ["predict", str(slide), "--model", str(model_dir), "--out", str(out),
                                         "--device", "cpu"])  # fmt: skip
    assert predicted.exit_code == 0, predicted.output + repr(predicted.exception)
    call = json.loads((out / "aperio-skin-b.slide.json").read_text())
    probabilities = call["probabilities"]
    assert set(probabilities) == {"aperio-skin", "tcga-frozen"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    objects = qb.read_geojson(out / "aperio-skin-b.attention.geojson")
    assert len(objects) == call["n_tiles"] > 10
    attention = [o.measurements["attention"] for o in objects]
    assert sum(attention) == pytest.approx(1.0, abs=1e-3)  # one softmax over the slide's tiles
