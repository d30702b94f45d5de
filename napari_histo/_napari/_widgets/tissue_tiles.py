"""Dock widget: tissue mask and tile grid of a slide layer (Labels + Shapes with counts).

Only forwards values to :mod:`napari_histo.io.patches`; the work runs in a
thread worker that yields progress, with a progress bar and a cancel button.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_histo.core.tissue import TissueMethod

__all__ = ["TissueTilesWidget", "compute_tissue_tiles"]


def compute_tissue_tiles(path: str, mpp: float | None, method: str, target_mpp: float, tile_px: int,
                         overlap_px: int, min_tissue: float):  # fmt: skip
    """Generator: yields progress (0-3), returns (mask, downsample_rc, grid, fractions)."""
    from napari_histo.io import open_slide
    from napari_histo.io.patches import plan_slide_grid, slide_tissue_mask, tissue_tiles

    with open_slide(path, mpp=mpp) as slide:
        yield 1
        mask = slide_tissue_mask(slide, method)
        yield 2
        grid, fractions = tissue_tiles(
            plan_slide_grid(slide, target_mpp, tile_px, overlap_px), mask, min_tissue
        )
        yield 3
    return mask, grid, fractions


class TissueTilesWidget(Container):
    """Method, thresholds, tile size, µm/px, overlap → tissue Labels and tile Shapes."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.method = ComboBox(choices=[m.value for m in TissueMethod], value="hsv", label="method")
        self.target_mpp = FloatSpinBox(value=0.5, min=0.05, max=64, step=0.05, label="µm/px")
        self.tile_px = SpinBox(value=224, min=8, max=4096, label="tile px")
        self.overlap = SpinBox(value=0, min=0, max=4095, label="overlap px")
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="min tissue")
        self.slide_mpp = FloatSpinBox(value=0.0, min=0, max=100, step=0.01, label="slide µm/px (0: file)")
        self.run_button = PushButton(text="Detect tissue and tile")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=3, value=0, label="progress")
        super().__init__(widgets=[self.layer, self.method, self.target_mpp, self.tile_px, self.overlap,
                                  self.min_tissue, self.slide_mpp, self.run_button, self.cancel_button,
                                  self.progress])  # fmt: skip
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    def run(self) -> Any:
        from napari.qt.threading import create_worker

        layer = self.layer.value
        if layer is None or "napari_histo" not in layer.metadata:
            raise ValueError("choose an Image layer opened by napari-histo (File > Open a slide)")
        meta = layer.metadata["napari_histo"]
        mpp = self.slide_mpp.value or meta.get("mpp")
        self._worker = create_worker(
            compute_tissue_tiles, meta["path"], mpp or None, self.method.value, self.target_mpp.value,
            self.tile_px.value, self.overlap.value, self.min_tissue.value, _start_thread=False,
        )  # fmt: skip
        self._worker.yielded.connect(self.progress.set_value)
        self._worker.returned.connect(lambda result: self._show(result, mpp or 1.0, layer.name))
        self._worker.finished.connect(lambda: setattr(self.cancel_button, "enabled", False))
        self.cancel_button.enabled = True
        self._worker.start()
        return self._worker

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _show(self, result: tuple, mpp: float, name: str) -> None:
        mask, grid, fractions = result
        scale = (mask.downsample_rc[0] * mpp, mask.downsample_rc[1] * mpp)
        self._viewer.add_labels(mask.mask.astype(np.uint8), name=f"{name} tissue", scale=scale, opacity=0.4)
        size = grid.tile_px_level0
        rects = [np.array([[r, c], [r + size, c + size]]) * mpp for r, c in grid.origins_rc.tolist()]
        shapes = self._viewer.add_shapes(
            rects, shape_type="rectangle", name=f"{name} tiles ({len(grid)})", edge_color="yellow",
            face_color="transparent", edge_width=max(size * mpp / 50, 0.5),
            features={"tissue_fraction": np.asarray(fractions)},
        )  # fmt: skip
        shapes.metadata["napari_histo"] = {"tile_count": len(grid), "tile_px": grid.tile_px}
