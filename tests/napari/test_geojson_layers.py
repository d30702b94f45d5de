"""napari reader/writers for QuPath GeoJSON: classes as features, colours, holes never lost silently."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import shared_file

import qupath_bridge as qb
from napari_histo._napari import geojson_io
from napari_histo._napari.geojson_io import (
    get_geojson_reader,
    layer_data_from_objects,
    write_labels_geojson,
    write_points_geojson,
    write_shapes_geojson,
)

HOLED = qb.PathObject(
    shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]]),
    id="11111111-2222-4333-8444-555555555555",
    classification=qb.Classification(("Tumor",), (200, 0, 0)),
    measurements={"Area": 96.0},
)


def test_reader_declines_what_it_cannot_read(tmp_path):
    assert get_geojson_reader(str(tmp_path / "slide.svs")) is None
    assert get_geojson_reader(["a.geojson", "b.geojson"]) is None
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    assert get_geojson_reader(str(broken)) is None  # notifies, never raises


def test_corpus_annotations_become_shapes_with_class_features_and_colours():
    path = shared_file("qupath_geojson", "qp06_coscialab_td01_points_polygons.geojson")
    layers = get_geojson_reader(str(path))(str(path))
    (shapes_data, shapes_kw, shapes_type), (points_data, points_kw, points_type) = layers
    assert (shapes_type, points_type) == ("shapes", "points")
    assert len(shapes_data) == 6
    assert shapes_kw["features"]["class"] == [
        "class_1",
        "class_2",
        "class_2",
        "class_1",
        "class_2",
        "class_1",
    ]
    np.testing.assert_allclose(shapes_kw["face_color"][0], [3 / 255, 128 / 255, 17 / 255, 0.35])
    np.testing.assert_allclose(shapes_kw["face_color"][1][:3], [1, 0, 1])
    assert points_data.shape == (3, 2)
    assert points_kw["features"]["name"] == ["calib1", "calib2", "calib3"]
    # vertices are (row, col) in level-0 pixels, pixel-centre convention: x=246, y=381 -> (380.5, 245.5)
    np.testing.assert_allclose(shapes_data[0][0], [380.5, 245.5])


def _attributes(kwargs: dict, **extra) -> dict:
    """What napari hands a writer: the layer's state (features as given, no scale = 1)."""
    return {**kwargs, **extra}


def test_holes_get_a_labels_layer_and_survive_export(tmp_path):
    no_id = qb.PathObject(HOLED.geometry, measurements={"Area": 96.0})  # QuPath 0.3 files have no ids
    layers = layer_data_from_objects([HOLED, no_id], "holed.geojson")
    (data, kwargs, _), (labels, labels_kw, kind) = layers
    assert kind == "labels"
    assert kwargs["features"]["has_holes"] == [True, True]
    assert kwargs["face_color"][0][3] == 0  # outline only: the Labels layer fills it, hole and all
    np.testing.assert_allclose(labels_kw["colormap"][1], [200 / 255, 0, 0, 1])  # the class colour
    assert (labels == 2).sum() == 96  # the second object, drawn over the first, with its hole
    assert labels[2:4, 2:4].sum() == 0
    np.testing.assert_allclose(labels_kw["translate"], [0, 0])
    # unchanged outlines: written back exactly, holes, id and measurements included
    out = write_shapes_geojson(str(tmp_path / "out.geojson"), data, _attributes(kwargs))
    again = qb.read_geojson(out[0])
    assert [o.geometry.equals(HOLED.geometry) for o in again] == [True, True]
    assert again[0].id == HOLED.id
    assert [o.measurements for o in again] == [{"Area": 96.0}] * 2


def test_edited_outline_class_and_new_shapes_are_what_gets_written(tmp_path):
    (data, kwargs, _), _labels = layer_data_from_objects([HOLED], "holed.geojson")
    moved = [data[0] + 1.0, np.array([[20.0, 20.0], [20.0, 30.0], [30.0, 30.0], [30.0, 20.0]])]
    features = {k: [*v, kwargs["feature_defaults"].get(k, np.nan)] for k, v in kwargs["features"].items()}
    features["class"] = ["Stroma", ""]  # the user re-classified the first shape in the table
    attributes = _attributes(kwargs, features=features, shape_type=["polygon", "rectangle"])
    edited, drawn = qb.read_geojson(write_shapes_geojson(str(tmp_path / "e.geojson"), moved, attributes)[0])
    assert edited.geometry.bounds == (1, 1, 11, 11)  # the outline as dragged: its hole is gone
    assert (edited.class_name, edited.id, edited.measurements) == ("Stroma", HOLED.id, {"Area": 96.0})
    assert drawn.geometry.equals(shapely.box(20.5, 20.5, 30.5, 30.5))
    assert (drawn.object_type, drawn.classification) == (qb.ObjectType.ANNOTATION, None)


def test_multipolygon_parts_come_back_as_one_object(tmp_path):
    multi = qb.PathObject(shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(5, 5, 7, 7)]))
    ((data, kwargs, _),) = layer_data_from_objects([multi], "m")
    assert len(data) == 2
    (obj,) = qb.read_geojson(write_shapes_geojson(str(tmp_path / "m.geojson"), data, kwargs)[0])
    assert obj.geometry.geom_type == "MultiPolygon"
    assert obj.geometry.area == 8


def test_drawn_shapes_in_micrometres_are_converted_with_the_slide_mpp(tmp_path):
    # a rectangle drawn over a slide shown at 0.5 µm/px, in world µm: rows 10-20 µm, cols 0-40 µm
    rectangle = np.array([[10.0, 0.0], [10.0, 40.0], [20.0, 40.0], [20.0, 0.0]])
    attributes = {"metadata": {"napari_histo": {"mpp": 0.5}}, "shape_type": ["rectangle"]}
    (obj,) = qb.read_geojson(write_shapes_geojson(str(tmp_path / "r.geojson"), [rectangle], attributes)[0])
    # world µm -> level-0 pixel-centre coordinates -> QuPath x, y (+0.5 px)
    assert obj.geometry.bounds == (0.5, 20.5, 80.5, 40.5)
    attributes["shape_type"] = ["ellipse"]
    (ellipse,) = qb.read_geojson(
        write_shapes_geojson(str(tmp_path / "e.geojson"), [rectangle], attributes)[0]
    )
    assert ellipse.is_ellipse
    assert ellipse.geometry.area == pytest.approx(np.pi * 40 * 10, rel=0.01)


def test_many_detections_become_centroids_and_are_written_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(geojson_io, "MAX_SHAPES", 3)
    cells = [
        qb.PathObject(shapely.box(10 * i, 0, 10 * i + 6, 6), qb.ObjectType.DETECTION, measurements={"i": i})
        for i in range(5)
    ]
    ((data, kwargs, kind),) = layer_data_from_objects(cells, "cells.geojson")
    assert kind == "points"
    np.testing.assert_allclose(data[1], [2.5, 12.5])  # centroid (x=13, y=3) in pixel-centre (row, col)
    assert kwargs["size"] == pytest.approx(2 * np.sqrt(36 / np.pi))
    data = data[[0, 1, 3, 4]].copy()  # the user deleted cell 2 and moved cell 4 by 5 rows
    data[3] += [5.0, 0.0]
    features = {k: [v[i] for i in (0, 1, 3, 4)] for k, v in kwargs["features"].items()}
    out = write_points_geojson(str(tmp_path / "cells.geojson"), data, _attributes(kwargs, features=features))
    back = qb.read_geojson(out[0])
    assert [o.measurements["i"] for o in back] == [0, 1, 3, 4]
    assert back[0].geometry.equals(cells[0].geometry)
    assert back[3].geometry.equals(shapely.box(40, 5, 46, 11))
    assert all(o.object_type is qb.ObjectType.DETECTION for o in back)


def test_point_annotations_round_trip_and_new_points(tmp_path):
    path = shared_file("qupath_geojson", "qp03_napari_geojson_qp_all_shapes.geojson")
    objects = qb.read_geojson(path)
    layers = layer_data_from_objects(objects, "all.geojson")
    data, kwargs, kind = next(layer for layer in layers if layer[2] == "points")
    assert kind == "points" and len(data) > 2
    new = np.vstack([data, [[100.0, 200.0]]])
    features = {k: [*v, kwargs["feature_defaults"].get(k, np.nan)] for k, v in kwargs["features"].items()}
    out = write_points_geojson(str(tmp_path / "p.geojson"), new, _attributes(kwargs, features=features))
    back = qb.read_geojson(out[0])
    originals = [o for o in objects if o.geometry.geom_type in ("Point", "MultiPoint")]
    assert [o.geometry.equals(b.geometry) for o, b in zip(originals, back)] == [True] * len(originals)
    assert back[-1].geometry.equals(shapely.Point(200.5, 100.5))


def test_labels_layer_is_traced_at_its_scale(tmp_path):
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 2:5] = 4
    labels[4, 6] = 9
    attributes = {"scale": (4.0, 4.0), "translate": (1.5, 1.5), "metadata": {}}  # a 4x level over level 0
    out = write_labels_geojson(str(tmp_path / "labels.geojson"), labels, attributes)
    objects = qb.read_geojson(out[0])
    assert [o.measurements["Label"] for o in objects] == [4.0, 9.0]
    assert objects[0].geometry.bounds == (8, 4, 20, 12)
    back = qb.objects_to_labels(objects, labels.shape, downsample=4, labels_from="Label")
    np.testing.assert_array_equal(back, labels)


@pytest.mark.qt
def test_open_holed_export_in_viewer_and_save_back(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    path = shared_file("qupath_geojson", "qp04_histoqc_holed_single_feature.geojson")
    viewer = make_napari_viewer()
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        layers = viewer.open(str(path), plugin="napari-histo")
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert [layer._type_string for layer in layers] == ["shapes", "labels"]
    assert any("have holes" in str(n.message) for n in seen)
    shapes = layers[0]
    assert shapes.features["id"][0] == "2aa7e31c-8437-499d-ba61-88aacd9a2c3f"
    out = tmp_path / "saved.geojson"
    shapes.save(str(out), plugin="napari-histo")
    (before,) = qb.read_geojson(path)
    (after,) = qb.read_geojson(out)
    assert after.geometry.equals(before.geometry)
    assert len(after.geometry.interiors) == 1


@pytest.mark.qt
def test_geojson_lands_on_a_slide_shown_in_micrometres(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(
        np.zeros((64, 64), np.uint8), scale=(0.25, 0.25), metadata={"napari_histo": {"mpp": 0.25}}
    )
    path = qb.write_geojson([qb.PathObject(shapely.box(8, 4, 16, 12))], tmp_path / "box.geojson")
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        (layer,) = viewer.open(str(path), plugin="napari-histo")
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert not [n for n in seen if "holes" in str(n.message)]  # only files with holes say so
    np.testing.assert_allclose(layer.scale, [0.25, 0.25])
    assert tuple(str(u) for u in layer.units) == ("micrometer", "micrometer")
    out = tmp_path / "again.geojson"
    layer.save(str(out), plugin="napari-histo")
    assert qb.read_geojson(out)[0].geometry.equals(shapely.box(8, 4, 16, 12))
    labels = viewer.add_labels(qb.objects_to_labels(qb.read_geojson(out), (16, 16)), scale=(0.25, 0.25))
    labels.save(str(tmp_path / "labels.geojson"), plugin="napari-histo")
    assert qb.read_geojson(tmp_path / "labels.geojson")[0].geometry.equals(shapely.box(8, 4, 16, 12))
