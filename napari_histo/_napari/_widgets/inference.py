"""Dock widget: run a model on a slide layer → class Labels, probability heatmaps, Grad-CAM, QuPath.

The widget only gathers values and forwards them to :mod:`napari_histo.models`
(imported inside the worker, so opening napari loads no torch).  Inference runs
in a thread worker that yields progress; Cancel stops it after the batch in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    Table,
    create_widget,
)

from napari_histo._napari._widgets._ml_stack import ensure_ml_stack
from napari_histo._napari._widgets._result_layers import (
    add_prediction_layers,
    class_area_table,
    grid_layer_placement,
    legend_html,
)
from napari_histo._napari._widgets._workers import start_with_cancel

__all__ = ["InferenceWidget", "grid_layer_placement", "run_inference", "viewer_camera", "visible_bounds_rc"]

REGIONS = ("whole slide", "visible region", "drawn ROI")


def run_inference(path: str, slide_mpp: float | None, model_dir: str, device: str, batch_size: int,
                  min_tissue: float, region: tuple[str, Any] | None = None):  # fmt: skip
    """Generator for the worker: yields (done, total); returns (TilePredictions, model, spec).

    ``region`` limits the run: ``("box", (row0, col0, row1, col1))`` keeps tiles overlapping a
    level-0 box, ``("polygons", [(k, 2) row/col arrays])`` tiles whose centre is inside a polygon.
    """
    from napari_histo.core.tiling import select_tiles
    from napari_histo.core.viewport import tiles_in_polygons, tiles_in_view
    from napari_histo.io import open_slide
    from napari_histo.io.patches import tissue_tile_grid
    from napari_histo.models import load_model, load_spec
    from napari_histo.models.engine import InferenceConfig, InferenceProgress, predict_tiles
    from napari_histo.models.loading import resolve_model_dir

    model_path = resolve_model_dir(model_dir)
    spec = load_spec(model_path)
    model = load_model(model_path, device=device)
    with open_slide(path, mpp=slide_mpp, on_error="fill") as slide:
        grid, _ = tissue_tile_grid(slide, spec.spacing_um_px, spec.patch_size_pixels, min_tissue)
        if region is not None:
            kind, shape = region
            keep = tiles_in_view(grid, shape) if kind == "box" else tiles_in_polygons(grid, shape)
            grid = select_tiles(grid, keep)
        if len(grid) == 0:
            raise ValueError(
                f"no tile with at least {min_tissue:.0%} tissue here; lower 'min tissue' or pan to tissue"
            )
        config = InferenceConfig(device=device, batch_size=batch_size, workers=4)
        result = None
        for item in predict_tiles(slide, spec, grid, model, config=config):
            if isinstance(item, InferenceProgress):
                yield item.done, item.total
            else:
                result = item
    return result, model, spec


class InferenceWidget(Container):
    """Model, device, batch size, region → Labels (class colours), heatmaps, Grad-CAM, QuPath export."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self._last: dict[str, Any] | None = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.model_dir = FileEdit(mode="d", label="model folder")
        self.builtin = ComboBox(choices=_builtin_models(), label="or built-in", nullable=True, value=None)
        self.device = ComboBox(choices=["auto", "cpu", "cuda"], value="auto", label="device")
        self.batch_size = SpinBox(value=64, min=1, max=4096, label="batch size")
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="min tissue")
        self.region = ComboBox(choices=list(REGIONS), value="whole slide", label="run on")
        self.roi_layer = create_widget(annotation="napari.layers.Shapes", label="ROI layer")
        self.live = CheckBox(value=False, text="live: follow the view (visible tiles first)")
        self.run_button = PushButton(text="Run model")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=1, value=0, label="progress")
        self.summary = Label(value="", label="result")
        self.legend = Label(value="", label="legend")
        self.areas = Table(value={"class": [], "tiles": [], "area mm²": [], "fraction": []}, label="areas")
        self.gradcam_button = PushButton(text="Grad-CAM of visible tiles", enabled=False)
        self.cursor_cam = CheckBox(value=False, text="Grad-CAM of the tile under the cursor", enabled=False)
        self.export_path = FileEdit(mode="w", filter="*.geojson", label="QuPath file")
        self.export_button = PushButton(text="Export to QuPath", enabled=False)
        controls = [self.layer, self.model_dir, self.builtin, self.device, self.batch_size, self.min_tissue]
        actions = [
            self.region,
            self.roi_layer,
            self.live,
            self.run_button,
            self.cancel_button,
            self.progress,
            self.summary,
        ]
        outputs = [
            self.legend,
            self.areas,
            self.gradcam_button,
            self.cursor_cam,
            self.export_path,
            self.export_button,
        ]
        super().__init__(widgets=controls + actions + outputs)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.gradcam_button.changed.connect(self.show_gradcam)
        self.export_button.changed.connect(self.export_qupath)
        self.live.changed.connect(self._toggle_live)
        self.cursor_cam.changed.connect(self._toggle_cursor_cam)
        self.cursor_gradcam: Any = None
        self._bind_keys()
        self.live_predictor: Any = None

    # -- running ------------------------------------------------------------------------
    def run(self) -> Any:
        from napari.qt.threading import create_worker

        layer = self._slide_layer()
        meta = layer.metadata["napari_histo"]
        model = self.builtin.value or str(self.model_dir.value)
        if not self.builtin.value and not Path(model, "model.json").exists():
            raise ValueError(f"{model} has no model.json: choose a model folder or a built-in model")
        ensure_ml_stack()
        self._worker = create_worker(
            run_inference, meta["path"], meta.get("mpp"), model, self.device.value, self.batch_size.value,
            self.min_tissue.value, self._region(meta), _start_thread=False,
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(lambda out: self._show(out, layer, model))
        self._worker.errored.connect(lambda exc: setattr(self.summary, "value", f"failed: {exc}"))
        self.summary.value = "running ..."
        return start_with_cancel(self._worker, self.cancel_button)

    def _toggle_live(self, on: bool) -> Any:
        """Start or stop live prediction of the view with the chosen model."""
        from napari_histo._napari._widgets.live import LivePredictor

        if self.live_predictor is not None:
            self.live_predictor.stop()
            self.live_predictor = None
        if not on:
            return None
        layer = self._slide_layer()
        model = self.builtin.value or str(self.model_dir.value)
        ensure_ml_stack()
        self.live_predictor = LivePredictor(self._viewer, layer, model, device=self.device.value,
                                            batch_size=min(32, self.batch_size.value),
                                            min_tissue=self.min_tissue.value)  # fmt: skip
        return self.live_predictor.start()

    def _bind_keys(self) -> None:
        """Shift-P runs the model, Shift-L toggles live prediction, Shift-G Grad-CAM under the cursor."""
        actions = {
            "Shift-P": lambda viewer: self.run(),
            "Shift-L": lambda viewer: setattr(self.live, "value", not self.live.value),
            "Shift-G": lambda viewer: (
                self.cursor_cam.enabled and setattr(self.cursor_cam, "value", not self.cursor_cam.value)
            ),
        }
        for key, action in actions.items():
            self._viewer.bind_key(key, action, overwrite=True)
        self.run_button.tooltip = "Shift-P"
        self.live.tooltip = "Shift-L"
        self.cursor_cam.tooltip = "Shift-G"

    def _toggle_cursor_cam(self, on: bool) -> None:
        from napari_histo._napari._widgets._cursor_gradcam import CursorGradCam

        if self.cursor_gradcam is not None:
            self.cursor_gradcam.disable()
            self.cursor_gradcam = None
        if on and self._last is not None:
            self.cursor_gradcam = CursorGradCam(self._viewer, self._last)
            self.cursor_gradcam.enable()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.summary.value = "cancelled"

    def _on_progress(self, value: tuple[int, int]) -> None:
        done, total = value
        self.progress.max = max(1, total)
        self.progress.value = done

    def _slide_layer(self) -> Any:
        layer = self.layer.value
        if layer is None or "napari_histo" not in layer.metadata:
            raise ValueError("choose an Image layer opened by napari-histo (File > Open a slide)")
        return layer

    def _region(self, meta: dict[str, Any]) -> tuple[str, Any] | None:
        if self.region.value == "visible region":
            return "box", self._visible_bounds_rc(meta)
        if self.region.value == "drawn ROI":
            return "polygons", self._roi_polygons_rc(meta.get("mpp") or 1.0)
        return None

    def _roi_polygons_rc(self, mpp: float) -> list[np.ndarray]:
        """Level-0 (row, col) polygons of the shapes in the ROI layer (world µm / µm per px)."""
        layer = self.roi_layer.value
        if layer is None or len(layer.data) == 0:
            raise ValueError(
                "draw a region first: add a Shapes layer, draw a rectangle or polygon, pick it as ROI"
            )
        return [np.asarray([layer.data_to_world(v) for v in shape])[:, -2:] / mpp for shape in layer.data]

    def _visible_bounds_rc(self, meta: dict[str, Any]) -> tuple[float, float, float, float]:
        return visible_bounds_rc(self._viewer, meta.get("mpp") or 1.0)

    # -- results --------------------------------------------------------------------------
    def _show(self, out: tuple, layer: Any, model_ref: str = "") -> None:
        result, model, spec = out
        if result is None:
            return
        mpp = layer.metadata["napari_histo"].get("mpp") or 1.0
        layers = add_prediction_layers(self._viewer, result, layer, mpp)
        self.legend.value = legend_html(spec)
        self.areas.value = class_area_table(result, mpp)
        self.summary.value = f"{len(result.classes):,} tiles in {result.elapsed_s:.1f} s"
        layers["classes"].metadata["napari_histo"].update({"predictions": result, "model": model_ref})
        self._last = {"result": result, "model": model, "spec": spec, "layer": layer, "mpp": mpp, **layers}
        self.gradcam_button.enabled = self.export_button.enabled = self.cursor_cam.enabled = True

    def show_gradcam(self, max_tiles: int = 64) -> Any:
        """Grad-CAM heatmap of (up to ``max_tiles``) predicted tiles in view, as an Image layer."""
        from napari_histo.io import open_slide
        from napari_histo.io.patches import read_tile
        from napari_histo.models.gradcam import grad_cam

        if self._last is None:
            raise ValueError("run the model first")
        last = self._last
        result, spec, mpp = last["result"], last["spec"], last["mpp"]
        meta = last["layer"].metadata["napari_histo"]
        r0, c0, r1, c1 = self._visible_bounds_rc(meta)
        b = result.grid.bounds_rc()
        inside = np.flatnonzero((b[:, 2] > r0) & (b[:, 0] < r1) & (b[:, 3] > c0) & (b[:, 1] < c1))[:max_tiles]
        if inside.size == 0:
            raise ValueError("no predicted tile is visible: pan to the classes layer first")
        with open_slide(meta["path"], mpp=meta.get("mpp")) as slide:
            tiles = np.stack([read_tile(slide, result.grid, int(i)) for i in inside])
        maps, _ = grad_cam(last["model"], tiles, spec)
        mosaic, top_rc, px_l0 = _mosaic(maps, result.grid.origins_rc[inside], result.grid.tile_px_level0)
        # mosaic pixel (0, 0) spans level-0 [top - 0.5, top - 0.5 + px_l0): its centre in µm
        translate = tuple((top_rc - 0.5 + px_l0 / 2) * mpp)
        self._viewer.add_image(mosaic, name=f"{last['layer'].name} Grad-CAM", colormap="turbo", opacity=0.5,
                               contrast_limits=(0, 1), scale=(px_l0 * mpp,) * 2, translate=translate,
                               units=last["layer"].units)  # fmt: skip
        return maps

    def export_qupath(self) -> Path:
        """Write the last result's tiles as QuPath GeoJSON to the chosen file."""
        from napari_histo.models.slide_job import write_tile_geojson

        if self._last is None:
            raise ValueError("run the model first")
        path = Path(str(self.export_path.value))
        if path.suffix != ".geojson":
            path = path.with_suffix(".geojson")
        count = write_tile_geojson(self._last["result"], path)
        self.summary.value = f"wrote {count:,} QuPath tiles to {path}"
        return path


def viewer_camera(viewer: Any) -> Any:
    """The canvas camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def visible_bounds_rc(viewer: Any, mpp: float) -> tuple[float, float, float, float]:
    """Level-0 (row0, col0, row1, col1) pixels of what the canvas shows now (slide in µm, ``mpp`` µm/px)."""
    camera = viewer_camera(viewer)
    centre = np.asarray(camera.center[-2:], float)
    size = np.asarray(viewer.window._qt_viewer.canvas.size[::-1], float) / camera.zoom
    r0, c0 = (centre - size / 2) / mpp
    r1, c1 = (centre + size / 2) / mpp
    return float(r0), float(c0), float(r1), float(c1)


def _mosaic(
    maps: np.ndarray, origins_rc: np.ndarray, tile_px_level0: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-tile maps (n, t, t) in one array, with its level-0 top-left and level-0 px per pixel."""
    t = maps.shape[1]
    px_l0 = tile_px_level0 / t
    top = origins_rc.min(axis=0).astype(np.float64)
    span = origins_rc.max(axis=0) - top + tile_px_level0
    mosaic = np.zeros(tuple(int(np.ceil(v / px_l0)) for v in span), np.float32)
    for (r, c), cam in zip(origins_rc, maps):
        y, x = round((r - top[0]) / px_l0), round((c - top[1]) / px_l0)
        window = mosaic[y : y + t, x : x + t]
        np.maximum(window, cam[: window.shape[0], : window.shape[1]], out=window)
    return mosaic, top, px_l0


def _builtin_models() -> list[str]:
    root = Path(__file__).resolve().parents[2] / "models" / "builtin"
    return sorted(p.name for p in root.iterdir() if (p / "model.json").exists()) if root.is_dir() else []
