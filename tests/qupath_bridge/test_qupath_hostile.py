"""Hostile GeoJSON: depth and number limits, binary files, encodings, archive bombs, odd containers.

The same inputs are driven through the command line in
``tests/badinput/badinput_cases_geojson.py``; here the library answers are pinned,
including what ``validate_geojson`` (``histo qupath validate``) reports for each.
"""

from __future__ import annotations

import codecs
import gzip
import json
import uuid
import warnings
import zipfile

import pytest
import shapely

import qupath_bridge as qb
from qupath_bridge import GeoJSONError, GeoJSONWarning
from qupath_bridge._load import MAX_DEPTH, MAX_MB_ENV, _check_structure
from qupath_bridge._report import ReadReport

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}


def _fc(*geometries: dict, **props) -> dict:
    features = [
        {"type": "Feature", "geometry": g, "properties": {"objectType": "annotation", **props}}
        for g in geometries
    ]
    return {"type": "FeatureCollection", "features": features}


def _point(x: str, y: str = "1") -> bytes:
    return f'{{"type":"Point","coordinates":[{x},{y}]}}'.encode()


def _messages(record) -> str:
    return "\n".join(str(r.message) for r in record)


# ---------------------------------------------------------------- depth


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_absurd_nesting_is_refused_with_the_limit(text):
    with pytest.raises(
        GeoJSONError, match=rf"nested 100,000\+ levels deep; qupath_bridge reads at most {MAX_DEPTH}"
    ):
        qb.read_geojson(text)


def test_depth_limit_is_exact_and_ignores_brackets_in_strings():
    _check_structure(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, ReadReport())
    with pytest.raises(GeoJSONError, match=rf"nested {MAX_DEPTH + 1:,}\+ levels"):
        _check_structure(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), ReadReport())
    inside = (
        b'["' + b"[{" * 5000 + b'", "\\"[[[[\\\\", "x"]'
    )  # brackets, escaped quotes and backslashes in strings
    _check_structure(inside, ReadReport())
    assert json.loads(inside)[1] == '"[[[[\\'


def test_booleans_in_arrays_switch_on_the_type_check():
    report = ReadReport()
    _check_structure(b'{"isLocked": true, "c": [1.5, 2], "s": "[true, false]"}', report)
    assert report.check_types is False  # true as an object value, or inside a string, is no coordinate
    _check_structure(b'{"c": [1, true]}', report)
    assert report.check_types is True


def test_deep_parsed_values_are_refused_too():
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(GeoJSONError, match="nested too deeply"):
        qb.read_geojson(nested)


def test_child_objects_nest_within_the_limit():
    feature = {"type": "Feature", "geometry": SQUARE, "properties": {"objectType": "annotation"}}
    for _ in range(60):  # 3 levels each: 180 + the collection
        props = {"objectType": "annotation", "childObjects": [feature]}
        feature = {"type": "Feature", "geometry": SQUARE, "properties": props}
    (obj,) = qb.read_geojson(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    depth = 0
    while obj.children:
        (obj,), depth = obj.children, depth + 1
    assert depth == 60


# ---------------------------------------------------------------- numbers


def test_integers_of_hundreds_or_thousands_of_digits():
    with pytest.raises(
        GeoJSONError, match=r"feature 0: Point: coordinate 9{21}\.\.\. \(400 digits\) is beyond"
    ):
        qb.read_geojson(_point("9" * 400))
    with pytest.raises(
        GeoJSONError, match=r"number with 5,000 digits at line 1, column 32 \(999999999999\.\.\.\)"
    ):
        qb.read_geojson(_point("9" * 5000))
    with pytest.raises(GeoJSONError, match=r"line 3, column 5"):
        qb.read_geojson(b'{"type": "Point",\n"coordinates":\n[1, ' + b"8" * 5000 + b"]}")


@pytest.mark.parametrize(
    ("token", "expected"),
    [("NaN", "coordinate nan is not finite"), ("-Infinity", "coordinate -inf is not finite"),
     ("1e400", "coordinate inf is not finite"), ("true", "coordinate true is a boolean"),
     ('"7"', "coordinate '7' is text, not a number"), ("null", "coordinate null is not a number"),
     ("[]", r"expected \[x, y\] positions"), ("{}", r"coordinate \{\} is not a number")],
)  # fmt: skip
def test_coordinates_that_are_not_finite_numbers(token, expected):
    with pytest.raises(GeoJSONError, match=f"feature 0: Point: {expected}"):
        qb.read_geojson(_point(token))
    with pytest.raises(GeoJSONError, match=expected):  # also as the second of two positions
        qb.read_geojson(b'{"type":"LineString","coordinates":[[1,2],[3,' + token.encode() + b"]]}")


def test_booleans_are_caught_in_parsed_values_and_beside_numbers():
    for coords in ([True, 2.5], [[0, 0], [1, False]]):
        kind = "Point" if not isinstance(coords[0], list) else "LineString"
        with pytest.raises(GeoJSONError, match="is a boolean"):
            qb.read_geojson({"type": kind, "coordinates": coords})


def test_huge_numbers_outside_coordinates_are_dropped_with_a_word():
    props = {"objectType": "annotation", "measurements": {"a": 10**400, "b": 1.5}, "color": 10**400}
    text = json.dumps(
        {"type": "Feature", "geometry": SQUARE, "properties": {**props, "metadata": {"k": 10**400}}}
    )
    text = text.replace('"geometry": {', '"geometry": {"plane": {"c": 1e999}, ', 1)
    with pytest.warns(GeoJSONWarning) as record:
        (obj,) = qb.read_geojson(text)
    messages = _messages(record)
    assert "measurement 'a' = 1000000" in messages and "not a number a double can hold" in messages
    assert "bad-color" in messages and "bad-plane" in messages
    assert obj.measurements == {"b": 1.5}
    assert obj.plane == qb.DEFAULT_PLANE
    assert obj.metadata["k"].startswith("1000000")
    # ints too long to print never break a message
    with pytest.warns(GeoJSONWarning) as record:
        qb.read_geojson({"type": "Feature", "geometry": SQUARE, "properties": {"name": [10**5000]}})
    assert "name <list too large to show> is not text" in _messages(record)


def test_non_finite_unknown_properties_are_written_as_qupath_strings(tmp_path):
    text = (
        '{"type":"Feature","geometry":' + json.dumps(SQUARE) + ',"properties":{"objectType":"annotation",'
        '"score":NaN,"x":[Infinity]}}'
    )
    with pytest.warns(GeoJSONWarning, match="bare-nan"):
        objects = qb.read_geojson(text)
    written = json.loads(qb.write_geojson(objects, tmp_path / "o.geojson").read_text())
    assert written["features"][0]["properties"]["score"] == "NaN"
    assert written["features"][0]["properties"]["x"] == ["Infinity"]


# ---------------------------------------------------------------- files and encodings


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"II*\x00\x08\x00\x00\x00" + bytes(64), "it is a TIFF image"),
     (b"\x89PNG\r\n\x1a\n" + bytes(64), "it is a PNG image"),
     (b"\xff\xd8\xff\xe0" + bytes(64), "it is a JPEG image"), (b"%PDF-1.7\n\xe2\xe3", "it is a PDF document"),
     (bytes(range(256)), "it holds NUL bytes"), (b'{"a": "\xe9t\xe9"}', "byte 7 is not UTF-8")],
)  # fmt: skip
def test_binary_files_are_not_geojson_text(tmp_path, payload, kind):
    path = tmp_path / "labels.geojson"
    path.write_bytes(payload)
    with pytest.raises(GeoJSONError, match=rf"labels\.geojson: not a GeoJSON text file \({kind}\)"):
        qb.read_geojson(path)
    assert "not a GeoJSON text file" in qb.validate_geojson(path).fatal


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_read_with_a_warning(tmp_path, encoding):
    path = tmp_path / "wide.geojson"
    path.write_bytes(json.dumps(_fc(SQUARE, name="Gewebe Ä")).encode(encoding))
    with pytest.warns(GeoJSONWarning, match=rf"wide\.geojson: 1 × not-utf8: {encoding.upper()} text: read"):
        (obj,) = qb.read_geojson(path)
    assert obj.name == "Gewebe Ä"
    assert not qb.validate_geojson(path).is_valid  # QuPath reads UTF-8 only


def test_utf8_bom_crlf_and_blank_files(tmp_path):
    path = tmp_path / "a.geojson"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps(_fc(SQUARE), indent=1).replace("\n", "\r\n").encode())
    with pytest.warns(GeoJSONWarning, match="UTF-8 byte-order mark"):
        assert len(qb.read_geojson(path)) == 1
    path.write_bytes(b"")
    with pytest.raises(GeoJSONError, match=r"a\.geojson is empty"):
        qb.read_geojson(path)
    path.write_bytes(b" \r\n\t")
    with pytest.raises(GeoJSONError, match=r"a\.geojson holds only blank space"):
        qb.read_geojson(path)
    path.write_bytes(b'{\r\n"type":\r\n"FeatureCollection",\r\n"features": [,]}')
    with pytest.raises(GeoJSONError, match="line 4, column 14"):
        qb.read_geojson(path)


def test_folders_links_and_odd_sources(tmp_path):
    with pytest.raises(GeoJSONError, match="is a folder, not a GeoJSON file"):
        qb.read_geojson(tmp_path)
    assert "is a folder" in qb.validate_geojson(tmp_path).fatal
    loop = tmp_path / "loop.geojson"
    loop.symlink_to(loop)
    with pytest.raises(qb.QuPathFileNotFoundError, match="broken link"):
        qb.read_geojson(loop)
    with pytest.raises(qb.QuPathFileNotFoundError):
        qb.read_geojson("x" * 5000 + ".geojson")
    with pytest.raises(GeoJSONError, match="cannot read GeoJSON from NoneType"):
        qb.read_geojson(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- archives


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setenv(MAX_MB_ENV, "1")


def test_gzip_bomb_stops_at_the_limit_while_inflating(tmp_path, small_limit):
    path = tmp_path / "bomb.geojson.gz"
    path.write_bytes(gzip.compress(b"[" + b" " * (64 << 20) + b"]", compresslevel=1))
    with pytest.raises(
        GeoJSONError, match=rf"more than 1 MB of GeoJSON text, over the 1 MB limit.*{MAX_MB_ENV}="
    ):
        qb.read_geojson(path)


def test_zip_bomb_is_refused_from_its_declared_size_and_while_inflating(tmp_path, small_limit):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.geojson", b" " * (8 << 20))
    with pytest.raises(GeoJSONError, match=r"entry a\.geojson: 8 MB of GeoJSON text, over the 1 MB limit"):
        qb.read_geojson(path)
    # an entry whose header lies about its size is still cut off while inflating
    blob = bytearray(path.read_bytes())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = blob.find(header)
        size_at = at + (22 if header == b"PK\x03\x04" else 24)
        blob[size_at : size_at + 4] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(blob))
    with pytest.raises(GeoJSONError, match=r"damaged \.zip archive|over the 1 MB limit"):
        qb.read_geojson(path)


def test_plain_file_over_the_limit_and_a_bad_limit(tmp_path, monkeypatch, small_limit):
    path = tmp_path / "big.geojson"
    path.write_bytes(b" " * (2 << 20) + b"[]")
    with pytest.raises(GeoJSONError, match=r"big\.geojson: 2 MB of GeoJSON text, over the 1 MB limit"):
        qb.read_geojson(path)
    monkeypatch.setenv(MAX_MB_ENV, "4")
    with pytest.warns(GeoJSONWarning, match="holds no features"):
        assert qb.read_geojson(path) == []
    monkeypatch.setenv(MAX_MB_ENV, "-3")
    with pytest.raises(GeoJSONError, match=rf"{MAX_MB_ENV}='-3' is not a size in megabytes"):
        qb.read_geojson(path)


def test_zip_members_many_unsafe_empty_and_hidden(tmp_path):
    path = tmp_path / "a.zip"
    good = json.dumps(_fc(SQUARE))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__MACOSX/._a.geojson", b"\x00\x05\x16\x07")
        archive.writestr("../up.geojson", "{}")
        for i in range(300):
            archive.writestr(f"d/{i:03d}.geojson", good)
    with pytest.warns(GeoJSONWarning) as record:
        assert len(qb.read_geojson(path)) == 1
    messages = _messages(record)
    assert "1 zip entry name(s) point outside the archive ('../up.geojson')" in messages
    assert "zip has 300 GeoJSON entries: read 'd/000.geojson'" in messages
    with zipfile.ZipFile(path, "w"):
        pass
    with pytest.raises(GeoJSONError, match="the zip archive is empty"):
        qb.read_geojson(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("C:/evil.geojson", good)
        archive.writestr("/abs.json", good)
    with pytest.raises(GeoJSONError, match=r"no usable \.geojson or \.json entry"):
        qb.read_geojson(path)


def test_archives_under_the_wrong_name_are_read_and_noted(tmp_path):
    path = tmp_path / "a.geojson"
    path.write_bytes(gzip.compress(json.dumps(_fc(SQUARE)).encode()))
    with pytest.warns(GeoJSONWarning, match=r"a gzip archive named \.geojson"):
        assert len(qb.read_geojson(path)) == 1
    assert not qb.validate_geojson(path).is_valid


# ---------------------------------------------------------------- containers and features


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", "the top level is a JSON number 42"), ("null", "the top level is JSON null"),
     ('"x"', "the top level is a JSON string 'x'"), ("[1]", "array item 0 is a JSON number 1"),
     ('{"name": 1}', r"without a GeoJSON 'type' \(keys \['name'\]\)"),
     ('{"type": "FeatureCollection"}', "FeatureCollection with no 'features' list"),
     ('{"type": "FeatureCollection", "features": 3}', "FeatureCollection with 'features' = 3"),
     ('[[{"type": "Topology"}]]', "array item 0, item 0 is a JSON object of type 'Topology'"),
     ('{"pathClasses": []}', r"class list \(classes\.json\), not GeoJSON objects")],
)  # fmt: skip
def test_valid_json_that_is_not_geojson(tmp_path, value, expected):
    path = tmp_path / "x.json"
    path.write_text(value)
    with pytest.raises(GeoJSONError, match=expected):
        qb.read_geojson(path)
    assert expected.split(" ")[0].strip("\\") in qb.validate_geojson(path).fatal


def test_duplicate_ids_keep_the_first_and_renew_the_rest(tmp_path):
    same = str(uuid.uuid4())
    features = [
        {"type": "Feature", "id": same, "geometry": SQUARE, "properties": {"objectType": "annotation"}}
    ] * 3
    with pytest.warns(
        GeoJSONWarning, match=rf"2 × duplicate-id \(features 1, 2\): id {same} is also the id of feature 0"
    ):
        objects = qb.read_geojson(json.dumps(features))
    assert [o.id for o in objects] == [same, None, None]
    written = json.loads(qb.write_geojson(objects, tmp_path / "o.geojson").read_text())
    ids = [f["id"] for f in written["features"]]
    assert ids[0] == same and len(set(ids)) == 3


def test_large_text_properties_are_noted():
    feature = {
        "type": "Feature",
        "geometry": SQUARE,
        "properties": {"objectType": "annotation", "png": "A" * (2 << 20)},
    }
    with pytest.warns(GeoJSONWarning, match=r"property 'png' holds 2\.0 MB of text: kept"):
        (obj,) = qb.read_geojson(feature)
    assert len(obj.extra["png"]) == 2 << 20


def test_warnings_are_one_line_each_and_messages_stay_short():
    bad = {"objectType": "annotation", "classification": {"names": ["x" * 10_000]}, "name": {"a\nb": 1}}
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [4, 4], [4, 0], [0, 4], [0, 0]]]}
    with pytest.warns(GeoJSONWarning) as record:
        qb.read_geojson({"type": "Feature", "geometry": geometry, "properties": bad})
    assert len(record) >= 3
    for warning in record:
        assert "\n" not in str(warning.message)
        assert len(str(warning.message)) < 400


def test_repaired_polygons_are_valid_even_when_parts_touch():
    # make_valid can give polygons sharing an edge, which one MultiPolygon may not hold
    parts = [shapely.box(0, 0, 10, 5), shapely.box(0, 5, 10, 10)]
    fixed = qb.repair_polygonal(shapely.GeometryCollection(parts))
    assert fixed.is_valid and fixed.area == 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qb.to_geojson([qb.PathObject(fixed)])  # nothing left to repair on write


# ---------------------------------------------------------------- label images


def test_objects_off_the_label_image_are_refused_when_checked():
    far = [qb.PathObject(shapely.box(10_000, 10_000, 12_000, 12_000))]
    assert not qb.objects_to_labels(far, (64, 64)).any()  # "clip" (tiles, crops): silent by design
    expected = (
        r"none of the 1 objects lies on the label image: the objects span x 10,000\.\.12,000, "
        r"y 10,000\.\.12,000 \(level-0 px\); the image covers x 0\.\.256, y 0\.\.256 "
        r"\(64 x 64 px at downsample 4\)"
    )
    with pytest.raises(qb.LabelImageError, match=expected):
        qb.objects_to_labels(far, (64, 64), downsample=4, outside="check")
    near = [qb.PathObject(shapely.box(0, 0, 10, 10)), *far]
    with pytest.warns(GeoJSONWarning, match="1 of 2 objects lie wholly or partly outside the label image"):
        labels = qb.objects_to_labels(near, (64, 64), outside="check")
    assert labels.sum() == 100
    with pytest.raises(qb.LabelImageError, match="outside must be"):
        qb.objects_to_labels(near, (4, 4), outside="warn")


def test_a_label_image_too_big_for_memory_is_a_clear_error():
    with pytest.raises(qb.MemoryLimitError, match=r"label image needs .* GiB, more memory than is free"):
        qb.objects_to_labels([], (2**40, 2**40))


# ---------------------------------------------------------------- project files


def test_project_files_that_are_binary_deep_or_malformed(tmp_path):
    path = tmp_path / "classes.json"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(qb.ProjectError, match="not a QuPath JSON text file"):
        qb.read_class_list(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(qb.ProjectError, match="nested too deeply"):
        qb.read_class_list(path)
    path.write_text("[1, 2]")
    with pytest.raises(qb.ProjectError, match=r"expected \{'pathClasses': \[...\]\}, got \[1, 2\]"):
        qb.read_class_list(path)
    project = tmp_path / "project.qpproj"
    project.write_text(json.dumps({"images": ["not an entry", {"serverBuilder": 5}]}))
    with pytest.raises(qb.ProjectError, match="image entry 0 is malformed"):
        qb.read_project(project)
    (tmp_path / "classifiers" / "classes.json").mkdir(parents=True)
    with pytest.raises(qb.ProjectError, match="is a folder"):
        qb.read_class_list(tmp_path)
