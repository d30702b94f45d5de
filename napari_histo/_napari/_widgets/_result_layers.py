"""Prediction results as napari layers: class Labels, a heatmap on demand, a legend and an area table."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo._napari._session import world_per_px
from napari_histo._napari._widgets._view import grid_layer_placement
from napari_histo.core.tiling import grid_cells

__all__ = [
    "add_prediction_layers",
    "add_segmentation_layer",
    "class_area_table",
    "label_colormap",
    "legend_html",
    "segmentation_area_table",
    "segmentation_labels",
    "show_heatmap",
]

#: masks with more pixels than this are shown lazily, as a pyramid read from the zarr store
MAX_IN_MEMORY_PX = 8192 * 8192


def label_colormap(spec: Any) -> Any:
    """Label k + 1 in class k's colour; 0 (not predicted) transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: (0, 0, 0, 0), None: (0, 0, 0, 0)}
    colors.update({i + 1: (*np.asarray(c) / 255, 1.0) for i, c in enumerate(spec.class_colors)})
    return DirectLabelColormap(color_dict=colors)


def add_prediction_layers(
    viewer: Any, result: Any, slide_layer: Any, model: Any = None, suffix: str = ""
) -> dict[str, Any]:
    """Show the class map (one Labels layer) over ``slide_layer``; returns it as ``{"classes": layer}``.

    One layer per result kind: the class map here; a probability heatmap only
    when asked for (:func:`show_heatmap`), so a run adds one layer (napari spends
    ~0.1-0.3 s of main thread per layer added or removed on a software-GL machine).
    A re-run updates the layer of the same name in place. The Labels layer carries
    the class names as features (shown under the cursor) and, in its metadata, the
    predictions and the ``model`` that made them.
    """
    spec = result.spec
    shape, cells = grid_cells(result.grid)
    labels = np.zeros(shape, np.uint8)
    labels[cells[:, 0], cells[:, 1]] = result.classes + 1  # 0 stays "not predicted"
    common = {"units": slide_layer.units, **grid_layer_placement(result.grid, slide_layer)}
    metadata = {"spec": spec.to_json_dict(), "kind": "tile classes", "predictions": result, "model": model}
    features = {"index": np.arange(spec.num_classes + 1), "class": ["none", *spec.class_names]}
    layer = _show_layer(
        viewer, "labels", f"{slide_layer.name} classes{suffix}", labels, common,
        {"opacity": 0.45, "colormap": label_colormap(spec), "features": features},
        metadata={"napari_histo": metadata},
    )  # fmt: skip
    viewer.layers.selection.active = layer
    return {"classes": layer}


def segmentation_labels(mask_path: Any, max_pixels: int = MAX_IN_MEMORY_PX) -> Any:
    """The stitched mask as Labels data: class k -> k + 1, not segmented (-1) -> 0 (transparent).

    Small masks are read into memory (call this in a worker); larger ones become a lazy
    pyramid (a list of dask arrays, halving down to at most 2048 px) read from the store.
    """
    import zarr

    labels: Any = zarr.open_group(str(mask_path), mode="r")["labels"]
    n_classes = len(zarr.open_group(str(mask_path), mode="r").attrs["class_names"])
    dtype = np.uint8 if n_classes < 255 else np.int32
    if labels.shape[0] * labels.shape[1] <= max_pixels:
        return (np.asarray(labels) + 1).astype(dtype)
    import dask.array as da

    full = (da.from_zarr(labels) + 1).astype(dtype)
    levels, step = [full], 2
    while max(full.shape) / step > 2048:
        levels.append(full[::step, ::step])
        step *= 2
    levels.append(full[::step, ::step])
    return levels


def add_segmentation_layer(viewer: Any, labels: Any, downsample: float, slide_layer: Any, model: Any,
                           info: dict[str, Any]) -> Any:  # fmt: skip
    """Show a stitched mask (:func:`segmentation_labels`) as one Labels layer over ``slide_layer``.

    ``downsample``: level-0 pixels per mask pixel.  Mask pixel ``i`` covers level-0
    pixels ``[i d - 0.5, (i + 1) d - 0.5)`` (pixel-centre convention), so its centre
    lies at ``(i d + d / 2 - 0.5) s`` in the world.  A re-run with the same model
    updates the layer of the same name in place (one layer per run kind).
    """
    from napari.layers import Labels

    spec = model.spec
    s = world_per_px(slide_layer)
    offset = np.asarray(slide_layer.translate[-2:], float) + (downsample / 2 - 0.5) * s
    common = {"units": slide_layer.units, "scale": (downsample * s,) * 2,
              "translate": tuple(float(v) for v in offset)}  # fmt: skip
    name = f"{slide_layer.name} {model.name} segmentation"
    multiscale = isinstance(labels, list)
    existing = next((layer for layer in viewer.layers if layer.name == name), None)
    if existing is not None and (not isinstance(existing, Labels) or existing.multiscale != multiscale):
        viewer.layers.remove(existing)
    features = {"index": np.arange(spec.num_classes + 1), "class": ["not segmented", *spec.class_names]}
    metadata = {"spec": spec.to_json_dict(), "kind": "segmentation", "model": model, **info}
    layer = _show_layer(
        viewer, "labels", name, labels, common,
        {"opacity": 0.45, "colormap": label_colormap(spec), "features": features, "multiscale": multiscale},
        metadata={"napari_histo": metadata},
    )  # fmt: skip
    viewer.layers.selection.active = layer
    return layer


def segmentation_area_table(summary: dict[str, Any]) -> dict[str, list]:
    """Columns of the per-class table of a segmentation summary: pixels, area in mm², fraction."""
    classes = summary["classes"]
    return {
        "class": list(classes),
        "pixels": [c["pixels"] for c in classes.values()],
        "area mm²": [c["area_mm2"] for c in classes.values()],
        "fraction": [f"{c['fraction']:.1%}" for c in classes.values()],
    }


def show_heatmap(viewer: Any, result: Any, slide_layer: Any, class_name: str | None, suffix: str = "") -> Any:
    """One heatmap layer per slide: p(``class_name``) for each predicted tile; ``None`` hides it.

    The layer is made on first use and then updated in place (data and name) when
    another class is chosen or the model is run again.
    """
    key = {"kind": "heatmap", "slide": slide_layer.name, "suffix": suffix}
    existing = next((layer for layer in viewer.layers if _tagged(layer, key)), None)
    if class_name is None:
        if existing is not None:
            existing.visible = False
        return existing
    spec = result.spec
    if class_name not in spec.class_names:
        raise ValueError(f"{class_name!r} is not one of the model's classes {list(spec.class_names)}")
    k = list(spec.class_names).index(class_name)
    shape, cells = grid_cells(result.grid)
    heat = np.zeros(shape, np.float32)
    heat[cells[:, 0], cells[:, 1]] = result.probabilities[:, k]
    name = f"{slide_layer.name} p({class_name}){suffix}"
    placement = grid_layer_placement(result.grid, slide_layer)
    if existing is None:
        style = {"colormap": "inferno", "contrast_limits": (0, 1), "opacity": 0.6}
        return viewer.add_image(
            heat, name=name, units=slide_layer.units, metadata={"napari_histo": key}, **style, **placement
        )
    existing.data = heat
    existing.scale, existing.translate = placement["scale"], placement["translate"]
    existing.name, existing.visible = name, True
    return existing


def _tagged(layer: Any, key: dict[str, Any]) -> bool:
    meta = layer.metadata.get("napari_histo", {})
    return isinstance(meta, dict) and all(meta.get(k) == v for k, v in key.items())


def _show_layer(viewer: Any, kind: str, name: str, data: np.ndarray, common: dict[str, Any],
                new_only: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """The layer ``name``: updated in place when it exists (same kind), else added with ``new_only`` too."""
    existing = next((layer for layer in viewer.layers if layer.name == name), None)
    from napari.layers import Image, Labels

    if existing is not None and isinstance(existing, Labels if kind == "labels" else Image):
        existing.data = data
        existing.scale, existing.translate = common["scale"], common["translate"]
        if kind == "labels":
            existing.colormap, existing.features = new_only["colormap"], new_only["features"]
        if metadata is not None:
            existing.metadata.update(metadata)
        return existing
    if existing is not None:
        viewer.layers.remove(existing)
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    return add(data, name=name, metadata=metadata or {}, **common, **new_only)


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
