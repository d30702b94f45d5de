"""Dock widget: stain normalisation of an image layer to a reference.

The reference is an image layer (optionally only the region of a rectangle
drawn in a Shapes layer) or a saved stain JSON file.  The output is a
normalised preview of the visible region, or a new layer of the whole image
at overview resolution.  The widget gathers the pixels and calls
:func:`napari_histo.pipeline.stain.normalize_to_reference` in a thread worker
with a progress bar and a cancel button.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, create_widget

from napari_histo._napari._widgets._docking import tabify_when_docked
from napari_histo._napari._widgets._feedback import guarded, report, wrap_text
from napari_histo._napari._widgets._workers import make_worker, start_with_cancel
from napari_histo.core.stain import StainMethod, StainParams
from napari_histo.errors import InvalidParameterError
from napari_histo.io.stain_json import save_stain_params
from napari_histo.pipeline.stain import normalize_to_reference

__all__ = ["StainOutput", "StainWidget", "overview", "visible_region"]

_OVERVIEW_MAX_PX = 2048


class StainOutput(str, Enum):
    """What the widget normalises."""

    VISIBLE = "visible region"
    OVERVIEW = "whole image (overview)"


def visible_region(layer: Any) -> tuple[np.ndarray, tuple[int, int], int]:
    """uint8 RGB of the layer's visible region at its current level, its (row, col) offset and the level."""
    level = layer.data_level if layer.multiscale else 0
    data = layer.data[level] if layer.multiscale else layer.data
    corners = np.asarray(layer.corner_pixels)[:, -2:].astype(int)
    corners[1] += 1  # napari's corner_pixels are inclusive: the last visible pixel, not one past it
    corners = np.clip(corners, 0, np.asarray(data.shape[:2]))
    if not np.all(corners[1] > corners[0]):
        corners = np.array([[0, 0], data.shape[:2]])
    (r0, c0), (r1, c1) = corners
    return np.asarray(data[r0:r1, c0:c1, :3]), (int(r0), int(c0)), level


def overview(layer: Any, max_px: int = _OVERVIEW_MAX_PX) -> tuple[np.ndarray, int]:
    """uint8 RGB of the finest level at most ``max_px`` wide and high (or the coarsest), and its level."""
    if not layer.multiscale:
        return np.asarray(layer.data[..., :3]), 0
    for level, data in enumerate(layer.data):
        if max(data.shape[:2]) <= max_px:
            return np.asarray(data[..., :3]), level
    return np.asarray(layer.data[-1][..., :3]), len(layer.data) - 1


def region_of(layer: Any, shapes: Any | None) -> np.ndarray:
    """Reference pixels: the overview of ``layer``, cropped to the first shape's bounding box if any."""
    pixels, level = overview(layer)
    if shapes is None or len(shapes.data) == 0:
        return pixels
    ds = np.asarray(layer.downsample_factors[level][-2:]) if layer.multiscale else np.ones(2)
    corners = np.array([layer.world_to_data(p)[-2:] for p in shapes.data[0][:, -2:]]) / ds
    (r0, c0), (r1, c1) = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int)
    r0, c0 = max(r0, 0), max(c0, 0)
    crop = pixels[r0:r1, c0:c1]
    if crop.size == 0:
        raise InvalidParameterError(
            f"the rectangle in {shapes.name!r} does not overlap the reference {layer.name!r}"
        )
    return crop


class StainWidget(Container):
    """Method, reference (layer, region or JSON) and output → a normalised image layer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.target: StainParams | None = None
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.reference = create_widget(annotation="napari.layers.Image", label="reference layer")
        self.region = create_widget(annotation="napari.layers.Shapes | None", label="reference region")
        self.params_file = FileEdit(mode="r", filter="*.json", label="or reference JSON", value="")
        self.method = ComboBox(choices=[m.value for m in StainMethod], value="macenko", label="method")
        self.output = ComboBox(choices=[o.value for o in StainOutput], value=StainOutput.VISIBLE.value,
                               label="output")  # fmt: skip
        self.run_button = PushButton(text="Normalise")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=2, value=0, label="progress")
        self.save_path = FileEdit(mode="w", filter="*.json", label="save reference to", value="")
        self.save_button = PushButton(text="Save fitted reference", enabled=False)
        self.summary = Label(value="", label="result")
        super().__init__(widgets=[self.image, self.reference, self.region, self.params_file, self.method,
                                  self.output, self.run_button, self.cancel_button, self.progress,
                                  self.save_path, self.save_button, self.summary])  # fmt: skip
        tabify_when_docked(self)
        wrap_text(self.summary)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self.save_reference)

    @guarded(lambda self: self.summary)
    def run(self) -> Any:
        layer = self.image.value
        if layer is None:
            raise InvalidParameterError("choose the Image layer to normalise")
        params = self._params_file()
        reference = None if params else region_of(self.reference.value or layer, self.region.value)
        if self.output.value == StainOutput.VISIBLE.value:
            pixels, offset, level = visible_region(layer)
        else:
            (pixels, level), offset = overview(layer), (0, 0)
        self._worker = make_worker(
            normalize_to_reference,
            pixels,
            self.method.value,
            reference=reference,
            params_file=params,
            on_error=lambda exc: report(self.summary, exc),
        )
        self._worker.yielded.connect(lambda item: self.progress.set_value(item.done))
        self._worker.returned.connect(lambda result: self._show(result, layer, offset, level))
        return start_with_cancel(self._worker, self.cancel_button)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    @guarded(lambda self: self.summary)
    def save_reference(self) -> Path:
        path = Path(str(self.save_path.value))
        if self.target is None or str(self.save_path.value) in ("", "."):
            raise InvalidParameterError("normalise once (to fit a reference) and choose a file to save it to")
        return save_stain_params(self.target, path)

    def _params_file(self) -> str | None:
        value = str(self.params_file.value)
        return None if value in ("", ".") else value

    def _show(
        self, result: tuple[np.ndarray, StainParams], layer: Any, offset: tuple[int, int], level: int
    ) -> None:
        out, self.target = result
        self.save_button.enabled = True
        ds = layer.downsample_factors[level][-2:] if layer.multiscale else (1.0, 1.0)
        scale = tuple(s * d for s, d in zip(layer.scale[-2:], ds))
        # a level pixel's centre lies (ds - 1) / 2 level-0 pixels past its corner
        translate = tuple(
            t + (o * d + (d - 1) / 2) * s
            for t, o, d, s in zip(layer.translate[-2:], offset, ds, layer.scale[-2:])
        )
        self._viewer.add_image(out, rgb=True, name=f"{layer.name} ({self.target.method.value})",
                               scale=scale, translate=translate, units=layer.units)  # fmt: skip
