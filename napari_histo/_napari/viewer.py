"""Open a slide in a new napari viewer (used by ``histo demo`` and scripts)."""

from __future__ import annotations

from typing import Any

from napari_histo._napari.reader import slide_layer_data
from napari_histo.io import Slide

__all__ = ["show_slide"]


def show_slide(slide: Slide, title: str = "napari-histo", block: bool = True) -> Any:
    """Show ``slide`` as a multiscale layer in µm with a scale bar; returns the viewer."""
    import napari

    viewer = napari.Viewer(title=title)
    data, kwargs, _ = slide_layer_data(slide)
    viewer.add_image(data, **kwargs)
    viewer.scale_bar.visible = True
    viewer.scale_bar.unit = "um" if slide.mpp is not None else None
    if block:
        napari.run()
    return viewer
