"""napari reader/writers for QuPath GeoJSON: classes as features, colours, holes never lost silently."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import shared_file

import qupath_bridge as qb
from napari_histo._napari.geojson_io import (
    get_geojson_reader,
    layer_data_from_objects,
    shapes_to_objects,
    write_labels_geojson,
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


def test_holes_get_a_labels_layer_and_survive_export(tmp_path):
    layers = layer_data_from_objects([HOLED], "holed.geojson")
    (data, kwargs, _), (labels, labels_kw, kind) = layers
    assert kind == "labels"
    assert kwargs["features"]["has_holes"] == [True]
    assert kwargs["face_color"][0][3] == 0  # outline only: the Labels layer fills it, hole and all
    np.testing.assert_allclose(labels_kw["colormap"][1], [200 / 255, 0, 0, 1])  # the class colour
    assert labels.sum() == 96 and labels[2:4, 2:4].sum() == 0  # the hole is drawn as a hole
    np.testing.assert_allclose(labels_kw["translate"], [0, 0])
    # unchanged outline: written back exactly, hole, id and measurements included
    out = write_shapes_geojson(str(tmp_path / "out.geojson"), data, {**kwargs, "shape_type": ["polygon"]})
    (again,) = qb.read_geojson(out[0])
    assert again.geometry.equals(HOLED.geometry)
    assert (again.id, again.measurements) == (HOLED.id, {"Area": 96.0})


def test_edited_outline_and_class_are_what_gets_written():
    (data, kwargs, _), _labels = layer_data_from_objects([HOLED], "holed.geojson")
    moved = [data[0] + 1.0]  # the user dragged the shape one pixel down-right
    features = dict(kwargs["features"], **{"class": ["Stroma"]})
    (obj,) = shapes_to_objects(moved, ["polygon"], features=features, metadata=kwargs["metadata"])
    assert obj.geometry.bounds == (1, 1, 11, 11)
    assert obj.class_name == "Stroma"
    assert obj.id == HOLED.id


def test_multipolygon_parts_share_an_id_and_come_back_as_one_object():
    multi = qb.PathObject(shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(5, 5, 7, 7)]), id=None)
    ((data, kwargs, _),) = layer_data_from_objects([qb.PathObject(multi.geometry, id=HOLED.id)], "m")
    assert len(data) == 2
    (obj,) = shapes_to_objects(data, ["polygon"] * 2, features=kwargs["features"], metadata={})
    assert obj.geometry.geom_type == "MultiPolygon"
    assert obj.geometry.area == 8


def test_drawn_shapes_in_micrometres_are_converted_with_the_slide_mpp():
    # a rectangle drawn over a slide shown at 0.5 µm/px, in world µm: rows 10-20 µm, cols 0-40 µm
    rectangle = np.array([[10.0, 0.0], [10.0, 40.0], [20.0, 40.0], [20.0, 0.0]])
    metadata = {"napari_histo": {"mpp": 0.5}}
    (obj,) = shapes_to_objects([rectangle], ["rectangle"], metadata=metadata)
    # world µm -> level-0 pixel-centre coords -> QuPath x, y (+0.5 px)
    assert obj.geometry.bounds == (0.5, 20.5, 80.5, 40.5)
    (ellipse,) = shapes_to_objects([rectangle], ["ellipse"], metadata=metadata)
    assert ellipse.is_ellipse
    assert ellipse.geometry.area == pytest.approx(np.pi * 40 * 10, rel=0.01)


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
    (layer,) = viewer.open(str(path), plugin="napari-histo")
    np.testing.assert_allclose(layer.scale, [0.25, 0.25])
    assert tuple(str(u) for u in layer.units) == ("micrometer", "micrometer")
    out = tmp_path / "again.geojson"
    layer.save(str(out), plugin="napari-histo")
    assert qb.read_geojson(out)[0].geometry.equals(shapely.box(8, 4, 16, 12))
    labels = viewer.add_labels(qb.objects_to_labels(qb.read_geojson(out), (16, 16)), scale=(0.25, 0.25))
    labels.save(str(tmp_path / "labels.geojson"), plugin="napari-histo")
    assert qb.read_geojson(tmp_path / "labels.geojson")[0].geometry.equals(shapely.box(8, 4, 16, 12))
