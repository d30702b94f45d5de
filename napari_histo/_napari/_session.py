"""The pipeline session a slide layer carries, and how world coordinates map to its level-0 pixels.

The reader opens a slide once and puts its
:class:`~napari_histo.pipeline.session.SlideSession` in the layer's metadata;
every dock works on that session (one open file, one tile cache).  A slide
without µm/px is shown in pixels (scale 1); when the user gives its µm/px in a
dock, :func:`set_slide_mpp` puts it on the session *and* rescales the layer to
µm, so results drawn afterwards land on the slide.  Results are placed with
the layer's own scale (:func:`world_per_px`), never with an assumed µm/px.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_histo.errors import InvalidParameterError
from napari_histo.pipeline.session import SlideSession

__all__ = ["set_slide_mpp", "slide_session", "world_per_px", "world_to_level0"]

_KEY = "napari_histo"


def slide_session(layer: Any) -> SlideSession:
    """The session of a slide layer opened by napari-histo, or an error that says how to get one."""
    info = getattr(layer, "metadata", {}).get(_KEY, {}) if layer is not None else {}
    session = info.get("session")
    if not isinstance(session, SlideSession):
        name = getattr(layer, "name", None)
        raise InvalidParameterError(
            f"{'layer ' + repr(name) if name else 'no layer'}: choose a slide opened by napari-histo "
            "(File > Open, or drag a .svs/.ndpi/.tif onto napari)"
        )
    return session


def set_slide_mpp(layer: Any, mpp: float | None) -> SlideSession:
    """Give the slide layer's session a user µm/px and show the layer in µm; returns the session.

    ``None`` or 0 (a dock's "0: from the file") keeps the session's µm/px as it is.
    """
    if not mpp:
        return slide_session(layer)
    session = slide_session(layer).with_mpp(mpp)
    info = layer.metadata[_KEY]
    info["session"] = session
    info["mpp"] = session.mpp
    if session.mpp is not None and not np.allclose(layer.scale[-2:], session.mpp):
        layer.scale = (*layer.scale[:-2], session.mpp, session.mpp)
        layer.units = ("µm", "µm")
    return session


def world_per_px(layer: Any) -> float:
    """World units (µm, or px for a slide without µm/px) per level-0 pixel of a slide layer."""
    return float(layer.scale[-1])


def world_to_level0(layer: Any, points_world: np.ndarray) -> np.ndarray:
    """World (row, col) points → level-0 pixel (row, col) of the slide layer."""
    points = np.asarray(points_world, dtype=float)[..., -2:]
    return (points - np.asarray(layer.translate[-2:], float)) / np.asarray(layer.scale[-2:], float)
