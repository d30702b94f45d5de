"""Tile grids with class probabilities → QuPath tile objects, as QuPath's WSInfer extension makes them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import qupath_bridge as qb
from qupath_bridge import LabelImageError, ObjectType


def test_tiles_get_one_measurement_per_class_and_top_class(tmp_path):
    xy = np.array([[0, 0], [224, 0], [448, 0]])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]])
    tiles = qb.tiles_to_objects(xy, 224, probs, ["Tumor", "Stroma"])
    assert [t.object_type for t in tiles] == [ObjectType.TILE] * 3
    assert [t.name for t in tiles] == ["Tile 1", "Tile 2", "Tile 3"]
    assert [t.class_name for t in tiles] == ["Tumor", "Stroma", None]
    assert tiles[1].measurements == {"Tumor": 0.2, "Stroma": 0.8}
    assert tiles[1].geometry.bounds == (224, 0, 448, 224)
    path = qb.write_geojson(tiles, tmp_path / "tiles.geojson")
    feature = json.loads(path.read_text())["features"][0]
    assert feature["properties"]["objectType"] == "tile"
    assert feature["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    back = qb.read_geojson(path)
    assert back[0].measurements == {"Tumor": 0.9, "Stroma": 0.1}
    assert all(math.isnan(v) for v in back[2].measurements.values())


def test_probability_grid_positions_with_stride_and_origin():
    grid = np.full((2, 3, 2), np.nan)
    grid[0, 0] = [0.3, 0.7]
    grid[1, 2] = [0.6, 0.4]
    tiles = qb.probability_grid_to_tiles(grid, 512, ["a", "b"], stride_px=256, origin_xy=(1000, 2000))
    assert len(tiles) == 2  # all-NaN cells are background: no object
    assert tiles[0].geometry.bounds == (1000, 2000, 1512, 2512)
    assert tiles[1].geometry.bounds == (1000 + 2 * 256, 2000 + 256, 1000 + 2 * 256 + 512, 2000 + 256 + 512)
    assert [t.class_name for t in tiles] == ["b", "a"]


def test_tile_shape_mismatch_is_explained():
    with pytest.raises(LabelImageError, match=r"shape \(n_tiles, n_classes\) = \(2, 3\), got \(2, 2\)"):
        qb.tiles_to_objects(np.zeros((2, 2)), 10, np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(LabelImageError, match="tile_size_px must be > 0"):
        qb.tiles_to_objects(np.zeros((1, 2)), 0, np.zeros((1, 1)), ["a"])


def test_class_list_round_trip_and_alpha(tmp_path):
    classes = [qb.Classification(("Tumor",), (200, 0, 0)), "Stroma", qb.Classification(("Tumor", "Positive"))]
    path = qb.write_class_list(classes, tmp_path / "classifiers" / "classes.json")
    data = json.loads(path.read_text())
    assert data["pathClasses"][0] == {"name": "Tumor", "color": -3670016}
    assert data["pathClasses"][2]["name"] == "Tumor: Positive"
    back = qb.read_class_list(tmp_path)
    assert [c.name for c in back] == ["Tumor", "Stroma", "Tumor: Positive"]
    assert back[1].color == (150, 200, 150)


def test_project_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        qb.read_project(tmp_path)
    (tmp_path / "project.qpproj").write_text('{"version": "0.6.0"}')
    with pytest.raises(qb.ProjectError, match="no 'images' list"):
        qb.read_project(tmp_path)


def test_groovy_scripts_ship_and_use_qupaths_geojson_api():
    export = qb.groovy_script("export")
    assert "exportObjectsToGeoJson(objects, outputPath, *options)" in export
    assert "'FEATURE_COLLECTION'" in export
    assert "getAllObjects(false)" in export
    importer = qb.groovy_script("import")
    assert "PathIO.readObjects(file)" in importer
    assert "hierarchy.insertPathObjects(objects)" in importer
    with pytest.raises(KeyError, match="choose one of"):
        qb.groovy_script("delete-everything")
