"""Dock widget: run a model on a slide layer → class Labels, probability heatmaps, Grad-CAM, QuPath.

The widget only gathers values and calls one :mod:`napari_histo.pipeline` verb
(``predict_slide``, ``gradcam_mosaic``, ``write_prediction_geojson``) on the
slide layer's session, in a thread worker that yields progress; Cancel stops
it after the batch in flight.  torch is loaded when a model first runs, never
when napari opens.

A segmentation model (``task: segmentation``, e.g. a U-Net) goes the way of
``histo predict``: :func:`~napari_histo.pipeline.predict.segment_slide` stitches
overlapping tiles into a mask (a zarr store in the cache), shown as one Labels
layer at the model's µm/px with the class areas in mm²; the classifier-only
tools (heatmaps, Grad-CAM) are disabled, and QuPath export writes the class regions.
"""

from __future__ import annotations

import re
from collections.abc import Generator
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

from napari_histo._napari._session import set_slide_mpp, slide_session, world_per_px, world_to_level0
from napari_histo._napari._widgets._docking import tabify_when_docked
from napari_histo._napari._widgets._feedback import guarded, report, wrap_text
from napari_histo._napari._widgets._ml_stack import in_worker
from napari_histo._napari._widgets._result_layers import (
    add_prediction_layers,
    add_segmentation_layer,
    class_area_table,
    legend_html,
    segmentation_area_table,
    segmentation_labels,
    show_heatmap,
)
from napari_histo._napari._widgets._view import visible_bounds_rc
from napari_histo._napari._widgets._workers import make_worker, start_with_cancel
from napari_histo.core.viewport import tiles_in_view
from napari_histo.errors import InvalidParameterError
from napari_histo.pipeline.model import DEFAULT_MODEL, ModelHandle, builtin_model_names, resolve_model
from napari_histo.pipeline.predict import Region, predict_slide, segment_slide, segmentation_areas_text

__all__ = ["InferenceWidget"]

REGIONS = ("whole slide", "visible region", "drawn ROI")
NO_HEATMAP = "none"
_TIPS = {
    "model_dir": "A folder with model.json and weights.safetensors (from histo train); wins over built-in.",
    "builtin": "A model shipped with napari-histo.",
    "device": "auto uses the GPU when there is one.",
    "batch_size": "Tiles the model sees at once; lower it if the GPU runs out of memory.",
    "min_tissue": "Predict tiles whose area is at least this fraction tissue (0.5 = half).",
    "slide_mpp": "The slide's own µm/px, for files that lack it (0: use the file's). Set once for the slide.",
    "region": "Predict the whole slide, what the view shows, or inside shapes drawn in the ROI layer.",
    "heatmap": "Show one class's probability per tile (0-1, inferno colours) as a layer; none hides it.",
    "export_path": "Where the QuPath GeoJSON goes; empty: beside the slide, named after it.",
}
#: why the classifier-only tools are off after a segmentation model ran
NOT_FOR_SEGMENTATION = (
    "Only for a tile classifier: a segmentation model's result is its class mask (the Labels layer)."
)
NOT_FOR_SLIDE_LEVEL = (
    "Only for a tile classifier: a slide-level model's result is its slide call and the attention layer."
)


def is_segmentation(model: ModelHandle) -> bool:
    return model.spec.task.value == "segmentation"


def segment_for_view(
    session: Any, model: ModelHandle, store: Path, min_tissue: float, config: Any
) -> Generator[Any, None, dict[str, Any]]:
    """Worker verb: stitched segmentation of the slide, its summary (class areas) and the Labels data."""
    from napari_histo.pipeline.slide_job import SlideJob, summarize_segmentation

    work = segment_slide(session, model, store, min_tissue=min_tissue, config=config)
    result, grid, fractions = yield from work
    job = SlideJob(Path(session.path), store.parent, config, min_tissue)
    summary = summarize_segmentation(result, job, grid, fractions, model.spec.class_names, model.name)
    return {
        "summary": summary,
        "labels": segmentation_labels(result.store_path),
        "downsample": grid.target_mpp / grid.slide_mpp,
        "slide_mpp": grid.slide_mpp,
        "store": result.store_path,
    }


def segmentation_store(session: Any, model: ModelHandle) -> Path:
    """Where a slide's stitched mask goes: the cache, per slide and model (a cancelled run resumes)."""
    from napari_histo.data.samples import cache_dir
    from napari_histo.pipeline.tiles import slide_stem

    name = re.sub(r"[^\w.-]+", "_", model.name)
    folder = cache_dir() / "segmentations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{slide_stem(Path(session.path))}.{name}.mask.zarr"


class InferenceWidget(Container):
    """Model, device, batch size, region → Labels (class colours), heatmaps, Grad-CAM, QuPath export."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self._last: dict[str, Any] | None = None
        self.layer = create_widget(annotation="napari.layers.Image", label="slide")
        self.model_dir = FileEdit(mode="d", label="model folder", value="")
        shipped = builtin_model_names()
        default = DEFAULT_MODEL if DEFAULT_MODEL in shipped else None
        self.builtin = ComboBox(choices=shipped, label="or built-in", nullable=True, value=default)
        self.device = ComboBox(choices=["auto", "cpu", "cuda"], value="auto", label="device")
        self.batch_size = SpinBox(value=64, min=1, max=4096, label="batch size")
        self.min_tissue = FloatSpinBox(value=0.5, min=0, max=1, step=0.05, label="least tissue per tile")
        self.slide_mpp = FloatSpinBox(value=0.0, min=0, max=100, step=0.01, label="slide µm/px (0: file)")
        self.region = ComboBox(choices=list(REGIONS), value="whole slide", label="run on")
        self.roi_layer = create_widget(annotation="napari.layers.Shapes", label="ROI layer")
        self.live = CheckBox(value=False, text="live: follow the view (visible tiles first)")
        self.run_button = PushButton(text="Run model")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=1, value=0, label="progress")
        self.summary = Label(value="", label="result")
        self.legend = Label(value="", label="legend")
        self.areas = Table(value={"class": [], "tiles": [], "area mm²": [], "fraction": []}, label="areas")
        # callable choices: napari resets docked widgets' choices whenever a layer is added
        self.heatmap = ComboBox(
            choices=self._heatmap_choices, value=NO_HEATMAP, label="heatmap of", enabled=False
        )
        self.gradcam_button = PushButton(text="Grad-CAM of visible tiles", enabled=False)
        self.cursor_cam = CheckBox(value=False, text="Grad-CAM of the tile under the cursor", enabled=False)
        self.export_path = FileEdit(mode="w", filter="*.geojson", label="QuPath file")
        self.export_button = PushButton(text="Export to QuPath", enabled=False)
        controls = [self.layer, self.model_dir, self.builtin, self.device, self.batch_size, self.min_tissue,
                    self.slide_mpp]  # fmt: skip
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
            self.heatmap,
            self.gradcam_button,
            self.cursor_cam,
            self.export_path,
            self.export_button,
        ]
        super().__init__(widgets=controls + actions + outputs)
        tabify_when_docked(self)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.gradcam_button.changed.connect(lambda: self.show_gradcam())
        self.export_button.changed.connect(lambda: self.export_qupath())
        self.live.changed.connect(self._toggle_live)
        self.heatmap.changed.connect(lambda: self._show_heatmap())
        self.cursor_cam.changed.connect(self._toggle_cursor_cam)
        self.cursor_gradcam: Any = None
        self._bind_keys()
        self.live_predictor: Any = None
        self._models: dict[tuple[str, str], ModelHandle] = {}
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip
        wrap_text(self.summary, self.legend)
        from qtpy.QtWidgets import QHeaderView

        self.areas.native.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._classifier_tips = {w: w.tooltip for w in (self.heatmap, self.gradcam_button, self.cursor_cam)}

    # -- running ------------------------------------------------------------------------
    @guarded(lambda self: self.summary)
    def run(self) -> Any:
        """Predict the chosen region of the slide layer with the chosen model, in a worker."""
        layer = self.layer.value
        session = set_slide_mpp(layer, self.slide_mpp.value)
        session.require_mpp("a model's tiles")
        model = self.model()
        if is_segmentation(model):
            return self._run_segmentation(layer, session, model)
        if model.spec.task.value == "mil":
            return self._run_slide_level(layer, session, model)
        self._worker = make_worker(
            in_worker(predict_slide), session, model, min_tissue=self.min_tissue.value,
            region=self._region(layer), config=self._config(model),
            on_error=lambda exc: report(self.summary, exc),
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(lambda result: self._show(result, layer, model))
        self.summary.value = f"loading {model.name} and planning the tissue tiles ..."
        self.progress.max = 0  # busy until the first batch says how many tiles there are
        return start_with_cancel(self._worker, self.cancel_button)

    def _run_segmentation(self, layer: Any, session: Any, model: ModelHandle) -> Any:
        """Segment the whole slide with a segmentation model (stitched tiles), in a worker."""
        if self.region.value != "whole slide":
            raise InvalidParameterError(
                f"{model.name} is a segmentation model: it segments the whole slide; choose "
                "'run on: whole slide'"
            )
        if self._worker is not None and getattr(self._worker, "is_running", False):
            raise InvalidParameterError(
                "the model is still running in this dock: wait for it to finish, or press Cancel first"
            )
        store = segmentation_store(session, model)
        self._worker = make_worker(
            in_worker(segment_for_view), session, model, store, self.min_tissue.value, self._config(model),
            on_error=lambda exc: report(self.summary, exc),
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(lambda out: self._show_segmentation(out, layer, model))
        self.summary.value = f"loading {model.name} and planning the tissue tiles to segment ..."
        self.progress.max = 0
        return start_with_cancel(self._worker, self.cancel_button)

    def _run_slide_level(self, layer: Any, session: Any, model: ModelHandle) -> Any:
        """A slide-level (MIL) model: embed the slide with its encoder, then one call; attention heatmap."""
        from napari_histo.data.samples import cache_dir
        from napari_histo.pipeline.slide_level import slide_level_on_session

        if self._worker is not None and getattr(self._worker, "is_running", False):
            raise InvalidParameterError(
                "the model is still running in this dock: wait for it to finish, or press Cancel first"
            )
        self._worker = make_worker(
            in_worker(slide_level_on_session), session, model.directory, cache_dir() / "slide_level",
            device=model.device, batch_size=self.batch_size.value, min_tissue=self.min_tissue.value,
            on_error=lambda exc: report(self.summary, exc),
        )  # fmt: skip
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(lambda result: self._show_slide_level(result, layer, model))
        self.summary.value = f"{model.name} is a slide-level model: embedding the tissue tiles ..."
        self.progress.max = 0
        return start_with_cancel(self._worker, self.cancel_button)

    def _show_slide_level(self, result: Any, layer: Any, model: ModelHandle) -> None:
        from napari_histo.pipeline.slide_level import attention_map

        if result is None:
            return
        heat = show_heatmap(self._viewer, attention_map(result), layer, "attention", f" {model.name}")
        heat.metadata["napari_histo"]["slide_call"] = result.summary()
        self.summary.value = (
            f"slide call: {result.call} (p={result.probability:.2f}) from {len(result.attention):,} tiles; "
            "the attention layer shows which tiles the model weighed (brightest = most)"
        )
        self._last = {}
        # the legend and table show this result, not an earlier run's classes and areas
        self.legend.value = legend_html(model.spec)
        self.areas.value = {"class": list(result.class_names),
                            "probability": [round(float(p), 4) for p in result.probabilities]}  # fmt: skip
        self._classifier_tools(False, NOT_FOR_SLIDE_LEVEL)
        self.export_button.enabled = False

    def model(self) -> ModelHandle:
        """The chosen model, resolved once per (model, device) and kept with its loaded network."""
        folder = str(self.model_dir.value)
        chosen = folder not in ("", ".") and Path(folder, "model.json").exists()
        ref = folder if chosen else self.builtin.value
        if ref is None:
            where = f"{folder} has no model.json" if folder not in ("", ".") else "no model is chosen"
            raise InvalidParameterError(
                f"{where}: choose a model folder (with model.json) or a built-in model"
            )
        key = (ref, self.device.value)
        if key not in self._models:
            self._models[key] = resolve_model(ref, self.device.value)
        return self._models[key]

    def _config(self, model: ModelHandle) -> Any:
        from napari_histo.models.engine import InferenceConfig

        return InferenceConfig(device=model.device, batch_size=self.batch_size.value, workers=4)

    def _toggle_live(self, on: bool) -> Any:
        """Start or stop live prediction of the view with the chosen model (unticked again if it fails)."""
        from napari_histo._napari._widgets.live import LivePredictor

        if self.live_predictor is not None:
            self.live_predictor.stop()
            self.live_predictor = None
        if not on:
            return None
        try:
            layer = self.layer.value
            set_slide_mpp(layer, self.slide_mpp.value).require_mpp("a model's tiles")
            model = self.model()
            batch = min(32, self.batch_size.value)
            self.live_predictor = LivePredictor(
                self._viewer, layer, model, batch_size=batch, min_tissue=self.min_tissue.value,
                on_error=self._live_failed,
            )  # fmt: skip
            return self.live_predictor.start()
        except Exception as exc:  # noqa: BLE001 - shown in the dock, and the box unticked
            self._live_failed(exc)
            return None

    def _live_failed(self, exc: BaseException) -> None:
        report(self.summary, exc)
        if self.live_predictor is not None:
            self.live_predictor.stop()
            self.live_predictor = None
        with self.live.changed.blocked():
            self.live.value = False

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

    @guarded(lambda self: self.summary)
    def _toggle_cursor_cam(self, on: bool) -> None:
        from napari_histo._napari._widgets._cursor_gradcam import CursorGradCam

        if self.cursor_gradcam is not None:
            self.cursor_gradcam.disable()
            self.cursor_gradcam = None
        if on and self._last is not None and "result" in self._last:
            self.cursor_gradcam = CursorGradCam(self._viewer, self._last)
            self.cursor_gradcam.enable()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.summary.value = "cancelled"

    def _on_progress(self, item: Any) -> None:
        self.progress.max = max(1, item.total)
        self.progress.value = item.done
        rate = getattr(item, "tiles_per_s", 0.0)
        if rate:
            left = (item.total - item.done) / rate
            self.summary.value = (
                f"{item.done:,} of {item.total:,} tiles, {rate:,.0f} tiles/s, ~{left:,.0f} s left"
            )

    def _region(self, layer: Any) -> Region | None:
        if self.region.value == "visible region":
            return Region.box(*visible_bounds_rc(self._viewer, layer))
        if self.region.value == "drawn ROI":
            return Region.polygons(self._roi_polygons_rc(layer))
        return None

    def _roi_polygons_rc(self, slide_layer: Any) -> list[np.ndarray]:
        """Level-0 (row, col) polygons of the shapes in the ROI layer."""
        layer = self.roi_layer.value
        if layer is None or len(layer.data) == 0:
            raise InvalidParameterError(
                "draw a region first: add a Shapes layer, draw a rectangle or polygon, pick it as ROI"
            )
        return [world_to_level0(slide_layer, np.asarray([layer.data_to_world(v) for v in shape]))
                for shape in layer.data]  # fmt: skip

    # -- results --------------------------------------------------------------------------
    def _show(self, result: Any, layer: Any, model: ModelHandle) -> None:
        if result is None:
            return
        layers = add_prediction_layers(self._viewer, result, layer, model)
        self.legend.value = legend_html(model.spec)
        self.areas.value = class_area_table(result)
        self.summary.value = f"{len(result.classes):,} tiles in {result.elapsed_s:.1f} s"
        self._last = {"result": result, "model": model, "layer": layer, **layers}
        chosen = self.heatmap.value
        with self.heatmap.changed.blocked():
            self.heatmap.reset_choices()
            self.heatmap.value = chosen if chosen in self.heatmap.choices else NO_HEATMAP
        self._show_heatmap()
        self._classifier_tools(True)
        self.export_button.enabled = True

    def _show_segmentation(self, out: dict[str, Any] | None, layer: Any, model: ModelHandle) -> None:
        if out is None:
            return
        info = {"mask": str(out["store"]), "summary": out["summary"]}
        labels = add_segmentation_layer(self._viewer, out["labels"], out["downsample"], layer, model, info)
        summary = out["summary"]
        self.legend.value = legend_html(model.spec)
        self.areas.value = segmentation_area_table(summary)
        self.progress.max = max(1, self.progress.max)
        self.progress.value = self.progress.max
        self.summary.value = (
            f"{summary['n_tiles']:,} tiles segmented in {summary['elapsed_s']:.1f} s: "
            f"{segmentation_areas_text(summary['classes'])}"
        )
        self._last = {"task": "segmentation", "summary": summary, "model": model, "layer": layer,
                      "classes": labels, "store": out["store"], "slide_mpp": out["slide_mpp"]}  # fmt: skip
        with self.heatmap.changed.blocked():
            self.heatmap.reset_choices()
            self.heatmap.value = NO_HEATMAP
        self._classifier_tools(False)
        self.export_button.enabled = True

    def _classifier_tools(self, on: bool, why: str = NOT_FOR_SEGMENTATION) -> None:
        """Enable the tools that explain a tile classifier, or disable them saying ``why``."""
        if not on and self.cursor_cam.value:
            self.cursor_cam.value = False
        for widget, tip in self._classifier_tips.items():
            widget.enabled = on
            widget.tooltip = tip if on else why

    def _heatmap_choices(self, _widget: Any = None) -> list[str]:
        last = getattr(self, "_last", None)
        return [NO_HEATMAP, *(last["model"].spec.class_names if last and "result" in last else ())]

    @guarded(lambda self: self.summary)
    def _show_heatmap(self) -> None:
        """The heatmap of the class chosen under "heatmap of" (one layer, updated in place)."""
        if self._last is None or "result" not in self._last:
            return
        chosen = None if self.heatmap.value == NO_HEATMAP else self.heatmap.value
        if chosen is None and "heatmap" not in self._last:
            return
        self._last["heatmap"] = show_heatmap(self._viewer, self._last["result"], self._last["layer"], chosen)

    @guarded(lambda self: self.summary)
    def show_gradcam(self, max_tiles: int = 64) -> Any:
        """Grad-CAM of (up to ``max_tiles``) predicted tiles in view as an Image layer (in a worker)."""
        from napari_histo.pipeline.explain import gradcam_mosaic

        if self._last is None:
            raise InvalidParameterError("run the model first")
        if "result" not in self._last:
            raise InvalidParameterError(f"Grad-CAM: {NOT_FOR_SEGMENTATION}")
        last = self._last
        grid = last["result"].grid
        inside = tiles_in_view(grid, visible_bounds_rc(self._viewer, last["layer"]))[:max_tiles]
        if inside.size == 0:
            raise InvalidParameterError("no predicted tile is visible: pan to the classes layer first")
        session = slide_session(last["layer"])
        worker = make_worker(in_worker(gradcam_mosaic), session, last["model"], grid, inside,
                             on_error=lambda exc: report(self.summary, exc))  # fmt: skip
        worker.returned.connect(lambda mosaic: self._show_gradcam(mosaic, last["layer"]))
        self.summary.value = f"Grad-CAM of {inside.size} visible tiles ..."
        worker.start()
        return worker

    def _show_gradcam(self, mosaic: Any, layer: Any) -> None:
        s = world_per_px(layer)
        # mosaic pixel (0, 0) spans level-0 [top - 0.5, top - 0.5 + px_l0): its centre in world units
        translate = tuple(np.asarray(layer.translate[-2:]) + (mosaic.top_rc - 0.5 + mosaic.px_level0 / 2) * s)
        self._viewer.add_image(mosaic.image, name=f"{layer.name} Grad-CAM", colormap="turbo", opacity=0.5,
                               contrast_limits=(0, 1), scale=(mosaic.px_level0 * s,) * 2, translate=translate,
                               units=layer.units)  # fmt: skip
        self.summary.value = "Grad-CAM of the visible tiles shown (turbo colours: where the evidence lies)"

    @guarded(lambda self: self.summary)
    def export_qupath(self) -> Any:
        """Write the last result as QuPath GeoJSON to the chosen file (default: beside the slide).

        A classifier's tiles are written at once (returns the path); a segmentation's
        class regions are traced in a worker (returns the worker).
        """
        from napari_histo.pipeline.predict import write_segmentation_geojson
        from napari_histo.pipeline.qupath import write_prediction_geojson
        from napari_histo.pipeline.tiles import slide_stem

        if self._last is None:
            raise InvalidParameterError("run the model first")
        session = slide_session(self._last["layer"])
        path = Path(str(self.export_path.value))
        if str(self.export_path.value) in ("", ".") or path.is_dir():
            folder = session.path.parent if str(self.export_path.value) in ("", ".") else path
            path = folder / f"{slide_stem(session.path)}.geojson"
        elif path.suffix != ".geojson":
            path = path.with_suffix(".geojson")
        if "result" not in self._last:  # a segmentation: one annotation per class, traced from the mask
            last = self._last
            worker = make_worker(write_segmentation_geojson, last["store"], path, last["slide_mpp"],
                                 on_error=lambda exc: report(self.summary, exc))  # fmt: skip
            worker.returned.connect(
                lambda n: setattr(self.summary, "value", f"wrote {n:,} QuPath class regions to {path}")
            )
            self.summary.value = f"tracing the class regions into {path} ..."
            worker.start()
            return worker
        count = write_prediction_geojson(self._last["result"], path, session.name)
        self.summary.value = f"wrote {count:,} QuPath tiles to {path}"
        return path
