"""Prediction results as napari layers: class Labels, heatmaps, a legend and a per-class area table."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo._napari._widgets._view import grid_layer_placement
from napari_histo.core.tiling import grid_cells

__all__ = ["add_prediction_layers", "class_area_table", "label_colormap", "legend_html"]


def label_colormap(spec: Any) -> Any:
    """Label k + 1 in class k's colour; 0 (not predicted) transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: (0, 0, 0, 0), None: (0, 0, 0, 0)}
    colors.update({i + 1: (*np.asarray(c) / 255, 1.0) for i, c in enumerate(spec.class_colors)})
    return DirectLabelColormap(color_dict=colors)


def add_prediction_layers(
    viewer: Any, result: Any, slide_layer: Any, model: Any = None, suffix: str = ""
) -> dict[str, Any]:
    """Show the class map (Labels) and one heatmap per class over ``slide_layer``; returns them by name.

    A re-run replaces the layers of the same name instead of adding more.  The
    heatmaps start hidden, so what is shown by default is what the legend shows;
    the Labels layer carries the class names as features (shown under the cursor)
    and, in its metadata, the predictions and the ``model`` that made them.
    """
    spec = result.spec
    shape, cells = grid_cells(result.grid)
    labels = np.zeros(shape, np.uint8)
    labels[cells[:, 0], cells[:, 1]] = result.classes + 1  # 0 stays "not predicted"
    placement = grid_layer_placement(result.grid, slide_layer)
    name, units = slide_layer.name, slide_layer.units
    names = {"classes": f"{name} classes{suffix}"}
    names.update({c: f"{name} p({c}){suffix}" for c in spec.class_names})
    for old in [layer for layer in viewer.layers if layer.name in names.values()]:
        viewer.layers.remove(old)
    layers = {
        "classes": viewer.add_labels(
            labels,
            name=names["classes"],
            opacity=0.45,
            units=units,
            colormap=label_colormap(spec),
            metadata={
                "napari_histo": {
                    "spec": spec.to_json_dict(),
                    "kind": "tile classes",
                    "predictions": result,
                    "model": model,
                }
            },
            features={"index": np.arange(spec.num_classes + 1), "class": ["none", *spec.class_names]},
            **placement,
        )
    }
    for k, class_name in enumerate(spec.class_names):
        heat = np.zeros(shape, np.float32)
        heat[cells[:, 0], cells[:, 1]] = result.probabilities[:, k]
        layers[class_name] = viewer.add_image(
            heat,
            name=names[class_name],
            colormap="inferno",
            contrast_limits=(0, 1),
            opacity=0.6,
            units=units,
            visible=False,
            **placement,
        )
    viewer.layers.selection.active = layers["classes"]
    return layers


def class_area_table(result: Any) -> dict[str, list]:
    """Columns of the per-class table: tiles, area in mm² (tile stride squared) and fraction."""
    spec = result.spec
    counts = np.bincount(result.classes, minlength=spec.num_classes)
    tile_mm2 = (result.grid.stride_px_level0 * result.grid.slide_mpp / 1000) ** 2
    total = max(1, int(counts.sum()))
    return {
        "class": list(spec.class_names),
        "tiles": [int(c) for c in counts],
        "area mm²": [round(float(c * tile_mm2), 4) for c in counts],
        "fraction": [f"{c / total:.1%}" for c in counts],
    }


def legend_html(spec: Any) -> str:
    """A one-line legend: a coloured square and the name of each class."""
    items = [
        f'<span style="color:#{r:02x}{g:02x}{b:02x}">&#9632;</span>&nbsp;{name}'
        for name, (r, g, b) in zip(spec.class_names, spec.class_colors)
    ]
    return "&nbsp;&nbsp;".join(items)
