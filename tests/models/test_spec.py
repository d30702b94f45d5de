"""ModelSpec: model.json round trip, WSInfer config compatibility, clear errors (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from napari_histo.models import ModelSpec, ModelSpecError, Task, load_spec, save_spec
from napari_histo.models.spec import spec_from_dict


def _spec(**changes):
    base = {
        "architecture": "resnet18",
        "num_classes": 3,
        "class_names": ["tumour", "stroma", "other"],
        "patch_size_pixels": 224,
        "spacing_um_px": 0.5,
    }
    return ModelSpec(**{**base, **changes})


def test_round_trip_keeps_every_field(tmp_path):
    spec = _spec(class_colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]], input_size=256,
                 metrics={"accuracy": 0.9}, provenance={"recipe": "resnet.yaml"})  # fmt: skip
    path = save_spec(spec, tmp_path / "m")
    assert path.name == "model.json"
    assert load_spec(tmp_path / "m") == spec
    assert load_spec(path).class_colors == ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def test_defaults_fill_colours_and_input_size():
    spec = _spec()
    assert spec.task is Task.CLASSIFICATION
    assert len(spec.class_colors) == 3
    assert len(set(spec.class_colors)) == 3
    assert spec.input_size == 224


def test_wsinfer_config_is_read_and_written():
    wsinfer = {
        "spec_version": "1.0",
        "architecture": "resnet34",
        "num_classes": 2,
        "class_names": ["notumor", "tumor"],
        "patch_size_pixels": 350,
        "spacing_um_px": 0.25,
        "transform": [
            {"name": "Resize", "arguments": {"size": 224}},
            {"name": "ToTensor"},
            {
                "name": "Normalize",
                "arguments": {"mean": [0.7238, 0.5716, 0.6779], "std": [0.112, 0.1459, 0.1089]},
            },
        ],
    }
    spec = spec_from_dict(wsinfer)
    assert spec.input_size == 224
    assert spec.mean == (0.7238, 0.5716, 0.6779)
    assert spec.to_wsinfer_config() == wsinfer


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": ["a", "b"]}, "class_names has 2 names for num_classes=3"),
        ({"spacing_um_px": 0.0}, "spacing_um_px must be"),
        ({"class_colors": [[300, 0, 0], [0, 0, 0], [1, 1, 1]]}, "0-255"),
        ({"task": "detection"}, "detection"),
    ],
)
def test_invalid_specs_name_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


def test_bad_files(tmp_path):
    with pytest.raises(ModelSpecError, match="no model spec here"):
        load_spec(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        load_spec(tmp_path)
    data = _spec().to_json_dict()
    data["learning_rate"] = 0.1
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelSpecError, match=r"unknown field\(s\) \['learning_rate'\]"):
        load_spec(tmp_path)


def test_spec_needs_no_torch():
    code = "import sys, napari_histo.models as m; m.load_spec; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_classes": "two"}, r"num_classes = 'two' should be a whole number"),
        ({"class_names": "tumour"}, r"class_names = 'tumour' should be a list of names"),
        ({"spacing_um_px": -0.5}, r"spacing_um_px must be .* got -0\.5"),
        ({"num_classes": 1, "class_names": ["a"]}, r"num_classes must be 2 or more"),
        ({"class_names": ["a", "a", "b"]}, r"class_names repeats \['a'\]"),
        ({"num_clases": 3}, r"'num_clases' \(did you mean 'num_classes'\?\)"),
    ],
)
def test_model_json_values_name_the_field(tmp_path, changes, message):
    data = _spec().to_json_dict()
    data.update(changes)
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelSpecError, match=message):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"[1, 2]", "holds a JSON list"), (b"\xff\x00\x01", "not a text file"), (b" ", "is empty")],
)
def test_model_json_that_is_no_spec(tmp_path, content, message):
    (tmp_path / "model.json").write_bytes(content)
    with pytest.raises(ModelSpecError, match=message):
        load_spec(tmp_path)
