"""Each recipe says what data it runs on and how it differs from the paper; a run repeats that truthfully."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from training.config import ConfigError, config_from_dict, load_config
from training.report import data_note, describe_data, format_data_note
from training.run import resume_settings, train

RECIPES = sorted((Path(__file__).resolve().parents[2] / "training" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_each_recipe_describes_its_data_and_the_paper(recipe: Path) -> None:
    config = load_config(recipe)
    about = config.about
    assert about.paper.strip() and about.data.strip() and about.differs_from_paper.strip(), recipe.name
    synthetic = config.data.source.startswith("synthetic")
    assert ("synthetic" in about.data.lower()) == synthetic, about.data  # never a stand-in passed off as real
    if synthetic:
        assert "not real tissue" in about.data
    else:
        assert about.data.lower().startswith("real")  # says plainly that the patches are real
    note = data_note(config)
    assert note["recipe_data"] == about.data and note["differs_from_paper"] == about.differs_from_paper
    assert "data_overridden" not in note
    assert note["synthetic"] is synthetic
    assert ("SYNTHETIC" in note["data_used"]) is synthetic


def test_overridden_data_is_described_from_the_run_not_the_recipe(tmp_path: Path) -> None:
    recipe = next(r for r in RECIPES if r.stem.startswith("a_"))
    config = load_config(recipe, ["data.source=folders", f"data.root={tmp_path}"])
    note = data_note(config, {"train": {"in_situ": 5, "invasive": 4, "other": 3}, "valid": {"in_situ": 1}})
    assert note["synthetic"] is False
    shown = Path(os.path.relpath(tmp_path, recipe.parent)).as_posix()  # portable: from the recipe's folder
    assert (
        "SYNTHETIC" not in note["data_used"]
        and f"from {shown} (relative to the recipe's folder)" in note["data_used"]
    )
    assert "13 patches (train 12, valid 1)" in note["data_used"]
    assert note["data_overridden"] == ["data.source", "data.root"]
    assert (
        note["recipe_data"].startswith(config.about.data) and "recipe's default data" in note["recipe_data"]
    )
    assert note["differs_from_paper"].startswith("not stated")  # the recipe's comparison would now lie
    assert note["paper_used"] == config.about.paper_data
    assert "NOTE" not in format_data_note(note)


def test_fewer_patches_of_the_same_data_keep_the_comparison_marked() -> None:
    recipe = next(r for r in RECIPES if r.stem.startswith("c_"))
    config = load_config(recipe, ["data.synthetic_per_class=4"])
    note = data_note(config)
    assert note["data_overridden"] == ["data.synthetic_per_class"]
    assert note["differs_from_paper"].startswith(config.about.differs_from_paper)
    assert "this run changed data.synthetic_per_class" in note["differs_from_paper"]
    assert format_data_note(note).startswith("NOTE: this run trained on SYNTHETIC")


def test_describe_data_names_real_roots_as_the_recipe_does() -> None:
    recipe = next(r for r in RECIPES if r.stem.startswith("d_"))
    config = load_config(recipe)
    text = describe_data(config.data, {"train": {"normal": 3, "tumour": 2}}, str(recipe.parent))
    assert f"from {config.data.root} (relative to the recipe's folder)" in text
    assert "classes normal, tumour; 5 patches (train 5)" in text and "SYNTHETIC" not in text


def test_about_and_report_sections_are_checked() -> None:
    base = {"data": {"source": "synthetic"}, "model": {"architecture": "resnet18"}}
    with pytest.raises(ConfigError, match=r"about\.paper_used"):
        config_from_dict({**base, "about": {"paper_used": "x"}})
    with pytest.raises(ConfigError, match=r"report\.examples_per_class"):
        config_from_dict({**base, "report": {"examples_per_class": 0}})
    config = config_from_dict(base)
    assert config.about.data == "" and config.report.gradcam_sheet and config.report.mask_examples
    assert "about" not in resume_settings(config) and "report" not in resume_settings(config)


def test_a_run_writes_the_note_to_metrics_model_and_readme(tiny, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tiny(
        "data.synthetic_per_class=8",
        about={"paper": "A paper", "paper_data": "Real slides", "data": "SYNTHETIC dots, not real tissue",
               "differs_from_paper": "Dots instead of slides"},
    )  # fmt: skip
    result = train(config, progress=False)
    note = json.loads((result.run_dir / "metrics.json").read_text())["summary"]["data"]
    assert note["recipe_data"] == "SYNTHETIC dots, not real tissue"
    assert note["differs_from_paper"] == "Dots instead of slides" and note["synthetic"] is True
    assert "16 patches" in note["data_used"]
    spec = json.loads((result.model_dir / "model.json").read_text())
    assert spec["provenance"]["data"] == note
    readme = (result.run_dir / "README.md").read_text()
    assert "**paper used:** Real slides" in readme and "Dots instead of slides" in readme
    out = capsys.readouterr().out
    assert (
        "differs from the paper: Dots instead of slides" in out
        and "NOTE: this run trained on SYNTHETIC" in out
    )
