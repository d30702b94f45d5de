"""Open a slide in a new napari viewer (used by ``histo demo`` and scripts)."""

from __future__ import annotations

from typing import Any

from napari_histo._napari.reader import slide_layer_data
from napari_histo.io import Slide

__all__ = ["show_scale_bar", "show_slide"]


def show_slide(slide: Slide, title: str = "napari-histo", block: bool = True) -> Any:
    """Show ``slide`` as a multiscale layer in µm with a scale bar; returns the viewer."""
    import napari

    viewer = napari.Viewer(title=title)
    data, kwargs, _ = slide_layer_data(slide)
    viewer.add_image(data, **kwargs)
    show_scale_bar(viewer)
    if block:
        napari.run()
    return viewer


def show_scale_bar(viewer: Any) -> None:
    """Show the scale bar; its unit comes from the layers' ``units`` (µm for slides)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    bar = overlays.scale_bar if overlays is not None else viewer.scale_bar  # napari >= 0.9 / older
    bar.visible = True
