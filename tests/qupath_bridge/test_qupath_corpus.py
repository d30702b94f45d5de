"""Every file of the real QuPath corpus in ../shared/data/qupath_geojson is read, and round-trips.

The expected values come from the files themselves (see their MANIFEST.md), so a reader
that drops a hole, a name, a class colour or a feature fails here.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import shapely
from conftest import shared_file

import qupath_bridge as qb
from qupath_bridge import GeoJSONWarning, ObjectType
from qupath_bridge.geometry import polygonal_parts

CORPUS = "qupath_geojson"

# file -> (layout, container, geometry types, holes, classes, names)
GEOJSON = {
    "qp03_napari_geojson_qp_all_shapes.geojson": (
        "0.3", "FeatureCollection", {"Polygon": 3, "MultiPoint": 1, "Point": 1, "LineString": 2}, 0, {}, [],
    ),
    "qp04_histoqc_holed_single_feature.geojson": ("0.4+", "Feature", {"Polygon": 1}, 1, {}, []),
    "qp05_dlup_qupath05.geojson": ("0.4+", "FeatureCollection", {"Polygon": 3}, 0, {}, ["UT", "I", "I"]),
    "qp06_coscialab_td01_points_polygons.geojson": (
        "0.4+", "FeatureCollection", {"Polygon": 6, "Point": 3}, 0,
        {"class_1": (3, 128, 17), "class_2": (255, 0, 255)}, ["calib1", "calib2", "calib3"],
    ),
    "qp_core_polygon_geometry.geojson": ("geometry", "geometry", {"MultiPolygon": 1}, 26, {}, []),
    "foreign_dsa_large_image_sample.geojson": ("foreign", "FeatureCollection", {"Polygon": 10}, 0, {}, []),
    "foreign_napari_wsi_annotations.json": (
        "foreign", "FeatureCollection", {"Point": 1, "LineString": 1, "Polygon": 1}, 0, {}, [],
    ),
    "foreign_napari_geojson_polygon_with_hole.geojson": (
        "foreign", "FeatureCollection", {"Polygon": 1}, 1, {}, ["polygon-with-hole"],
    ),
    "foreign_napari_geojson_xyz.geojson": (
        "foreign", "FeatureCollection", {"Point": 2, "LineString": 1, "Polygon": 1}, 0, {},
        ["point-3d-a", "point-3d-b", "line-3d", "poly-3d"],
    ),
    "foreign_napari_geojson_invalid_feature_list.geojson": (
        "foreign", "array", {"Point": 2}, 0, {}, ["point-a", "point-b"],
    ),
}  # fmt: skip
CLASS_FILES = {
    "qp_core_derived_class.json": (("First", "Second", "Third", "Fourth"), (10, 20, 30)),
    "qp_core_derived_class_legacy.json": (
        ("First-legacy", "Second-legacy", "Third-legacy", "Fourth-legacy"),
        (1, 2, 3),  # colorRGB -16711165 = 0xFF010203: opaque (1, 2, 3)
    ),
}
QUPATH_WRITTEN = [name for name, spec in GEOJSON.items() if spec[0] != "foreign"]


def test_every_corpus_file_is_covered_here(shared_data):
    folder = shared_data / CORPUS
    files = {p.name for p in folder.iterdir() if p.suffix in (".json", ".geojson")}
    assert files == set(GEOJSON) | set(CLASS_FILES), "a corpus file has no test: add it to GEOJSON"
    assert (folder / "qupath_project_sample" / "project.qpproj").is_file()


def _read(name: str) -> list[qb.PathObject]:
    path = shared_file(CORPUS, name)
    if GEOJSON[name][0] == "foreign":
        with pytest.warns(GeoJSONWarning) as record:
            objects = qb.read_geojson(path)
        assert any("no QuPath properties" in str(r.message) for r in record)
        return objects
    return qb.read_geojson(path)  # QuPath's own files read without a single warning


@pytest.mark.parametrize("name", sorted(GEOJSON))
def test_corpus_file_reads_with_everything_it_holds(name):
    layout, container, types, holes, classes, names = GEOJSON[name]
    report = qb.read_geojson_report(shared_file(CORPUS, name))
    assert (report.layout, report.container) == (layout, container)
    objects = _read(name)
    assert Counter(o.geometry.geom_type for o in objects) == Counter(types)
    assert sum(len(p.interiors) for o in objects for p in polygonal_parts(o.geometry)) == holes
    assert all(o.geometry.is_valid for o in objects)
    assert [o.name for o in objects if o.name] == names
    found = {o.class_name: o.classification.color for o in objects if o.classification}
    assert found == classes
    assert all(o.object_type is ObjectType.ANNOTATION for o in objects)


def test_qupath_05_ids_and_object_colours():
    objects = _read("qp05_dlup_qupath05.geojson")
    assert objects[0].id == "6423a977-ffff-48db-affc-cd11632010f0"
    assert [o.color for o in objects] == [(255, 0, 0)] * 3


def test_hole_of_histoqc_export_is_an_interior_ring_with_its_area():
    (obj,) = _read("qp04_histoqc_holed_single_feature.geojson")
    shell = shapely.Polygon(obj.geometry.exterior)
    hole = shapely.Polygon(obj.geometry.interiors[0])
    assert obj.geometry.area == pytest.approx(shell.area - hole.area)
    assert shell.area == (13369 - 10098) * (19491 - 16763)


def test_foreign_3d_coordinates_warn_and_keep_xy():
    path = shared_file(CORPUS, "foreign_napari_geojson_xyz.geojson")
    with pytest.warns(GeoJSONWarning) as record:
        objects = qb.read_geojson(path)
    assert "4 × 3d-coordinates (features 0, 1, 2, 3)" in "\n".join(str(r.message) for r in record)
    assert objects[0].geometry.coords[0] == (10.0, 20.0)
    assert not objects[0].geometry.has_z


def test_dsa_properties_are_kept_not_dropped():
    objects = _read("foreign_dsa_large_image_sample.geojson")
    assert objects[0].extra["lineColor"] == "rgb(0,255,0)"
    assert objects[0].extra["type"] == "polyline"


@pytest.mark.parametrize("name", QUPATH_WRITTEN)
@pytest.mark.parametrize("layout", ["0.4", "0.3"])
def test_qupath_file_round_trips(name, layout, tmp_path):
    before = _read(name)
    out = qb.write_geojson(before, tmp_path / "out.geojson", layout=layout)
    after = qb.read_geojson(out)
    assert len(after) == len(before)
    for a, b in zip(before, after):
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=0)  # vertices, 2 decimals kept
        assert a.geometry.area == b.geometry.area
        assert (a.object_type, a.name, a.color, a.classification) == (
            b.object_type,
            b.name,
            b.color,
            b.classification,
        )
        assert (a.is_locked, a.is_ellipse, a.plane, a.metadata) == (
            b.is_locked,
            b.is_ellipse,
            b.plane,
            b.metadata,
        )
        assert _same_measurements(a.measurements, b.measurements)
        if layout == "0.4":
            assert b.id is not None
            assert a.id in (None, b.id)


def test_ids_made_on_first_write_are_stable_afterwards(tmp_path):
    first = qb.read_geojson(
        qb.write_geojson(_read("qp03_napari_geojson_qp_all_shapes.geojson"), tmp_path / "a.geojson")
    )
    second = qb.read_geojson(qb.write_geojson(first, tmp_path / "b.geojson"))
    assert [o.id for o in first] == [o.id for o in second]
    assert len({o.id for o in first}) == len(first)


@pytest.mark.parametrize(("name", "expected"), sorted(CLASS_FILES.items()))
def test_derived_class_files(name, expected):
    cls = qb.read_classification(shared_file(CORPUS, name))
    assert (cls.names, cls.color) == expected
    assert cls.name == ": ".join(expected[0])


def test_class_json_given_to_read_geojson_says_what_to_use():
    with pytest.raises(qb.GeoJSONError, match=r"a QuPath class or class list .*, not GeoJSON objects"):
        qb.read_geojson(shared_file(CORPUS, "qp_core_derived_class.json"))


def test_project_sample_images_and_classes():
    folder = shared_file(CORPUS, "qupath_project_sample")
    (image,) = qb.read_project(folder / "project.qpproj")
    assert (image.entry_id, image.name, image.width, image.height) == (
        1,
        "TD_01_verysmall_mIF.ome.tif",
        1000,
        1000,
    )
    assert image.downsamples == (1.0,)
    assert image.mpp == pytest.approx(0.34571008852182383)
    assert str(image.path) == "/Volumes/RD_Coscia/Jose/__TestDatasets/TD_01_verysmall_mIF.ome.tif"
    classes = qb.read_class_list(folder)
    assert classes[0] == qb.Classification(("single_cells_demo",), (255, 0, 255))  # -65281 = 0xFFFF00FF
    assert classes[1] == qb.Classification(("circles",), (0, 255, 0))


def test_project_class_list_round_trips_signed_argb(tmp_path):
    source = shared_file(CORPUS, "qupath_project_sample", "classifiers", "classes.json")
    classes = qb.read_class_list(source)
    out = qb.write_class_list(classes, tmp_path / "classes.json")
    assert qb.read_class_list(out) == classes
    import json

    original = json.loads(source.read_text())["pathClasses"]
    assert json.loads(out.read_text())["pathClasses"] == original


def _same_measurements(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)
