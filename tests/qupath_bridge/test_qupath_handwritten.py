"""Hand-written QuPath GeoJSON for what the real corpus lacks, written as QuPath writes it.

Each fixture follows QuPath's writer (QuPathTypeAdapters 0.4–0.7, PathObjectTypeAdapters
0.2/0.3) as described in ../shared/QUPATH_GEOJSON.md: cells with nucleusGeometry, tiles
with NaN measurements, plane, isLocked true, derived classes, the duplicated metadata key,
0.2 legacy ids, 0.4 bare NaN.
"""

from __future__ import annotations

import json
import math

import pytest
import shapely

import qupath_bridge as qb
from qupath_bridge import Classification, GeoJSONWarning, ImagePlane, ObjectType

# QuPath 0.6 cell: nucleusGeometry beside geometry, derived class, NaN/Infinity strings,
# isLocked true, a z/t plane, and metadata written twice (the 0.5–0.7 writer quirk).
CELL_06 = """{"type":"FeatureCollection","features":[
{"type":"Feature","id":"0b8ea7c5-4b8f-4f2a-9d0e-2f1c3c1f9a10",
"geometry":{"type":"Polygon","coordinates":[[[100, 100],[120, 100],[120, 118.5],[100, 118.5],[100, 100]]],
"plane":{"c":-1,"z":2,"t":1}},
"nucleusGeometry":{"type":"Polygon",
"coordinates":[[[105, 105],[113.25, 105],[113.25, 112],[105, 112],[105, 105]]],
"plane":{"c":-1,"z":2,"t":1}},
"properties":{"objectType":"cell","name":"cell A",
"classification":{"names":["Tumor","Positive"],"color":[200,50,50]},
"isLocked":true,
"measurements":{"Nucleus: Area µm^2":12.5,"Cell: DAB OD mean":"NaN","Ratio":"Infinity","Delta":"-Infinity"},
"metadata":{"source":"stardist"},
"metadata":{"source":"stardist","model":"he_heavy_augment"}}}]}"""

# WSInfer (Python) output: tiles, isLocked true, prob_* measurements, one of them NaN, no class
WSINFER_TILES = """{"type":"FeatureCollection","features":[
{"type":"Feature","id":"5b7c1b55-8a37-4d6d-9b9f-1f3e0c2c3a01","geometry":{"type":"Polygon",
"coordinates":[[[0,0],[0,350],[350,350],[350,0],[0,0]]]},
"properties":{"isLocked":true,"measurements":{"prob_notumor":0.25,"prob_tumor":0.75},"objectType":"tile"}},
{"type":"Feature","id":"5b7c1b55-8a37-4d6d-9b9f-1f3e0c2c3a02","geometry":{"type":"Polygon",
"coordinates":[[[350,0],[350,350],[700,350],[700,0],[350,0]]]},
"properties":{"isLocked":true,"measurements":{"prob_notumor":"NaN","prob_tumor":"NaN"},"objectType":"tile"}}]}"""

# QuPath 0.2: class name in "id", colorRGB, derived class as nested parentClass, list measurements
LEGACY_02 = """[{"type":"Feature","id":"PathDetectionObject","geometry":{"type":"Polygon",
"coordinates":[[[10,10],[20,10],[20,20],[10,20],[10,10]]]},
"properties":{"classification":{"name":"Positive","colorRGB":-3394765,
"parentClass":{"name":"Tumor","colorRGB":-3670016}},"isLocked":false,
"measurements":[{"name":"Area","value":100.0},{"name":"Missing","value":"NaN"}]}},
{"type":"Feature","id":"TMACoreObject","geometry":{"type":"Polygon","isEllipse":true,
"coordinates":[[[0,5],[5,0],[10,5],[5,10],[0,5]]]},
"properties":{"name":"A-1","isLocked":false,"isMissing":true,"measurements":[]}}]"""

# QuPath 0.4 wrote bare NaN (invalid JSON, fixed in 0.5 by #1293); an ellipse annotation
QUPATH_04_BARE_NAN = """{"type":"Feature","id":"9e1f2b33-1111-4c1a-8f00-000000000004",
"geometry":{"type":"Polygon","isEllipse":true,"coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]},
"properties":{"objectType":"annotation","classification":{"name":"Stroma","color":[150,200,150]},
"measurements":{"x":NaN}}}"""


def test_cell_with_nucleus_plane_lock_derived_class_and_nan():
    (cell,) = qb.read_geojson(CELL_06)
    assert cell.object_type is ObjectType.CELL
    assert cell.id == "0b8ea7c5-4b8f-4f2a-9d0e-2f1c3c1f9a10"
    assert cell.name == "cell A"
    assert cell.classification == Classification(("Tumor", "Positive"), (200, 50, 50))
    assert cell.class_name == "Tumor: Positive"
    assert cell.is_locked is True
    assert cell.plane == ImagePlane(c=-1, z=2, t=1)
    assert cell.nucleus_geometry.area == pytest.approx(8.25 * 7)
    assert cell.geometry.area == pytest.approx(20 * 18.5)
    m = cell.measurements
    assert m["Nucleus: Area µm^2"] == 12.5
    assert math.isnan(m["Cell: DAB OD mean"])
    assert (m["Ratio"], m["Delta"]) == (math.inf, -math.inf)
    # both copies of the duplicated key are kept, merged (json.load alone keeps only the last)
    assert cell.metadata == {"source": "stardist", "model": "he_heavy_augment"}


def test_duplicated_metadata_is_reported_as_info_not_warning():
    report = qb.read_geojson_report(CELL_06)
    assert report.count("duplicate-key") == 1
    assert report.issues[0].severity is qb.Severity.INFO


def test_cell_round_trip_writes_canonical_qupath_06(tmp_path):
    (cell,) = qb.read_geojson(CELL_06)
    path = qb.write_geojson([cell], tmp_path / "cells.geojson")
    text = path.read_text(encoding="utf-8")
    assert text.count('"metadata"') == 1
    feature = json.loads(text)["features"][0]
    assert list(feature) == ["type", "id", "geometry", "nucleusGeometry", "properties"]
    assert feature["geometry"]["plane"] == {"c": -1, "z": 2, "t": 1}
    props = feature["properties"]
    assert list(props)[:3] == ["objectType", "name", "classification"]
    assert props["classification"] == {"names": ["Tumor", "Positive"], "color": [200, 50, 50]}
    assert props["isLocked"] is True
    assert props["measurements"]["Cell: DAB OD mean"] == "NaN"
    assert props["measurements"]["Ratio"] == "Infinity"
    assert props["measurements"]["Delta"] == "-Infinity"
    (again,) = qb.read_geojson(path)
    assert again.nucleus_geometry.equals_exact(cell.nucleus_geometry, 0)
    assert (again.plane, again.is_locked, again.classification) == (cell.plane, True, cell.classification)
    assert math.isnan(again.measurements["Cell: DAB OD mean"])
    assert again.metadata == cell.metadata


def test_wsinfer_tiles_with_nan_measurements_round_trip(tmp_path):
    tiles = qb.read_geojson(WSINFER_TILES)
    assert [t.object_type for t in tiles] == [ObjectType.TILE] * 2
    assert all(t.is_locked for t in tiles)
    assert tiles[0].measurements == {"prob_notumor": 0.25, "prob_tumor": 0.75}
    assert all(math.isnan(v) for v in tiles[1].measurements.values())
    again = qb.read_geojson(qb.write_geojson(tiles, tmp_path / "t.geojson.gz"))
    assert [t.id for t in again] == [t.id for t in tiles]
    assert all(math.isnan(v) for v in again[1].measurements.values())
    assert again[0].measurements == tiles[0].measurements


def test_qupath_02_legacy_ids_colorrgb_parent_class_and_list_measurements():
    detection, core = qb.read_geojson(LEGACY_02)
    assert qb.read_geojson_report(LEGACY_02).layout == "0.2"
    assert detection.object_type is ObjectType.DETECTION
    assert detection.id is None  # a class name, not a UUID: a new UUID is made on write
    # -3394765 = 0xFFCC3333 → (204, 51, 51); the parent's colour is not the derived class's
    assert detection.classification == Classification(("Tumor", "Positive"), (204, 51, 51))
    assert detection.measurements["Area"] == 100.0
    assert math.isnan(detection.measurements["Missing"])
    assert core.object_type is ObjectType.TMA_CORE
    assert (core.name, core.is_missing, core.is_ellipse) == ("A-1", True, True)


def test_derived_class_written_in_03_layout_as_nested_parent_class(tmp_path):
    detection, core = qb.read_geojson(LEGACY_02)
    data = qb.to_geojson([detection, core], layout="0.3")
    props = data["features"][0]["properties"]
    assert "id" not in data["features"][0]
    assert props["object_type"] == "detection"
    assert data["features"][1]["properties"]["object_type"] == "tma_core"
    assert props["classification"]["name"] == "Positive"
    assert props["classification"]["parentClass"]["name"] == "Tumor"
    assert props["measurements"][1] == {"name": "Missing", "value": "NaN"}
    assert props["isLocked"] is False  # 0.3 always writes it
    again = qb.read_geojson(qb.write_geojson([detection], tmp_path / "old.json", layout="0.3"))
    assert again[0].classification.names == ("Tumor", "Positive")


def test_qupath_04_bare_nan_and_ellipse():
    with pytest.warns(GeoJSONWarning, match="1 × bare-nan"):
        (obj,) = qb.read_geojson(QUPATH_04_BARE_NAN)
    assert math.isnan(obj.measurements["x"])
    assert obj.is_ellipse
    assert obj.classification == Classification(("Stroma",), (150, 200, 150))
    data = qb.to_geojson([obj])
    assert data["features"][0]["geometry"]["isEllipse"] is True
    assert json.dumps(data, allow_nan=False)  # the written file is strict JSON


def test_bare_nan_is_a_qupath_error_in_validation():
    result = qb.validate_geojson(QUPATH_04_BARE_NAN)
    assert not result.is_valid
    assert [i.code for i in result.report.errors] == ["bare-nan"]


def test_zip_like_qupath_and_single_feature_container(tmp_path):
    (cell,) = qb.read_geojson(CELL_06)
    zipped = qb.write_geojson([cell], tmp_path / "objects.zip")
    import zipfile

    assert zipfile.ZipFile(zipped).namelist() == ["objects.geojson"]
    assert qb.read_geojson(zipped)[0].id == cell.id
    bare = qb.write_geojson([cell], tmp_path / "bare.json", feature_collection=False)
    assert json.loads(bare.read_text())[0]["type"] == "Feature"
    assert qb.read_geojson_report(bare).container == "array"


def test_children_of_a_hierarchy_export_are_read_and_written():
    text = json.dumps(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 9], [0, 0]]]},
            "properties": {
                "objectType": "annotation",
                "childObjects": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [3, 3]},
                        "properties": {"objectType": "detection"},
                    }
                ],
            },
        }
    )
    (parent,) = qb.read_geojson(text)
    assert [c.object_type for c in parent.children] == [ObjectType.DETECTION]
    feature = qb.to_geojson([parent])["features"][0]
    assert feature["properties"]["childObjects"][0]["geometry"] == {"type": "Point", "coordinates": [3, 3]}


def test_unknown_alpha_colours_keep_a_fourth_element():
    obj = qb.PathObject(shapely.box(0, 0, 1, 1), classification=Classification(("A",), (1, 2, 3, 128)))
    props = qb.to_geojson([obj])["features"][0]["properties"]
    assert props["classification"] == {"name": "A", "color": [1, 2, 3, 128]}
    assert qb.read_geojson(qb.to_geojson([obj]))[0].classification.color == (1, 2, 3, 128)


def test_string_classification_gets_qupaths_standard_colour():
    text = WSINFER_TILES.replace(
        '"objectType":"tile"}},', '"objectType":"tile","classification":"Tumor"}},', 1
    )
    tiles = qb.read_geojson(text)
    assert tiles[0].classification == Classification(("Tumor",), (200, 0, 0))


def test_geojson_warning_is_a_user_warning():
    assert issubclass(GeoJSONWarning, UserWarning)
