"""Recipes: unknown keys name themselves, overrides, types, choices; every shipped recipe loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, apply_overrides, config_from_dict, config_to_dict, load_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "training" / "recipes").glob("*.yaml"))
BASE = {"data": {"source": "synthetic"}, "model": {"architecture": "resnet18"}}


def test_unknown_top_level_key_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'modle'.*allowed keys: data, model"):
        config_from_dict({**BASE, "modle": {}})


def test_unknown_nested_key_names_its_path() -> None:
    data = apply_overrides(BASE, ["train.phases=[{epochs: 1, lrr: 0.1}]"])
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'train.phases\[0\].lrr'.*allowed keys in "
        r"train.phases\[0\]: epochs, lr",
    ):
        config_from_dict(data)


def test_overrides_use_dotted_keys_and_yaml_values() -> None:
    data = apply_overrides(BASE, ["train.batch_size=8", "augment.flips=false", "data.class_names=[a, b]"])
    config = config_from_dict(data)
    assert config.train.batch_size == 8
    assert config.augment.flips is False
    assert config.data.class_names == ("a", "b")


def test_override_without_equals_sign_says_how() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(BASE, ["train.batch_size"])


def test_wrong_type_and_bad_choice_quote_the_value() -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size: expected a whole number, got 1.5"):
        config_from_dict(apply_overrides(BASE, ["train.batch_size=1.5"]))
    with pytest.raises(ConfigError, match=r"optimizer = 'rmsprop'; choose one of sgd, adam, adamw, adamax"):
        config_from_dict(apply_overrides(BASE, ["train.phases=[{optimizer: rmsprop}]"]))
    with pytest.raises(ConfigError, match="trainable"):
        config_from_dict(apply_overrides(BASE, ["train.phases=[{trainable: blocks}]"]))


def test_exponent_without_dot_is_a_number() -> None:
    # YAML 1.1 (PyYAML) reads 1e-4 as text; a recipe author means the number
    config = config_from_dict(apply_overrides(BASE, ["train.phases=[{lr: 1e-4}]"]))
    assert config.train.phases[0].lr == pytest.approx(1e-4)


def test_missing_required_section() -> None:
    with pytest.raises(ConfigError, match="required key"):
        config_from_dict({"data": {"source": "synthetic"}})


def test_resolved_config_round_trips() -> None:
    config = config_from_dict(apply_overrides(BASE, ["train.phases=[{epochs: 2}, {epochs: 3, lr: 0.1}]"]))
    again = config_from_dict(config_to_dict(config))
    assert again == config
    assert again.train.phases[1].lr == 0.1


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads(recipe: Path) -> None:
    config = load_config(recipe)
    assert config.model.architecture
    assert config.name and config.train.phases
    text = recipe.read_text()
    assert text.startswith("#"), "each recipe says in a comment which data it runs on"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.phases=[{lr: 0}]", r"train\.phases\[0\]\.lr = 0\.0; give a learning rate above 0"),
        ("train.phases=[{lr: -1e-3}]", r"lr = -0\.001; give a learning rate above 0"),
        ("train.phases=[{epochs: 0}]", r"train\.phases\[0\]\.epochs = 0; give 1 or more"),
        ("train.batch_size=0", r"train\.batch_size = 0; give 1 or more"),
        ("data.valid_fraction=1.5", r"data\.valid_fraction = 1\.5; give a fraction"),
        ("train.phases=[{lr: .nan}]", r"lr: expected a finite number, got nan"),
        ("data.class_names=[a]", r"a classifier needs two or more classes"),
        ("name=../up", r"one plain folder name"),
        ("data.source=folder", r"did you mean folders\?"),
    ],
)
def test_values_out_of_range_name_the_key_and_a_good_value(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(apply_overrides(BASE, [override]))


def test_unknown_keys_are_all_named_with_the_nearest_allowed_one() -> None:
    with pytest.raises(
        ConfigError, match=r"'train\.batchsize' \(did you mean 'train\.batch_size'\?\), 'train\.zz'"
    ):
        config_from_dict(apply_overrides(BASE, ["train.batchsize=8", "train.zz=1"]))


def test_overrides_reach_list_items() -> None:
    data = apply_overrides(BASE, ["train.phases=[{epochs: 1}, {epochs: 2}]", "train.phases[1].lr=0.5"])
    assert config_from_dict(data).train.phases[1].lr == 0.5
    with pytest.raises(ConfigError, match=r"there is no item \[4\]"):
        apply_overrides(data, ["train.phases[4].lr=0.5"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        apply_overrides(BASE, ["train.phases=[{"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the recipe is empty"),
        (b"- data\n- model\n", "got a YAML list"),
        (b"\xff\xfe\x00garbage", "not a text file"),
        (b"data: {source: folders\n", "not valid YAML"),
    ],
)
def test_recipe_files_that_are_not_recipes(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
