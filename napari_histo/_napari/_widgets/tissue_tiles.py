"""Dock widget: tissue mask and tile grid of a slide layer (Labels + Shapes with counts).

Gathers the values and calls :func:`napari_histo.pipeline.tissue.tissue_grid`
on the slide layer's session in a thread worker that yields progress, with a
progress bar and a cancel button.
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

from napari_histo._napari._session import set_slide_mpp, world_per_px
from napari_histo._napari._widgets._docking import tabify_when_docked
from napari_histo._napari._widgets._feedback import guarded, report, wrap_text
from napari_histo._napari._widgets._workers import make_worker, start_with_cancel
from napari_histo.core.tissue import TissueConfig
from napari_histo.pipeline.tissue import tissue_grid

__all__ = ["TissueTilesWidget"]

_METHOD_NAMES = [
    ("colour: saturation and brightness (HSV)", "hsv"),
    ("Otsu threshold on saturation", "otsu"),
    ("fluorescence: bright signal on dark", "fluorescence"),
]
_TIPS = {
    "method": "How tissue is told from glass. Colour works on most H&E; Otsu adapts to faint stains; "
    "fluorescence slides (dark background) are detected as such and use the fluorescence detector.",
    "min_saturation": "Least colour (0-1) a pixel needs to count as tissue; raise it if glass is picked up.",
    "max_value": "Brightest a pixel may be (0-1) and still count as tissue; lower it to drop pale glass.",
    "reject_pen": "Leave out green, blue and red pen marks.",
    "target_mpp": "Micrometres per pixel of the tiles (0.5 is about 20x). Default: the shipped model's.",
    "tile_px": "Tile edge in pixels at that µm/px. Default: the shipped model's.",
    "overlap": "Pixels shared by neighbouring tiles.",
    "min_tissue": "Keep tiles whose area is at least this fraction tissue (0.5 = half).",
    "slide_mpp": "The slide's own µm/px, for files that lack it (0: use the file's). Set once for the slide.",
}


class TissueTilesWidget(Container):
    """Method, thresholds, tile size, µm/px, overlap → tissue Labels and tile Shapes."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.method = ComboBox(choices=_METHOD_NAMES, value="hsv", label="tissue detector")
        defaults = TissueConfig()
        self.min_saturation = FloatSpinBox(value=defaults.min_saturation, min=0, max=1, step=0.01,
                                           label="min saturation")  # fmt: skip
        self.max_value = FloatSpinBox(
            value=defaults.max_value, min=0, max=1, step=0.01, label="max brightness"
        )
        self.reject_pen = CheckBox(value=True, label="reject pen ink")
        mpp, px = _default_model_grid()
        self.target_mpp = FloatSpinBox(value=mpp, min=0.05, max=64, step=0.05, label="µm/px")
        self.tile_px = SpinBox(value=px, min=8, max=4096, label="tile px")
        self.overlap = SpinBox(value=0, min=0, max=4095, label="overlap px")
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="least tissue per tile")
        self.slide_mpp = FloatSpinBox(value=0.0, min=0, max=100, step=0.01, label="slide µm/px (0: file)")
        self.run_button = PushButton(text="Detect tissue and tile")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=3, value=0, label="progress")
        self.summary = Label(value="", label="result")
        super().__init__(widgets=[self.layer, self.method, self.min_saturation, self.max_value,
                                  self.reject_pen, self.target_mpp, self.tile_px, self.overlap,
                                  self.min_tissue, self.slide_mpp, self.run_button, self.cancel_button,
                                  self.progress, self.summary])  # fmt: skip
        tabify_when_docked(self)
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip
        wrap_text(self.summary)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    @guarded(lambda self: self.summary)
    def run(self) -> Any:
        layer = self.layer.value
        session = set_slide_mpp(layer, self.slide_mpp.value)
        self._worker = make_worker(
            tissue_grid, session, target_mpp=self.target_mpp.value, tile_px=self.tile_px.value,
            overlap_px=self.overlap.value, min_tissue=self.min_tissue.value, method=self.method.value,
            config=self._config(), on_error=lambda exc: report(self.summary, exc),
        )  # fmt: skip
        self._worker.yielded.connect(lambda item: self.progress.set_value(item.done))
        self._worker.returned.connect(lambda found: self._show(found, layer))
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

    def _show(self, found: Any, layer: Any) -> None:
        name, mask, grid = layer.name, found.mask, found.grid
        self.summary.value = (
            f"{len(grid):,} of {found.total:,} tiles kept; tissue {mask.mask.mean():.0%} of the slide"
            + (f". Note: {mask.note}" if mask.note else "")
        )
        s = world_per_px(layer)
        origin = np.asarray(layer.translate[-2:], float)
        ds = mask.downsample_rc
        # level-0 pixel centres are at origin + i * s in the world; a mask pixel's is (ds - 1) / 2 further
        self._viewer.add_labels(
            mask.mask.astype(np.uint8), name=f"{name} tissue", opacity=0.4, units=layer.units,
            scale=(ds[0] * s, ds[1] * s), translate=tuple(origin + (np.asarray(ds) - 1) / 2 * s),
        )  # fmt: skip
        size = grid.tile_px_level0
        rects = [
            origin + (np.array([[r, c], [r + size, c + size]]) - 0.5) * s for r, c in grid.origins_rc.tolist()
        ]
        shapes = self._viewer.add_shapes(
            rects, shape_type="rectangle", name=f"{name} tiles ({len(grid)})", edge_color="yellow",
            face_color="transparent", edge_width=max(size * s / 50, 0.5),
            features={"tissue_fraction": np.asarray(found.fractions)}, units=layer.units,
        )  # fmt: skip
        shapes.metadata["napari_histo"] = {"tile_count": len(grid), "tile_px": grid.tile_px}


def _default_model_grid() -> tuple[float, int]:
    """µm/px and patch size of the shipped default model, so the grid drawn is the grid it runs on."""
    from napari_histo.pipeline.model import DEFAULT_MODEL, resolve_model

    try:
        spec = resolve_model(DEFAULT_MODEL).spec
    except Exception:  # noqa: BLE001 - an installation without the shipped model: the usual 20x patches
        return 0.5, 224
    return spec.spacing_um_px, spec.patch_size_pixels
