"""Objects ⇄ label images: half-pixel convention, holes, levels, labels → objects → labels identity."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import qupath_bridge as qb
from qupath_bridge import GeoJSONWarning, LabelImageError, PathObject
from qupath_bridge import rasterize as rasterize_module


# ---------------------------------------------------------------- the one x/y ⇄ row/col helper
def test_pixel_centre_and_corner_to_the_half_pixel():
    # pixel (row 0, col 0) of level 0 is the square [0, 1) x [0, 1): centre (0.5, 0.5)
    np.testing.assert_array_equal(qb.rc_to_xy([0, 0]), [0.5, 0.5])
    np.testing.assert_array_equal(qb.rc_to_xy([-0.5, -0.5]), [0.0, 0.0])  # its top-left corner
    # axes swap: row 2, col 7 is x = 7.5, y = 2.5
    np.testing.assert_array_equal(qb.rc_to_xy([2, 7]), [7.5, 2.5])
    # a 4x level: pixel (1, 2) covers x in [8, 12), y in [4, 8): centre (10, 6)
    np.testing.assert_array_equal(qb.rc_to_xy([1, 2], downsample=4), [10.0, 6.0])
    np.testing.assert_array_equal(qb.xy_to_rc([10.0, 6.0], downsample=4), [1.0, 2.0])
    # a crop whose top-left corner is at x=100, y=50
    np.testing.assert_array_equal(qb.xy_to_rc([100.5, 50.5], origin_xy=(100, 50)), [0.0, 0.0])


@given(
    rc=arrays(np.float64, (5, 2), elements=st.floats(-1e6, 1e6)),
    downsample=st.sampled_from([0.5, 1.0, 2.0, 4.0, 16.0, 3.0]),
    origin=st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)),
)
def test_helpers_are_inverse(rc, downsample, origin):
    xy = qb.rc_to_xy(rc, downsample=downsample, origin_xy=origin)
    np.testing.assert_allclose(qb.xy_to_rc(xy, downsample=downsample, origin_xy=origin), rc, atol=1e-6)


def test_rasterise_uses_pixel_centres():
    def draw(geometry, shape=(4, 4), **kw):
        return qb.objects_to_labels([PathObject(geometry)], shape, **kw)

    one = draw(shapely.box(3, 1, 4, 2))  # QuPath's square of pixel (row 1, col 3)
    assert list(zip(*np.nonzero(one))) == [(1, 3)]
    assert not draw(shapely.box(0, 0, 0.49, 0.49)).any()  # misses the centre (0.5, 0.5)
    assert draw(shapely.box(0, 0, 0.51, 0.51))[0, 0] == 1
    level1 = draw(shapely.box(2, 0, 4, 2), downsample=2)  # level-1 pixel (0, 1)
    assert list(zip(*np.nonzero(level1))) == [(0, 1)]
    crop = draw(shapely.box(103, 51, 104, 52), origin_xy=(100, 50))
    assert list(zip(*np.nonzero(crop))) == [(1, 3)]


def test_traced_pixel_is_its_level0_square():
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 3] = 7
    (obj,) = qb.labels_to_objects(labels, downsample=4, origin_xy=(1000, 2000))
    assert obj.geometry.equals(shapely.box(1000 + 12, 2000 + 8, 1000 + 16, 2000 + 12))
    assert obj.measurements == {"Label": 7.0}
    assert obj.object_type is qb.ObjectType.DETECTION


# ---------------------------------------------------------------- rasterising
def test_holes_are_respected_on_the_corpus_polygon():
    path = shared_file("qupath_geojson", "foreign_napari_geojson_polygon_with_hole.geojson")
    with pytest.warns(GeoJSONWarning):
        objects = qb.read_geojson(path)
    labels = qb.objects_to_labels(objects, (10, 10))
    assert labels.sum() == 100 - 4  # 10 x 10 square minus the 2 x 2 hole
    assert not labels[2:4, 2:4].any()


def test_multipolygon_with_26_holes_at_a_low_level():
    (obj,) = qb.read_geojson(shared_file("qupath_geojson", "qp_core_polygon_geometry.geojson"))
    shape = (int(obj.geometry.bounds[3] // 8) + 1, int(obj.geometry.bounds[2] // 8) + 1)
    labels = qb.objects_to_labels([obj], shape, downsample=8)
    # exactly the pixels whose centre lies in the area (checked point by point with GEOS)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    centres = qb.rc_to_xy(np.stack([rows, cols], axis=-1), downsample=8)
    expected = shapely.contains_xy(obj.geometry, centres[..., 0], centres[..., 1])
    np.testing.assert_array_equal(labels > 0, expected)
    # pixels well inside the holes (and outside the islands within them) stay background
    holes = shapely.union_all([shapely.Polygon(r) for p in obj.geometry.geoms for r in p.interiors])
    deep = holes.buffer(-12).difference(obj.geometry.buffer(12))
    inside = qb.objects_to_labels([PathObject(deep)], shape, downsample=8) > 0
    assert inside.sum() > 100_000
    assert not labels[inside].any()


def test_later_objects_win_and_class_mode():
    a = PathObject(shapely.box(0, 0, 4, 4), classification=qb.Classification(("Tumor",)))
    b = PathObject(shapely.box(2, 2, 6, 6), classification=qb.Classification(("Stroma",)))
    inst = qb.objects_to_labels([a, b], (6, 6))
    assert inst[3, 3] == 2 and inst[0, 0] == 1 and inst[5, 5] == 2
    assert inst.dtype == np.uint8
    cls = qb.objects_to_labels([a, b], (6, 6), mode="class", class_names=["Stroma", "Tumor"])
    assert (cls[0, 0], cls[3, 3]) == (2, 1)
    with pytest.raises(LabelImageError, match=r"object 1: class 'Stroma' is not in class_names \['Tumor'\]"):
        qb.objects_to_labels([a, b], (6, 6), mode="class", class_names=["Tumor"])
    with pytest.warns(GeoJSONWarning, match="1 unclassified object"):
        qb.objects_to_labels([a, PathObject(shapely.box(0, 0, 1, 1))], (6, 6), mode="class")


def test_points_and_lines_are_drawn_one_pixel_wide():
    point = PathObject(shapely.Point(2.5, 1.2))
    line = PathObject(shapely.LineString([(0.5, 4.5), (4.5, 4.5)]))
    labels = qb.objects_to_labels([point, line], (6, 6))
    assert labels[1, 2] == 1
    np.testing.assert_array_equal(labels[4, :5], [2, 2, 2, 2, 2])
    assert labels.sum() == 1 + 2 * 5


def test_chunked_fill_matches_single_pass(monkeypatch):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, (40, 50)).astype(np.uint16)
    objects = qb.labels_to_objects(labels)
    whole = qb.objects_to_labels(objects, labels.shape, labels_from="Label")
    monkeypatch.setattr(rasterize_module, "_CHUNK_PX", 7)
    np.testing.assert_array_equal(qb.objects_to_labels(objects, labels.shape, labels_from="Label"), whole)
    np.testing.assert_array_equal(whole, labels)


def test_bad_requests_say_what_to_do():
    with pytest.raises(LabelImageError, match="downsample must be > 0"):
        qb.objects_to_labels([], (3, 3), downsample=0)
    with pytest.raises(LabelImageError, match=r"object 0: measurement 'Label' = None is not a label"):
        qb.objects_to_labels([PathObject(shapely.box(0, 0, 1, 1))], (3, 3), labels_from="Label")
    with pytest.raises(LabelImageError, match=r"integer dtype, got float64; convert with labels.astype"):
        qb.labels_to_objects(np.zeros((3, 3)))
    with pytest.raises(LabelImageError, match=r"must be 2-D"):
        qb.labels_to_objects(np.zeros((3, 3, 3), np.uint8))


# ---------------------------------------------------------------- tracing
def test_tracing_keeps_holes_and_splits_as_multipolygon():
    labels = np.array(
        [
            [1, 1, 1, 0, 2],
            [1, 0, 1, 0, 0],
            [1, 1, 1, 0, 2],
        ],
        np.uint8,
    )
    ring, pair = qb.labels_to_objects(labels, class_names=["Tumor", "Stroma"], object_type="annotation")
    assert ring.geometry.geom_type == "Polygon"
    assert len(ring.geometry.interiors) == 1
    assert ring.geometry.area == 8
    assert len(ring.geometry.exterior.coords) == 5  # no collinear vertices left
    assert pair.geometry.geom_type == "MultiPolygon"
    assert pair.class_name == "Stroma"
    assert pair.classification.color == (150, 200, 150)
    assert ring.object_type is qb.ObjectType.ANNOTATION


def test_traced_objects_write_and_read_back_exactly(tmp_path):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, (30, 20)).astype(np.uint8)
    path = qb.write_geojson(qb.labels_to_objects(labels, downsample=2), tmp_path / "cells.geojson")
    objects = qb.read_geojson(path)
    np.testing.assert_array_equal(
        qb.objects_to_labels(objects, labels.shape, downsample=2, labels_from="Label"), labels
    )


label_images = arrays(
    np.uint16,
    st.tuples(st.integers(1, 14), st.integers(1, 14)),
    elements=st.integers(0, 5),
)


@settings(max_examples=120, deadline=None)
@given(labels=label_images, downsample=st.sampled_from([1.0, 2.0, 0.5, 3.0]))
def test_labels_objects_labels_is_identity(labels, downsample):
    objects = qb.labels_to_objects(labels, downsample=downsample, origin_xy=(10, 20))
    back = qb.objects_to_labels(
        objects, labels.shape, downsample=downsample, origin_xy=(10, 20), labels_from="Label", dtype=np.uint16
    )
    np.testing.assert_array_equal(back, labels)
    assert all(o.geometry.is_valid for o in objects)


@settings(max_examples=60, deadline=None)
@given(labels=label_images)
def test_class_labels_objects_class_labels_is_identity(labels):
    names = ["A", "B", "C", "D", "E"]
    objects = qb.labels_to_objects(labels, class_names=names, label_measurement=None)
    back = qb.objects_to_labels(objects, labels.shape, mode="class", class_names=names, dtype=np.uint16)
    np.testing.assert_array_equal(back, labels)
