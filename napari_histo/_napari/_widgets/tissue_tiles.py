"""Dock widget: tissue mask and tile grid of a slide layer (Labels + Shapes with counts).

Only forwards values to :mod:`napari_histo.io.patches`; the work runs in a
thread worker that yields progress, with a progress bar and a cancel button.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)

from napari_histo._napari._widgets._workers import start_with_cancel
from napari_histo.core.tissue import TissueConfig, TissueMethod

__all__ = ["TissueTilesWidget", "compute_tissue_tiles"]


def compute_tissue_tiles(path: str, mpp: float | None, method: str, config: TissueConfig, target_mpp: float,
                         tile_px: int, overlap_px: int, min_tissue: float):  # fmt: skip
    """Generator: yields progress (1-3); returns (SlideTissueMask, kept TileGrid, fractions, tile count)."""
    from napari_histo.io import open_slide
    from napari_histo.io.patches import plan_slide_grid, slide_tissue_mask, tissue_tiles

    with open_slide(path, mpp=mpp) as slide:
        yield 1
        mask = slide_tissue_mask(slide, method, config)
        yield 2
        grid = plan_slide_grid(slide, target_mpp, tile_px, overlap_px)
        total = len(grid)
        grid, fractions = tissue_tiles(grid, mask, min_tissue)
        yield 3
    return mask, grid, fractions, total


class TissueTilesWidget(Container):
    """Method, thresholds, tile size, µm/px, overlap → tissue Labels and tile Shapes."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.method = ComboBox(choices=[m.value for m in TissueMethod], value="hsv", label="method")
        defaults = TissueConfig()
        self.min_saturation = FloatSpinBox(value=defaults.min_saturation, min=0, max=1, step=0.01,
                                           label="min saturation")  # fmt: skip
        self.max_value = FloatSpinBox(
            value=defaults.max_value, min=0, max=1, step=0.01, label="max brightness"
        )
        self.reject_pen = CheckBox(value=True, label="reject pen ink")
        self.target_mpp = FloatSpinBox(value=0.5, min=0.05, max=64, step=0.05, label="µm/px")
        self.tile_px = SpinBox(value=224, min=8, max=4096, label="tile px")
        self.overlap = SpinBox(value=0, min=0, max=4095, label="overlap px")
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="min tissue")
        self.slide_mpp = FloatSpinBox(value=0.0, min=0, max=100, step=0.01, label="slide µm/px (0: file)")
        self.run_button = PushButton(text="Detect tissue and tile")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=3, value=0, label="progress")
        self.summary = Label(value="", label="result")
        super().__init__(widgets=[self.layer, self.method, self.min_saturation, self.max_value,
                                  self.reject_pen, self.target_mpp, self.tile_px, self.overlap,
                                  self.min_tissue, self.slide_mpp, self.run_button, self.cancel_button,
                                  self.progress, self.summary])  # fmt: skip
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
            compute_tissue_tiles, meta["path"], mpp or None, self.method.value, self._config(),
            self.target_mpp.value, self.tile_px.value, self.overlap.value, self.min_tissue.value,
            _start_thread=False,
        )  # fmt: skip
        self._worker.yielded.connect(self.progress.set_value)
        self._worker.returned.connect(lambda result: self._show(result, mpp or 1.0, layer))
        return start_with_cancel(self._worker, self.cancel_button)

    def _config(self) -> TissueConfig:
        return TissueConfig(
            min_saturation=self.min_saturation.value,
            max_value=self.max_value.value,
            reject_pen=self.reject_pen.value,
        )

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _show(self, result: tuple, mpp: float, layer: Any) -> None:
        name = layer.name
        mask, grid, fractions, total = result
        self.summary.value = (
            f"{len(grid):,} of {total:,} tiles kept; tissue {mask.mask.mean():.0%} of the slide"
        )
        ds = mask.downsample_rc
        # level-0 pixel centres are at i * mpp in the world; a mask pixel's is (ds - 1) / 2 further
        self._viewer.add_labels(
            mask.mask.astype(np.uint8), name=f"{name} tissue", opacity=0.4, units=layer.units,
            scale=(ds[0] * mpp, ds[1] * mpp), translate=((ds[0] - 1) / 2 * mpp, (ds[1] - 1) / 2 * mpp),
        )  # fmt: skip
        size = grid.tile_px_level0
        rects = [(np.array([[r, c], [r + size, c + size]]) - 0.5) * mpp for r, c in grid.origins_rc.tolist()]
        shapes = self._viewer.add_shapes(
            rects, shape_type="rectangle", name=f"{name} tiles ({len(grid)})", edge_color="yellow",
            face_color="transparent", edge_width=max(size * mpp / 50, 0.5),
            features={"tissue_fraction": np.asarray(fractions)}, units=layer.units,
        )  # fmt: skip
        shapes.metadata["napari_histo"] = {"tile_count": len(grid), "tile_px": grid.tile_px}
