"""Bad GeoJSON: clear errors or warnings that name the feature index; nothing dropped silently."""

from __future__ import annotations

import json
import warnings

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import qupath_bridge as qb
from qupath_bridge import GeoJSONError, GeoJSONWarning


def _fc(*geometries: dict, props: dict | None = None) -> str:
    features = [
        {"type": "Feature", "geometry": g, "properties": dict(props or {"objectType": "annotation"})}
        for g in geometries
    ]
    return json.dumps({"type": "FeatureCollection", "features": features})


SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 4], [4, 0], [0, 4], [0, 0]]]}


def test_invalid_json_names_line_and_column():
    with pytest.raises(GeoJSONError, match=r"not valid JSON at line 2, column \d+"):
        qb.read_geojson('{"type": "FeatureCollection",\n "features": [}')


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.geojson"
    path.write_text(_fc(SQUARE)[:-10])
    with pytest.raises(GeoJSONError, match=r"cut\.geojson: not valid JSON"):
        qb.read_geojson(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.geojson"):
        qb.read_geojson(tmp_path / "nope.geojson")


def test_unknown_geometry_type_names_the_feature():
    text = _fc(SQUARE, {"type": "Circle", "coordinates": [1, 2], "radius": 3})
    expected = r"feature 1: unknown geometry type 'Circle'; expected one of Point"
    with pytest.raises(GeoJSONError, match=expected):
        qb.read_geojson(text)


def test_self_intersecting_polygon_is_repaired_and_counted():
    with pytest.warns(GeoJSONWarning, match=r"2 × invalid-polygon \(features 1, 2\).*Self-intersection"):
        objects = qb.read_geojson(_fc(SQUARE, BOWTIE, BOWTIE))
    assert len(objects) == 3
    assert all(o.geometry.is_valid for o in objects[1:])
    assert objects[1].geometry.area == pytest.approx(8.0)  # both lobes of the bow-tie kept


def test_empty_and_degenerate_polygons_are_skipped_with_a_word():
    empty = {"type": "Polygon", "coordinates": []}
    line_like = {"type": "Polygon", "coordinates": [[[0, 0], [5, 5], [0, 0]]]}
    zero_area = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}
    with pytest.warns(GeoJSONWarning) as record:
        objects = qb.read_geojson(_fc(SQUARE, empty, line_like, zero_area))
    messages = [str(r.message) for r in record]
    assert all("\n" not in m for m in messages)  # one line each
    assert messages[0] == "<data>: read 1 of 4 features: 3 skipped"
    assert "<data>: 2 × short-ring (features 1, 2)" in "\n".join(messages)
    assert "<data>: 3 × empty-geometry (features 1, 2, 3)" in "\n".join(messages)
    assert len(objects) == 1


def test_open_ring_is_closed_and_reported_as_a_qupath_error():
    open_ring = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4]]]}
    with pytest.warns(GeoJSONWarning, match=r"open-ring \(features 0\)"):
        (obj,) = qb.read_geojson(_fc(open_ring))
    assert obj.geometry.area == 16
    assert not qb.validate_geojson(_fc(open_ring)).is_valid


def test_classification_without_colour_is_warned_and_coloured():
    text = _fc(SQUARE, props={"objectType": "annotation", "classification": {"name": "Tumor"}})
    with pytest.warns(GeoJSONWarning, match=r"feature.*'Tumor' has no 'color' \(QuPath 0.4–0.7 rejects"):
        (obj,) = qb.read_geojson(text)
    assert obj.classification.color == (200, 0, 0)
    written = qb.to_geojson([obj])["features"][0]["properties"]["classification"]
    assert written == {"name": "Tumor", "color": [200, 0, 0]}


def test_huge_coordinates_are_an_error_naming_feature_and_value():
    huge = {"type": "Point", "coordinates": [1e12, 5]}
    with pytest.raises(GeoJSONError, match=r"feature 1: Point: coordinate 1e\+12 is beyond any image size"):
        qb.read_geojson(_fc(SQUARE, huge))


def test_non_finite_coordinates_are_an_error():
    with pytest.raises(GeoJSONError, match="feature 0: LineString: coordinate nan is not finite"):
        qb.read_geojson('{"type":"LineString","coordinates":[[0,0],[NaN,1]]}')


def test_3d_coordinates_warn_with_indices():
    text = _fc({"type": "LineString", "coordinates": [[0, 0, 1], [3, 4, 1]]})
    with pytest.warns(GeoJSONWarning, match=r"1 × 3d-coordinates \(features 0\)"):
        (obj,) = qb.read_geojson(text)
    assert list(obj.geometry.coords) == [(0, 0), (3, 4)]


def test_case_mismatched_object_type_becomes_annotation_as_in_qupath():
    text = _fc(SQUARE, props={"objectType": "DETECTION"})
    with pytest.warns(GeoJSONWarning, match="objectType 'DETECTION' is not one of"):
        (obj,) = qb.read_geojson(text)
    assert obj.object_type is qb.ObjectType.ANNOTATION


def test_bad_measurement_values_are_dropped_with_their_name():
    props = {"objectType": "detection", "measurements": {"ok": 1, "bad": "twelve", "inf": "inf"}}
    with pytest.warns(GeoJSONWarning, match=r"measurement 'bad' = 'twelve' is not a number"):
        (obj,) = qb.read_geojson(_fc(SQUARE, props=props))
    assert obj.measurements == {"ok": 1.0, "inf": float("inf")}


def test_non_uuid_id_is_replaced_on_write_with_a_warning():
    feature = {"type": "Feature", "id": 17, "geometry": SQUARE, "properties": {"objectType": "annotation"}}
    text = json.dumps(feature)
    with pytest.warns(GeoJSONWarning, match="id 17 is not a UUID"):
        (obj,) = qb.read_geojson(text)
    assert obj.id is None


def test_feature_without_geometry_is_an_error_unless_validating():
    text = json.dumps([{"type": "Feature", "geometry": None, "properties": {}}])
    with pytest.raises(GeoJSONError, match="feature 0: no geometry; QuPath objects need a ROI"):
        qb.read_geojson(text)
    result = qb.validate_geojson(text)
    assert not result.is_valid
    assert "feature 0: no geometry" in result.format()


def test_validation_lists_every_problem_at_once():
    props = {"objectType": "annotation", "classification": {"name": "X"}}
    text = _fc(SQUARE, {"type": "Circle"}, BOWTIE, props=props)
    result = qb.validate_geojson(text)
    assert not result.is_valid
    codes = [(i.index, i.code) for i in result.issues]
    assert (1, "unknown-geometry-type") in codes
    assert (2, "invalid-polygon") in codes
    assert [i for i, c in codes if c == "class-without-color"] == [0, 2]
    assert result.format().startswith("<data>: INVALID for QuPath: 3 feature(s)")


def test_validation_of_a_clean_file_is_ok(tmp_path):
    path = qb.write_geojson([qb.PathObject(shapely.box(0, 0, 5, 5))], tmp_path / "ok.geojson")
    result = qb.validate_geojson(path)
    assert result.is_valid
    assert result.issues == []
    assert "OK for QuPath" in result.format()


def test_validation_of_non_json_is_fatal_not_raised(tmp_path):
    path = tmp_path / "x.geojson"
    path.write_text("hello")
    result = qb.validate_geojson(path)
    assert not result.is_valid
    assert "not valid JSON" in result.fatal


def test_writer_repairs_invalid_polygons_with_a_warning(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (4, 4), (4, 0), (0, 4)])
    objects = [qb.PathObject(g) for g in (shapely.box(0, 0, 1, 1), bowtie, shapely.Polygon())]
    expected = r"1 invalid polygon\(s\) repaired.*\(objects 1\); 1 empty.*\(objects 2\)"
    with pytest.warns(GeoJSONWarning, match=expected):
        path = qb.write_geojson(objects, tmp_path / "fixed.geojson")
    again = qb.read_geojson(path)
    assert len(again) == 2
    assert again[1].geometry.is_valid
    assert again[1].geometry.area == pytest.approx(8)


def test_top_level_that_is_not_geojson():
    with pytest.raises(GeoJSONError, match="top level is a JSON object of type 'Topology', not GeoJSON"):
        qb.read_geojson('{"type": "Topology"}')
    with pytest.raises(GeoJSONError, match="top level is a JSON number 42, not GeoJSON"):
        qb.read_geojson(b"42")


def test_repeated_keys_other_than_metadata_are_reported():
    text = (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},'
        '"properties":{"objectType":"annotation","name":"a","name":"b","measurements":{"x":1,"x":2}}}'
    )
    with pytest.warns(GeoJSONWarning, match=r"2 repeated JSON key\(s\) \['name', 'x'\]: the last value"):
        (obj,) = qb.read_geojson(text)
    assert (obj.name, obj.measurements) == ("b", {"x": 2.0})


def test_invalid_nucleus_is_repaired_and_lines_are_never_dropped():
    bowtie = BOWTIE
    feature = {
        "type": "Feature",
        "geometry": SQUARE,
        "nucleusGeometry": bowtie,
        "properties": {"objectType": "cell"},
    }
    lines = {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]}
    text = json.dumps(
        [feature, {"type": "Feature", "geometry": lines, "properties": {"objectType": "annotation"}}]
    )
    with pytest.warns(GeoJSONWarning, match=r"1 × invalid-polygon \(features 0\): invalid nucleus polygon"):
        cell, annotation = qb.read_geojson(text)
    assert cell.nucleus_geometry.is_valid
    assert cell.nucleus_geometry.area == pytest.approx(8)
    assert annotation.geometry.geom_type == "MultiLineString"


def test_unreadable_names_colours_and_ids_are_reported_not_crashing():
    props = {"objectType": "annotation", "name": 42, "color": "#ff0000"}
    feature = {"type": "Feature", "id": ["not", "hashable"], "geometry": SQUARE, "properties": props}
    with pytest.warns(GeoJSONWarning) as record:
        (obj,) = qb.read_geojson(json.dumps(feature))
    message = "\n".join(str(r.message) for r in record)
    assert "object colour '#ff0000' unreadable" in message
    assert "id ['not', 'hashable'] is not a UUID" in message
    assert (obj.name, obj.color, obj.id) == ("42", None, None)


@pytest.mark.parametrize(
    ("classification", "expected"),
    [("Tumor: ", ("Tumor",)), (": x", ("x",)), ({"name": "a: ", "color": [1, 2, 3]}, ("a",)),
     ({"names": ["a", ""], "color": [1, 2, 3]}, ("a",))],
)  # fmt: skip
def test_empty_class_name_parts_are_dropped_with_a_warning(classification, expected):
    props = {"objectType": "annotation", "classification": classification}
    with pytest.warns(GeoJSONWarning, match="has an empty name part"):
        (obj,) = qb.read_geojson(_fc(SQUARE, props=props))
    assert obj.classification.names == expected


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    ["objectType", "object_type", "name", "color", "classification", "isLocked", "isMissing",
     "measurements", "metadata", "childObjects", "children", "type"]
)  # fmt: skip
_geometry = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon", "Circle"]
            ),
            "coordinates": _json,
        }
    ),
    _json,
)
_feature = st.fixed_dictionaries(
    {
        "type": st.just("Feature"),
        "geometry": _geometry,
        "properties": st.dictionaries(_keys, _json, max_size=6),
    },
    optional={"id": _json, "nucleusGeometry": _geometry},
)


@settings(max_examples=150, deadline=None)
@given(features=st.lists(_feature, max_size=3))
def test_any_malformed_feature_is_a_clear_error_or_a_warning_never_a_crash(features):
    data = {"type": "FeatureCollection", "features": features}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoJSONWarning)  # this test is about crashes, not messages
        try:
            objects = qb.read_geojson(data)
        except qb.QuPathBridgeError:
            assert not qb.validate_geojson(data).is_valid
            return
    json.dumps(qb.to_geojson(objects), allow_nan=False)  # whatever was read can be written


def test_binary_qpdata_and_damaged_archives_are_clear_errors(tmp_path):
    with pytest.raises(GeoJSONError, match="not a GeoJSON text file"):
        qb.read_geojson(b"\xff\xfe\x00garbage")
    qpdata = tmp_path / "data.qpdata"
    qpdata.write_bytes(b"\xac\xed\x00\x05")
    with pytest.raises(GeoJSONError, match="Java-serialised image data, not GeoJSON: export the objects"):
        qb.read_geojson(qpdata)
    broken = tmp_path / "objects.geojson.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00broken")
    with pytest.raises(GeoJSONError, match=r"objects\.geojson\.gz: damaged \.gz archive"):
        qb.read_geojson(broken)
    not_zip = tmp_path / "objects.zip"
    not_zip.write_text("hello")
    with pytest.raises(GeoJSONError, match=r"damaged \.zip archive"):
        qb.read_geojson(not_zip)
