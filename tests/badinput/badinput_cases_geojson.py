"""Hostile and broken GeoJSON given to ``histo qupath convert`` and ``histo tiles --annotations``.

Every input is made here at run time (no committed files): absurd nesting, numbers
with hundreds or thousands of digits, NaN/Infinity, booleans and text as coordinates,
binary files, other encodings, archives that inflate without end or hold odd names,
JSON that is not GeoJSON, broken geometries, duplicated ids, huge properties, and
annotations that miss the slide.  ``histo qupath validate`` reports on stdout, so its
answers to the same inputs are checked in ``tests/qupath_bridge/test_qupath_hostile.py``.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from badinput_corpus import Case

SQUARE = [[[0, 0], [40, 0], [40, 40], [0, 40], [0, 0]]]
BOWTIE = [[[0, 0], [40, 40], [40, 0], [0, 40], [0, 0]]]
UUID = "6f1c8a52-3f0e-4d3c-9a57-8d0f6a1b2c3d"
MAX_MB = {"QUPATH_BRIDGE_MAX_GEOJSON_MB": "8"}  # a small inflate limit: bombs stay cheap to make


def feature(geometry: Any, **props: Any) -> dict:
    """A QuPath 0.4+ annotation feature; ``props`` add to or replace its properties."""
    return {"type": "Feature", "geometry": geometry, "properties": {"objectType": "annotation", **props}}


def polygon(rings: Any = SQUARE) -> dict:
    return {"type": "Polygon", "coordinates": rings}


def fc(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def point_text(x: str, y: str = "5") -> str:
    """A FeatureCollection text whose one point has the coordinate tokens given verbatim."""
    return (
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"objectType":"annotation"},'
        f'"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}]}}'
    )


def write(name: str, content: str | bytes | dict | list) -> Callable[[Path], None]:
    """A setup that writes ``content`` (text as UTF-8, JSON values dumped) to ``name``."""

    def setup(folder: Path) -> None:
        data = content if isinstance(content, str | bytes) else json.dumps(content)
        (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        for one in setups:
            one(folder)

    return setup


def convert(name: str, *extra: str) -> list[str]:
    return ["qupath", "convert", name, "out.tif", *extra]


def error(what: str, content: Any, expect: str, name: str = "bad.geojson", **kw: Any) -> Case:
    return Case(f"geojson/convert/{what}", convert(name), expect, write(name, content), **kw)


def handled(what: str, content: Any, expect: str, name: str = "odd.geojson", **kw: Any) -> Case:
    return Case(f"geojson/convert/{what}", convert(name), expect, write(name, content), kind="handled", **kw)


# ---------------------------------------------------------------- bytes made at run time


def tiff_bytes() -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, np.zeros((8, 8), np.uint8))
    return out.getvalue()


def png_bytes() -> bytes:
    import imagecodecs

    return bytes(imagecodecs.png_encode(np.zeros((8, 8), np.uint8)))


def random_bytes(n: int = 4096) -> bytes:
    return np.random.default_rng(12).integers(0, 256, n, dtype=np.uint8).tobytes()


def gz(content: str | bytes) -> bytes:
    return gzip.compress(content.encode() if isinstance(content, str) else content, compresslevel=1)


def zipped(entries: dict[str, str | bytes]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        with zipfile.ZipFile(folder / "bad.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries.items():
                archive.writestr(name, data)

    return setup


def many_members(folder: Path) -> None:
    with zipfile.ZipFile(folder / "bad.zip", "w", zipfile.ZIP_STORED) as archive:
        for i in range(2000):
            archive.writestr(f"part{i:04d}.geojson", json.dumps(fc(feature(polygon()))))


def zip_bomb(folder: Path) -> None:
    with zipfile.ZipFile(folder / "bad.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("objects.geojson", "w") as fh:
            block = b" " * (1 << 20)
            for _ in range(24):
                fh.write(block)


def deep_children(levels: int) -> dict:
    node = feature(polygon())
    for _ in range(levels):
        node = feature(polygon(), childObjects=[node])
    return fc(node)


def deep_collection(levels: int) -> str:
    return ('{"type":"GeometryCollection","geometries":[' * levels) + ("]}" * levels)


# ---------------------------------------------------------------- small slide for histo tiles


def slide(folder: Path) -> None:
    """A 512 x 512 px RGB TIFF with pink 'tissue' in x, y 64..448 (µm/px given on the command line)."""
    import tifffile

    rng = np.random.default_rng(0)
    image = np.full((512, 512, 3), 240, np.uint8)
    image[64:448, 64:448] = (200, 120, 170)
    image[64:448, 64:448] += rng.integers(0, 30, (384, 384, 1), dtype=np.uint8)
    tifffile.imwrite(folder / "slide.tif", image, photometric="rgb", tile=(256, 256))


def box(x0: float, y0: float, x1: float, y1: float) -> dict:
    return polygon([[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]])


TILES = ["tiles", "slide.tif", "--slide-mpp", "0.5", "--mpp", "0.5", "--tile-px", "64", "--workers", "1"]
TUMOR = {"classification": {"name": "Tumor", "color": [200, 0, 0]}}


def tiles_case(what: str, content: Any, expect: str, kind: str = "error", **kw: Any) -> Case:
    name = "ann.geojson" if not isinstance(content, bytes) else "ann.bin"
    return Case(
        f"geojson/tiles/{what}",
        [*TILES, "--annotations", name, "--out", "out"],
        expect,
        both(slide, write(name, content)),
        kind=kind,  # type: ignore[arg-type]
        **kw,
    )


def earlier_output(folder: Path) -> None:
    (folder / "out").mkdir()
    (folder / "out" / "tiles.csv").write_text("slide,x,y\nslide,0,0\n")


# ---------------------------------------------------------------- the cases

CASES: list[Case] = [
    # nesting
    error("deep-array-nesting", "[" * 100_000 + "]" * 100_000, r"nested 100,000\+ levels deep.*at most 256"),
    error("deep-object-nesting", '{"a":' * 100_000 + "1" + "}" * 100_000, r"nested .* levels deep"),
    error("deep-geometry-collection", deep_collection(5_000), r"nested .* levels deep"),
    error("deep-child-objects", deep_children(120), r"nested .* levels deep"),
    # numbers
    error(
        "int-400-digits",
        point_text("9" * 400),
        r"feature 0: Point: coordinate 9+\.\.\. \(400 digits\) is beyond",
    ),
    error("int-5000-digits", point_text("9" * 5000), r"number with 5,000 digits at line 1, column \d+"),
    error("negative-int-5000-digits", point_text("1", "-" + "7" * 5000), r"5,000 digits at line 1, column"),
    error("nan-coordinate", point_text("NaN"), r"feature 0: Point: coordinate nan is not finite"),
    error("infinity-coordinate", point_text("-Infinity"), r"coordinate -inf is not finite"),
    error("1e400-coordinate", point_text("1e400"), r"coordinate inf is not finite"),
    error("1e12-coordinate", point_text("1e12"), r"beyond any image size"),
    error("bool-among-numbers", point_text("true"), r"coordinate true is a boolean, not a number"),
    error("bools-only", point_text("true", "false"), r"is a boolean, not a number"),
    error("string-coordinate", point_text('"12"'), r"coordinate '12' is text, not a number"),
    error("null-coordinate", point_text("null"), r"coordinate null is not a number"),
    error("object-coordinate", point_text("{}"), r"coordinate \{\} is not a number"),
    handled(
        "int-400-digits-measurement",
        fc(feature(polygon(), measurements={"Area": 10**400})),
        r"measurement 'Area' = 9?1?0+\.\.\. is not a number a double can hold",
    ),
    handled("plane-int-400-digits", fc(feature({**polygon(), "plane": {"c": 10**400}})), r"bad-plane"),
    handled(
        "plane-infinity",
        point_text("1").replace('"coordinates"', '"plane":{"z":1e999},"coordinates"'),
        r"bad-plane",
    ),
    handled(
        "bare-nan-measurement",
        json.dumps(fc(feature(polygon(), measurements={"a": float("nan")}))),
        r"bare-nan",
    ),
    # not text
    error("random-binary", random_bytes(), r"not a GeoJSON text file"),
    error("tiff-named-geojson", tiff_bytes(), r"not a GeoJSON text file \(it is a TIFF image\)"),
    error("png-named-geojson", png_bytes(), r"not a GeoJSON text file \(it is a PNG image\)"),
    error(
        "latin1-text",
        json.dumps(fc(feature(polygon(), name="Gewebe ÄÖÜ"))).replace("\\u00c4", "Ä").encode("latin-1"),
        r"not a GeoJSON text file \(byte [\d,]+ is not UTF-8\)",
    ),
    error(
        "utf16-without-bom",
        json.dumps(fc(feature(polygon()))).encode("utf-16-le"),
        r"not a GeoJSON text file",
    ),
    error("bom-then-binary", codecs.BOM_UTF16_LE + random_bytes(64), r"not a GeoJSON text file"),
    handled("utf16-with-bom", json.dumps(fc(feature(polygon()))).encode("utf-16"), r"UTF-16 text: read"),
    handled("utf32-with-bom", json.dumps(fc(feature(polygon()))).encode("utf-32"), r"UTF-32 text: read"),
    handled(
        "utf8-bom", codecs.BOM_UTF8 + json.dumps(fc(feature(polygon()))).encode(), r"UTF-8 byte-order mark"
    ),
    error(
        "crlf-error-on-line-3",
        '{\r\n"type": "FeatureCollection",\r\n"features": [,]\r\n}\r\n',
        r"line 3, column",
    ),
    error("empty-file", b"", r"bad\.geojson is empty"),
    error("blank-file", "  \r\n\t\n", r"holds only blank space"),
    error("truncated", json.dumps(fc(feature(polygon())))[:-7], r"not valid JSON at line 1.*truncated"),
    Case(
        "geojson/convert/directory",
        convert("folder.geojson"),
        r"directory",
        lambda d: (d / "folder.geojson").mkdir(),
    ),
    error(
        "qpdata-named-json",
        b"\xac\xed\x00\x05sr\x00",
        r"not a GeoJSON text file \(it is Java-serialised data",
        name="data.json",
    ),
    # valid JSON, not GeoJSON
    error("top-level-number", "42", r"top level is a JSON number 42, not GeoJSON"),
    error("top-level-string", '"objects"', r"top level is a JSON string 'objects'"),
    error("top-level-null", "null", r"top level is JSON null, not GeoJSON"),
    error("top-level-true", "true", r"top level is a JSON boolean true, not GeoJSON"),
    error("array-of-numbers", "[1, 2, 3]", r"array item 0 is a JSON number 1, not GeoJSON"),
    error(
        "object-without-type", {"name": "slide 1", "version": 3}, r"without a GeoJSON 'type' \(keys \['name'"
    ),
    error("topojson", {"type": "Topology", "objects": {}}, r"JSON object of type 'Topology', not GeoJSON"),
    error(
        "class-list-as-geojson",
        {"pathClasses": [{"name": "Tumor", "color": -3670016}]},
        r"QuPath class or class list \(classes\.json\), not GeoJSON objects",
    ),
    error(
        "collection-without-features",
        {"type": "FeatureCollection"},
        r"FeatureCollection with no 'features' list",
    ),
    error("features-not-a-list", {"type": "FeatureCollection", "features": {}}, r"'features' = \{\}"),
    # geometries
    error(
        "unknown-geometry-type",
        fc(feature({"type": "Circle", "coordinates": [1, 2]})),
        r"unknown geometry type 'Circle'",
    ),
    error(
        "lowercase-geometry-type",
        fc(feature({"type": "polygon", "coordinates": SQUARE})),
        r"unknown geometry type 'polygon'",
    ),
    error("feature-without-geometry", fc({"type": "Feature", "properties": {}}), r"feature 0: no geometry;"),
    error(
        "point-without-position",
        fc(feature({"type": "Point", "coordinates": []})),
        r"needs at least 1 positions, got 0",
    ),
    error(
        "line-with-one-point",
        fc(feature({"type": "LineString", "coordinates": [[1, 1]]})),
        r"needs at least 2 positions, got 1",
    ),
    error(
        "ragged-coordinates",
        fc(feature({"type": "LineString", "coordinates": [[1, 1], [2]]})),
        r"expected \[x, y\] positions",
    ),
    error(
        "four-d-coordinates",
        fc(feature({"type": "LineString", "coordinates": [[1, 1, 1, 1], [2, 2, 2, 2]]})),
        r"expected \[x, y\] positions, got an array of shape \(2, 4\)",
    ),
    handled(
        "polygon-with-three-positions",
        fc(feature(polygon()), feature(polygon([[[0, 0], [5, 5], [0, 0]]]))),
        r"read 1 of 2 features: 1 skipped",
    ),
    handled(
        "open-ring", fc(feature(polygon([[[0, 0], [40, 0], [40, 40], [0, 40]]]))), r"open-ring \(features 0\)"
    ),
    handled(
        "self-intersection",
        fc(feature(polygon()), feature(polygon(BOWTIE))),
        r"1 × invalid-polygon \(features 1\): invalid polygon \(Self-intersection",
    ),
    handled(
        "3d-coordinates",
        fc(feature({"type": "LineString", "coordinates": [[0, 0, 1], [9, 9, 1]]})),
        r"3d-coordinates",
    ),
    # properties
    handled(
        "huge-property-blob",
        fc(feature(polygon(), blob="x" * (3 << 20))),
        r"property 'blob' holds 3\.0 MB of text",
    ),
    handled(
        "duplicate-ids",
        [{"id": UUID, **feature(polygon())}, {"id": UUID, **feature(polygon())}],
        r"duplicate-id \(features 1\): id 6f1c8a52.* is also the id of feature 0",
    ),
    handled("non-uuid-id", [{"id": 17, **feature(polygon())}], r"id 17 is not a UUID"),
    handled("classification-number", fc(feature(polygon(), classification=5)), r"classification 5 ignored"),
    handled(
        "classification-list",
        fc(feature(polygon(), classification=["Tumor"])),
        r"classification \['Tumor'\] ignored",
    ),
    handled(
        "classification-names-not-text",
        fc(feature(polygon(), classification={"names": [1, 2], "color": [1, 2, 3]})),
        r"has no usable 'name' or 'names'",
    ),
    handled(
        "classification-without-color",
        fc(feature(polygon(), classification={"name": "Tumor"})),
        r"'Tumor' has no 'color'",
    ),
    handled(
        "object-type-uppercase",
        fc(feature(polygon(), objectType="ANNOTATION")),
        r"objectType 'ANNOTATION' is not one of",
    ),
    handled(
        "repeated-keys",
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},'
        '"properties":{"objectType":"annotation","name":"a","name":"b"}}',
        r"repeated JSON key",
    ),
    handled("empty-feature-collection", fc(), r"holds no features"),
    handled(
        "every-feature-skipped",
        fc(feature(polygon([[[0, 0], [1, 1], [2, 2], [0, 0]]]))),
        r"read 0 of 1 features",
    ),
    # archives
    Case(
        "geojson/convert/gzip-bomb",
        convert("bad.geojson.gz"),
        r"more than 8 MB .* limit .*QUPATH_BRIDGE_MAX_GEOJSON_MB",
        write("bad.geojson.gz", gz(b" " * (24 << 20))),
        env=MAX_MB,
    ),
    Case(
        "geojson/convert/zip-bomb",
        convert("bad.zip"),
        r"over the 8 MB limit.*QUPATH_BRIDGE_MAX_GEOJSON_MB=",
        zip_bomb,
        env=MAX_MB,
    ),
    Case(
        "geojson/convert/plain-file-over-limit",
        convert("big.geojson"),
        r"big\.geojson: 9 MB of GeoJSON text, over the 8 MB limit",
        write("big.geojson", " " * (9 << 20) + "[]"),
        env=MAX_MB,
    ),
    Case(
        "geojson/convert/limit-not-a-number",
        convert("ok.geojson"),
        r"QUPATH_BRIDGE_MAX_GEOJSON_MB='lots' is not a size",
        write("ok.geojson", fc(feature(polygon()))),
        env={"QUPATH_BRIDGE_MAX_GEOJSON_MB": "lots"},
    ),
    Case(
        "geojson/convert/zip-many-members",
        convert("bad.zip"),
        r"zip has 2000 GeoJSON entries: read 'part0000\.geojson'",
        many_members,
        kind="handled",
    ),
    Case(
        "geojson/convert/zip-slip-only",
        convert("bad.zip"),
        r"no usable \.geojson or \.json entry",
        zipped({"../../evil.geojson": json.dumps(fc(feature(polygon())))}),
    ),
    Case(
        "geojson/convert/zip-slip-beside-good",
        convert("bad.zip"),
        r"point outside the archive",
        zipped({"/etc/evil.geojson": "{}", "objects.geojson": json.dumps(fc(feature(polygon())))}),
        kind="handled",
    ),
    Case("geojson/convert/zip-empty", convert("bad.zip"), r"the zip archive is empty", zipped({})),
    Case(
        "geojson/convert/zip-without-geojson",
        convert("bad.zip"),
        r"no usable .* \(entries: \['readme\.txt'\]\)",
        zipped({"readme.txt": "hello"}),
    ),
    Case(
        "geojson/convert/zip-only-macos-fork",
        convert("bad.zip"),
        r"no usable \.geojson",
        zipped({"__MACOSX/._objects.geojson": random_bytes(200)}),
    ),
    Case(
        "geojson/convert/zip-binary-entry",
        convert("bad.zip"),
        r"not a GeoJSON text file",
        zipped({"objects.geojson": random_bytes()}),
    ),
    Case(
        "geojson/convert/gz-damaged",
        convert("bad.geojson.gz"),
        r"damaged \.gz archive",
        write("bad.geojson.gz", gz(json.dumps(fc(feature(polygon()))))[:30]),
    ),
    Case(
        "geojson/convert/gz-of-binary",
        convert("bad.geojson.gz"),
        r"not a GeoJSON text file \(it is a PNG image\)",
        write("bad.geojson.gz", gz(png_bytes())),
    ),
    handled(
        "gzip-named-geojson",
        gz(json.dumps(fc(feature(polygon())))),
        r"a gzip archive named \.geojson: read it",
    ),
    Case(
        "geojson/convert/zip-named-json",
        convert("objects.json"),
        r"a zip archive named \.json",
        lambda d: (
            zipped({"a.geojson": json.dumps(fc(feature(polygon())))})(d),
            (d / "bad.zip").rename(d / "objects.json"),
        ),
        kind="handled",
    ),
    # the label image and the objects do not meet
    Case(
        "geojson/convert/objects-off-the-image",
        convert("far.geojson", "--shape", "64x64"),
        r"none of the 1 objects lies on the label image: the objects span x 10,000\.\.12,000",
        write("far.geojson", fc(feature(box(10_000, 10_000, 12_000, 12_000)))),
    ),
    Case(
        "geojson/convert/objects-partly-off-the-image",
        convert("part.geojson", "--shape", "64x64"),
        r"1 of 2 objects lie wholly or partly outside the label image",
        write("part.geojson", fc(feature(box(0, 0, 32, 32)), feature(box(48, 48, 200, 200)))),
        kind="handled",
    ),
    Case(
        "geojson/convert/objects-at-negative-coordinates",
        convert("neg.geojson"),
        r"none of the 1 objects lies on the label image",
        write("neg.geojson", fc(feature(box(-500, -500, -100, -100)))),
    ),
    # histo tiles --annotations: the same reader, the same errors, and the slide's bounds
    tiles_case(
        "annotations-off-the-slide",
        fc(feature(box(10_000, 10_000, 12_000, 12_000), **TUMOR)),
        r"none of the 1 annotation areas in ann\.geojson lies on slide\.tif: .*x 10,000\.\.12,000"
        r".*x 0\.\.512",
    ),
    tiles_case(
        "annotations-partly-off-the-slide",
        fc(feature(box(100, 100, 400, 400), **TUMOR), feature(box(300, 300, 900, 900), **TUMOR)),
        r"1 of 2 annotation areas in ann\.geojson reach beyond slide\.tif",
        kind="handled",
    ),
    tiles_case(
        "unknown-geometry-type",
        fc(feature({"type": "Circle", "coordinates": [1, 2]})),
        r"ann\.geojson: feature 0: unknown geometry type 'Circle'",
    ),
    tiles_case("binary-annotations", random_bytes(), r"ann\.bin: not a GeoJSON text file"),
    tiles_case("deep-nesting", "[" * 50_000 + "]" * 50_000, r"nested 50,000\+ levels deep"),
    tiles_case("int-5000-digits", point_text("9" * 5000), r"5,000 digits at line 1"),
    tiles_case(
        "only-detections",
        fc({**feature(box(100, 100, 400, 400)), "properties": {"objectType": "detection"}}),
        r"no annotation areas to keep tiles in \(it holds 1 objects: 1 detection\)",
    ),
    tiles_case(
        "only-points",
        fc(feature({"type": "MultiPoint", "coordinates": [[100, 100], [200, 200]]})),
        r"no annotation areas .*1 annotation MultiPoint",
    ),
    Case(
        "geojson/tiles/qpdata",
        [*TILES, "--annotations", "data.qpdata", "--out", "out"],
        r"data\.qpdata is QuPath's Java-serialised image data, not GeoJSON: export the objects",
        both(slide, write("data.qpdata", b"\xac\xed\x00\x05sr\x00")),
    ),
    tiles_case("empty-collection", fc(), r"no annotation areas to keep tiles in \(it holds no objects\)"),
    tiles_case(
        "class-name-climbs-out",
        fc(feature(box(100, 100, 400, 400), classification={"name": "../../evil", "color": [1, 2, 3]})),
        r"class '\.\./\.\./evil' cannot be a folder name",
    ),
    tiles_case(
        "self-intersection",
        fc(feature(polygon([[[100, 100], [400, 400], [400, 100], [100, 400], [100, 100]]]), **TUMOR)),
        r"invalid-polygon \(features 0\)",
        kind="handled",
    ),
    Case(
        "geojson/tiles/bad-annotations-keep-earlier-output",
        [*TILES, "--annotations", "ann.geojson", "--out", "out"],
        r"unknown geometry type 'Circle'",
        both(slide, earlier_output, write("ann.geojson", fc(feature({"type": "Circle"})))),
        keep=("out/tiles.csv",),
    ),
]
