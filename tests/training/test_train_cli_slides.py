"""``histo train`` / ``histo cluster`` from the command line; slides + QuPath GeoJSON as a data source."""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import pytest
import yaml
from click.testing import CliRunner

from napari_histo.cli.main import cli
from napari_histo.data.synthetic import write_synthetic_slide
from training.config import DataConfig
from training.data import DataError, load_samples
from training.synthetic import synthetic_samples


def test_histo_train_writes_a_loadable_model_directory(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "cli",
                "output_dir": str(tmp_path / "runs"),
                "data": {
                    "source": "synthetic",
                    "class_names": ["sparse", "dense"],
                    "synthetic_per_class": 24,
                    "synthetic_px": 32,
                },
                "model": {"architecture": "mobilenetv3_small_050"},
                "train": {"batch_size": 16, "device": "cpu", "phases": [{"epochs": 3, "lr": 0.01}]},
            }
        )
    )
    result = CliRunner().invoke(cli, ["train", str(recipe), "--quiet", "--set", "train.phases=[{epochs: 1}]"])
    assert result.exit_code == 0, result.output
    assert "validation: {'accuracy'" in result.output
    model = json.loads((tmp_path / "runs" / "cli" / "model" / "model.json").read_text())
    assert model["provenance"]["command"].endswith("--set 'train.phases=[{epochs: 1}]'")
    assert model["provenance"]["epochs"] == 1


def test_histo_train_names_an_unknown_key(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: {source: synthetic}\nmodel: {architecture: resnet18}\ntrian: {}\n")
    result = CliRunner().invoke(cli, ["train", str(recipe)])
    assert result.exit_code != 0
    assert "unknown key 'trian'" in str(result.exception) + result.output


def test_histo_cluster_separates_two_stain_folders(tmp_path: Path) -> None:
    samples = synthetic_samples(DataConfig(source="synthetic_stain", synthetic_per_class=30, synthetic_px=32))
    folders = [tmp_path / name for name in samples.class_names]
    for i, (pixels, label) in enumerate(zip(samples.images, samples.labels)):
        folders[label].mkdir(exist_ok=True)
        (folders[label] / f"{i}.png").write_bytes(imagecodecs.png_encode(pixels))
    out = tmp_path / "report"
    with pytest.warns(UserWarning, match="random"):  # no --weights: said once (colour alone separates these)
        result = CliRunner().invoke(
            cli, ["cluster", *map(str, folders), "--architecture", "resnet10t", "--out", str(out)]
        )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "clustering.json").read_text())
    assert report["groups"] == ["standard", "variant"]
    assert report["pixels"]["accuracy"] > 0.9
    assert (out / "clustering.png").exists()


@pytest.fixture(scope="module")
def annotated_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("slide")
    slide = write_synthetic_slide(folder / "s.ome.tif", shape_rc=(1024, 2048), downsamples=(4,))
    left = [[0, 0], [1024, 0], [1024, 1024], [0, 1024], [0, 0]]
    right = [[1024, 0], [2048, 0], [2048, 1024], [1024, 1024], [1024, 0]]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": name, "color": [200, 0, 0]},
            },
        }
        for ring, name in ((left, "Tumor"), (right, "Stroma"))
    ]
    geojson = folder / "s.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return slide, geojson


def test_slides_and_geojson_become_labelled_tiles(annotated_slide: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("qupath_bridge").__dict__.get("read_geojson") or pytest.skip("no read_geojson")
    slide, geojson = annotated_slide
    config = DataConfig(
        source="slides",
        slides=(str(slide),),
        annotations=(str(geojson),),
        class_names=("Tumor", "Stroma"),
        tile_mpp=1.0,
        tile_px=64,
        min_tissue=0.0,
    )
    samples = load_samples(config, tmp_path, tmp_path / "work")
    counts = samples.counts()
    assert counts["Tumor"] > 0 and counts["Stroma"] > 0
    assert set(samples.groups) == {"s.ome.tif"}
    assert (tmp_path / "work" / "tiles" / "tiles.csv").exists()


def test_annotation_classes_that_do_not_match_the_recipe(
    annotated_slide: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("qupath_bridge").__dict__.get("read_geojson") or pytest.skip("no read_geojson")
    slide, geojson = annotated_slide
    config = DataConfig(
        source="slides",
        slides=(str(slide),),
        annotations=(str(geojson),),
        class_names=("in_situ", "invasive"),
        tile_mpp=1.0,
        tile_px=64,
        min_tissue=0.0,
    )
    with pytest.raises(DataError, match=r"annotation classes \['Stroma', 'Tumor'\] do not match .*in_situ"):
        load_samples(config, tmp_path, tmp_path / "work")
