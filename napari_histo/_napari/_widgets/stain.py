"""Dock widget: stain normalisation preview of the visible region, from a reference layer or JSON file.

Only forwards values to :mod:`napari_histo.core.stain`; fitting and the
transform run in a thread worker with a progress bar and a cancel button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, ProgressBar, PushButton, create_widget

from napari_histo.core.stain import StainMethod, StainParams, fit_stain, normalize_stain

__all__ = ["StainWidget", "normalize_region", "visible_region"]


def visible_region(layer: Any) -> tuple[np.ndarray, tuple[int, int], int]:
    """uint8 RGB pixels of the layer's visible region at its current level, their (row, col) offset, level."""
    level = layer.data_level if layer.multiscale else 0
    data = layer.data[level] if layer.multiscale else layer.data
    corners = np.asarray(layer.corner_pixels)[:, -2:] if layer.multiscale else None
    if corners is None or not np.all(corners[1] > corners[0]):
        corners = np.array([[0, 0], data.shape[:2]])
    (r0, c0), (r1, c1) = corners.astype(int)
    return np.asarray(data[r0:r1, c0:c1, :3]), (r0, c0), level


def normalize_region(reference: np.ndarray | None, params_file: str | None, method: str, region: np.ndarray):
    """Generator: yields progress (1, 2), returns the normalised uint8 region."""
    if params_file:
        target = StainParams.from_json(Path(params_file).read_text(encoding="utf-8"))
    else:
        target = fit_stain(reference, method)
    yield 1
    out = normalize_stain(region, target)
    yield 2
    return out


def _small_view(layer: Any, max_px: int = 2048) -> np.ndarray:
    if not layer.multiscale:
        return np.asarray(layer.data[..., :3])
    for level in layer.data:
        if max(level.shape[:2]) <= max_px:
            return np.asarray(level[..., :3])
    return np.asarray(layer.data[-1][..., :3])


class StainWidget(Container):
    """Method and reference (a layer or a saved JSON) → normalised preview layer of the visible region."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.reference = create_widget(annotation="napari.layers.Image", label="reference layer")
        self.params_file = FileEdit(mode="r", filter="*.json", label="or reference JSON", value="")
        self.method = ComboBox(choices=[m.value for m in StainMethod], value="macenko", label="method")
        self.run_button = PushButton(text="Normalise visible region")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=2, value=0, label="progress")
        super().__init__(widgets=[self.image, self.reference, self.params_file, self.method,
                                  self.run_button, self.cancel_button, self.progress])  # fmt: skip
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    def run(self) -> Any:
        from napari.qt.threading import create_worker

        layer = self.image.value
        if layer is None:
            raise ValueError("choose the Image layer to normalise")
        params = str(self.params_file.value) if str(self.params_file.value) not in ("", ".") else None
        reference = None if params else _small_view(self.reference.value or layer)
        region, offset, level = visible_region(layer)
        self._worker = create_worker(
            normalize_region, reference, params, self.method.value, region, _start_thread=False
        )
        self._worker.yielded.connect(self.progress.set_value)
        self._worker.returned.connect(lambda out: self._show(out, layer, offset, level))
        self._worker.finished.connect(lambda: setattr(self.cancel_button, "enabled", False))
        self.cancel_button.enabled = True
        self._worker.start()
        return self._worker

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _show(self, out: np.ndarray, layer: Any, offset: tuple[int, int], level: int) -> None:
        ds = layer.downsample_factors[level][-2:] if layer.multiscale else (1.0, 1.0)
        scale = tuple(s * d for s, d in zip(layer.scale[-2:], ds))
        translate = tuple(t + o * s for t, o, s in zip(layer.translate[-2:], offset, scale))
        self._viewer.add_image(out, rgb=True, name=f"{layer.name} ({self.method.value})",
                               scale=scale, translate=translate)  # fmt: skip
