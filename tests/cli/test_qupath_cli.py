"""`histo qupath convert` (GeoJSON ⇄ label image at a level) and `histo qupath validate`."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from types import SimpleNamespace

import imagecodecs
import numpy as np
import shapely
import tifffile
from conftest import shared_file

import qupath_bridge as qb
from napari_histo.cli.main import main
from napari_histo.io import open_slide


def run(*args: str) -> SimpleNamespace:
    """``histo qupath ARGS`` as a user runs it (through the top-level handler); output: stdout + stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            main(["qupath", *map(str, args)])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return SimpleNamespace(exit_code=code, output=out.getvalue() + err.getvalue(), stderr=err.getvalue())


def _objects() -> list[qb.PathObject]:
    holed = shapely.Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(8, 8), (24, 8), (24, 24), (8, 24)]])
    return [
        qb.PathObject(holed, classification=qb.Classification(("Tumor",), (200, 0, 0))),
        qb.PathObject(
            shapely.box(48, 16, 64, 32), classification=qb.Classification(("Stroma",), (150, 200, 150))
        ),
    ]


def test_geojson_to_tif_at_a_downsample_and_back(tmp_path):
    source = qb.write_geojson(_objects(), tmp_path / "objects.geojson")
    result = run("convert", source, tmp_path / "labels.tif", "--downsample", 4, "--shape", "12x20")
    assert result.exit_code == 0, result.output
    assert "12 x 20 uint8, 2 objects, downsample 4, instance labels" in result.output
    labels = tifffile.imread(tmp_path / "labels.tif")
    np.testing.assert_array_equal(labels, qb.objects_to_labels(_objects(), (12, 20), downsample=4))
    assert labels[3, 3] == 0 and labels[0, 0] == 1  # the hole is background
    assert (labels == 2).sum() == 16

    result = run("convert", tmp_path / "labels.tif", tmp_path / "traced.geojson", "--downsample", 4)
    assert result.exit_code == 0, result.output
    traced = qb.read_geojson(tmp_path / "traced.geojson")
    assert traced[0].geometry.equals(_objects()[0].geometry)
    assert traced[0].object_type is qb.ObjectType.DETECTION


def test_class_png_with_class_order(tmp_path):
    source = qb.write_geojson(_objects(), tmp_path / "objects.geojson")
    result = run("convert", source, tmp_path / "classes.png", "--mode", "class", "--classes", "Stroma,Tumor")
    assert result.exit_code == 0, result.output
    assert "1 = Stroma, 2 = Tumor" in result.output
    labels = imagecodecs.png_decode((tmp_path / "classes.png").read_bytes())
    assert labels.shape == (40, 64)  # fits the objects at level 0
    assert (labels[0, 0], labels[20, 50]) == (2, 1)
    back = run(
        "convert", tmp_path / "classes.png", tmp_path / "classes.geojson",
        "--classes", "Stroma,Tumor", "--object-type", "annotation", "--layout", "0.3",
    )  # fmt: skip
    assert back.exit_code == 0, back.output
    text = json.loads((tmp_path / "classes.geojson").read_text())
    assert text["features"][0]["properties"]["object_type"] == "annotation"
    assert [o.class_name for o in qb.read_geojson(tmp_path / "classes.geojson")] == ["Stroma", "Tumor"]


def test_level_size_from_the_slide(tmp_path):
    slide_path = shared_file("wsi", "test3-DAPI-2-387.ndpi")
    with open_slide(slide_path) as slide:
        rows, cols = slide.level_info[2].shape[:2]
        downsample = slide.level_downsamples[2]
    source = qb.write_geojson(
        [qb.PathObject(shapely.box(0, 0, 64 * downsample, 32 * downsample))], tmp_path / "a.json"
    )
    result = run("convert", source, tmp_path / "l2.tif", "--slide", slide_path, "--level", 2)
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(tmp_path / "l2.tif")
    assert labels.shape == (rows, cols)
    assert labels.sum() == 64 * 32
    bad = run("convert", source, tmp_path / "x.tif", "--slide", slide_path, "--level", 9)
    assert bad.exit_code == 2
    assert "has levels 0..3, got 9" in bad.output


def test_wrong_direction_and_options_are_usage_errors(tmp_path):
    source = qb.write_geojson(_objects(), tmp_path / "objects.geojson")
    result = run("convert", source, tmp_path / "out.geojson")
    assert result.exit_code == 2
    assert "cannot tell the direction" in result.output
    result = run("convert", source, tmp_path / "out.tif", "--level", 1)
    assert result.exit_code == 2
    assert "--level needs --slide" in result.output


def test_bad_geojson_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Circle"}}]}'
    )
    result = run("convert", bad, tmp_path / "out.tif")
    assert result.exit_code == 3  # a bad input file
    assert "feature 0: unknown geometry type 'Circle'" in result.output
    assert result.stderr.strip().startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_read_warnings_are_printed(tmp_path):
    source = shared_file("qupath_geojson", "foreign_napari_geojson_xyz.geojson")
    result = run("convert", source, tmp_path / "out.tif")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output
    assert "3d-coordinates (features 0, 1, 2, 3)" in result.output


def test_validate_ok_and_invalid_files(tmp_path):
    good = qb.write_geojson(_objects(), tmp_path / "good.geojson")
    result = run("validate", good)
    assert result.exit_code == 0, result.output
    assert "OK for QuPath: 2 feature(s), layout 0.4+" in result.output
    bad = tmp_path / "bad.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}},
    }
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    result = run("validate", good, bad)
    assert result.exit_code == 1
    assert "bad.geojson: INVALID for QuPath" in result.output
    assert "error: feature 0: polygon ring not closed" in result.output
    assert "error: feature 0: classification 'Tumor' has no 'color'" in result.output
    as_json = run("validate", bad, "--json")
    records = json.loads(as_json.output)
    assert records[0]["valid"] is False
    assert {i["code"] for i in records[0]["issues"]} == {"open-ring", "class-without-color"}


def test_validate_corpus_files(shared_data):
    folder = shared_data / "qupath_geojson"
    qupath_written = sorted(folder.glob("qp0*.geojson"))
    result = run("validate", *qupath_written)
    assert result.exit_code == 0, result.output
    assert result.output.count("OK for QuPath") == 4


def test_help_has_examples():
    result = run("--help")
    assert result.exit_code == 0
    assert "histo qupath convert cells.geojson cells.tif --slide slide.svs --level 2" in result.output
    assert "histo qupath validate" in run("validate", "--help").output


def test_only_some_object_types_are_drawn(tmp_path):
    objects = [*_objects(), qb.PathObject(shapely.box(0, 48, 8, 56), qb.ObjectType.DETECTION)]
    source = qb.write_geojson(objects, tmp_path / "mixed.geojson")
    result = run("convert", source, tmp_path / "ann.tif", "--only", "annotation", "--shape", "64x64")
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(tmp_path / "ann.tif")
    assert set(np.unique(labels)) == {0, 1, 2}
    assert not labels[48:56, 0:8].any()
    bad = run("convert", source, tmp_path / "x.tif", "--only", "Annotation")
    assert bad.exit_code == 2
    assert "unknown type(s) ['Annotation']" in bad.output
