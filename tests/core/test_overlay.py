"""Overlays on overview images: masks tinted, boxes filled and outlined where they should be."""

from __future__ import annotations

import numpy as np

from napari_histo.core.overlay import add_legend, blend_mask, fill_boxes, outline_boxes


def test_blend_mask_tints_only_the_mask_and_resizes_it():
    image = np.full((40, 60, 3), 200, np.uint8)
    mask = np.zeros((4, 6), bool)
    mask[0, 0] = True  # the top-left 10 x 10 block at full size
    out = blend_mask(image, mask, (0, 0, 0), alpha=0.5)
    assert (out[:10, :10] == 100).all()
    assert (out[10:, :] == 200).all()
    assert (image == 200).all()  # input untouched


def test_fill_and_outline_boxes_in_level0_coordinates():
    image = np.zeros((100, 100, 3), np.uint8)
    boxes = np.array([[0, 0, 400, 400], [400, 400, 800, 800]])  # level-0 px, drawn at 1/8
    filled = fill_boxes(image, boxes, [(255, 0, 0), (0, 255, 0)], (1 / 8, 1 / 8), alpha=1.0)
    assert (filled[:50, :50] == (255, 0, 0)).all()
    assert (filled[50:, 50:] == (0, 255, 0)).all()
    assert (filled[:50, 50:] == 0).all()
    outlined = outline_boxes(image, boxes[:1], (9, 9, 9), (1 / 8, 1 / 8))
    assert (outlined[0, :50] == 9).all()
    assert (outlined[49, :50] == 9).all()
    assert (outlined[1:49, 1:49] == 0).all()


def test_legend_strip_below_the_image_shows_each_class_colour_and_name():
    image = np.full((40, 200, 3), 128, np.uint8)
    names = ["tumour", "stroma", "a rather long class name for a narrow image"]
    colors = [(230, 25, 75), (60, 180, 75), (0, 130, 200)]
    out = add_legend(image, names, colors)
    assert out.dtype == np.uint8 and out.shape[0] > image.shape[0] and out.shape[1] >= image.shape[1]
    assert np.array_equal(out[:40, :200], image)
    strip = out[40:]
    pixels = {tuple(p) for p in strip.reshape(-1, 3).tolist()}
    for color in colors:
        assert color in pixels
    # names are drawn in dark text beside the squares, and the long one widened the image
    assert out.shape[1] > 200
    assert (strip[:, 30:].sum(axis=-1) < 100).sum() > 50
    np.testing.assert_array_equal(image, 128)  # the input is not modified


def test_legend_without_classes_only_pads():
    image = np.zeros((10, 20, 3), np.uint8)
    out = add_legend(image, [], np.zeros((0, 3)))
    assert out.shape[1] == 20 and np.array_equal(out[:10], image)
