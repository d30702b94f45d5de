"""Property-based fuzzing of the GeoJSON reader: it parses or raises QuPathBridgeError, nothing else.

Three sources of input, a few seconds in all:

* random JSON-like values (deep-ish, with huge and non-finite numbers, booleans, text),
  as parsed values and as JSON text;
* real QuPath GeoJSON from ``../shared/data/qupath_geojson`` (generated QuPath-layout
  features when that folder is absent), mutated structurally (a node replaced) or
  byte-wise (bytes flipped, inserted, cut);
* arbitrary bytes.

Whatever is read must also be writable as strict JSON (no NaN leaks into coordinates).
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from typing import Any

import shapely
from conftest import SHARED_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qupath_bridge as qb

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)

_numbers = st.one_of(
    st.integers(-(2**40), 2**40),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 1e308, 1e-320, 0.5]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=12))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["type", "coordinates", "features", "geometry",
                                                            "properties", "geometries", "classification"])),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)  # fmt: skip
_geometry_type = st.sampled_from(
    ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection",
     "Feature", "FeatureCollection", "Circle"]
)  # fmt: skip
_typed = st.fixed_dictionaries({"type": _geometry_type}, optional={"coordinates": _json, "geometries": _json,
                                "geometry": _json, "features": _json, "properties": _json})  # fmt: skip


def _read(source: Any) -> None:
    """Read ``source``; a clear error is fine, anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", qb.GeoJSONWarning)  # messages are tested elsewhere; crashes here
        try:
            objects = qb.read_geojson(source)
        except qb.QuPathBridgeError as exc:
            message = str(exc)
            objects = None
    if objects is None:
        assert message
        assert "\n" not in message  # one line for the CLI
        return
    for obj in objects:
        assert isinstance(obj.geometry, shapely.Geometry)
        assert not obj.geometry.is_empty
    json.dumps(qb.to_geojson(objects), allow_nan=False)
    result = qb.validate_geojson(source)  # never raises
    assert result.report is not None or result.fatal


@FUZZ
@given(value=st.one_of(_json, _typed, st.lists(_typed, max_size=3)))
def test_random_json_values_parse_or_raise_the_bridge_error(value):
    _read(value)
    try:
        text = json.dumps(value)
    except ValueError:  # an int beyond Python's digit limit has no JSON text
        return
    _read(text.encode())


@FUZZ
@given(payload=st.binary(max_size=300))
def test_random_bytes_parse_or_raise_the_bridge_error(payload):
    _read(payload)


@cache
def _corpus() -> tuple[str, ...]:
    """Real QuPath and foreign GeoJSON texts, or generated QuPath-layout features when absent."""
    folder = SHARED_DATA / "qupath_geojson"
    if folder.is_dir():
        texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.geojson"))]
        if texts:
            return tuple(texts)
    square = shapely.Polygon([(0, 0), (40, 0), (40, 40), (0, 40)], [[(8, 8), (24, 8), (24, 24), (8, 24)]])
    objects = [
        qb.PathObject(square, classification=qb.Classification(("Tumor",), (200, 0, 0)),
                      measurements={"Area": 1200.0, "x": math.nan}, name="a"),
        qb.PathObject(shapely.MultiPoint([(1, 2), (3, 4)]), qb.ObjectType.DETECTION),
        qb.PathObject(shapely.LineString([(0, 0), (9, 9)]), metadata={"k": "v"}),
    ]  # fmt: skip
    return (json.dumps(qb.to_geojson(objects)), json.dumps(qb.to_geojson(objects, layout="0.3")))


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every node of a parsed JSON value (bounded: real files have thousands)."""
    out = [path]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return out
    for key, child in items[:8]:
        out.extend(_nodes(child, (*path, key)))
    return out


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@FUZZ
@given(data=st.data())
def test_mutated_qupath_geojson_parses_or_raises_the_bridge_error(data):
    texts = _corpus()
    original = json.loads(data.draw(st.sampled_from(texts), label="file"))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        nodes = _nodes(original)
        path = data.draw(st.sampled_from(nodes), label="node")
        original = _replace(original, path, data.draw(st.one_of(_json, _typed), label="new value"))
    _read(original)
    try:
        _read(json.dumps(original).encode())
    except ValueError:
        pass


@FUZZ
@given(data=st.data())
def test_byte_mutated_qupath_geojson_parses_or_raises_the_bridge_error(data):
    payload = bytearray(data.draw(st.sampled_from(_corpus()), label="file").encode())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, max(0, len(payload) - 1)), label="at")
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]), label="edit")
        if kind == "flip" and payload:
            payload[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "insert":
            payload[at:at] = data.draw(
                st.sampled_from([b"[", b"{", b"]", b"}", b",", b'"', b"\\", b"NaN", b"true", b"9" * 400,
                                 b"\x00", b"\xff", b"1e999", b"-", b"\r\n"]), label="inserted")  # fmt: skip
        elif kind == "delete" and payload:
            del payload[at : at + data.draw(st.integers(1, 16), label="length")]
        elif kind == "cut":
            del payload[at:]
    _read(bytes(payload))
