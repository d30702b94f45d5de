"""napari reader contribution: a slide file becomes a multiscale RGB Image layer in µm.

``get_slide_reader`` never raises: files it cannot read give ``None`` (so other
readers may try), and damaged slides also show a notification that says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from napari_histo.errors import HistoError, UnsupportedFormatError
from napari_histo.io import SLIDE_EXTENSIONS, Slide, open_slide

__all__ = ["get_slide_reader", "slide_layer_data"]

log = logging.getLogger(__name__)
_SLIDE_ONLY_EXTENSIONS = (".svs", ".ndpi", ".qptiff", ".btf", ".tf8")


def get_slide_reader(path: str | list[str]) -> Any:
    """Return a reader function for a slide path, or ``None`` if this is not one."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str) or not path.lower().endswith(SLIDE_EXTENSIONS):
        return None
    try:
        slide = open_slide(path, on_error="fill")
    except UnsupportedFormatError as exc:
        if path.lower().endswith(_SLIDE_ONLY_EXTENSIONS):
            _notify(str(exc))
        else:
            log.debug("napari-histo leaves %s to other readers: %s", path, exc)
        return None
    except HistoError as exc:
        _notify(str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a reader must never crash napari
        _notify(f"{path}: napari-histo could not open this file ({type(exc).__name__}: {exc}).")
        return None

    def read(_path: Any) -> list[tuple[Any, dict[str, Any], str]]:
        return [slide_layer_data(slide)]

    return read


def slide_layer_data(slide: Slide) -> tuple[Any, dict[str, Any], str]:
    """A napari layer-data tuple for ``slide``: lazy levels, ``scale`` in µm/px."""
    data = slide.to_dask()
    samples = slide.level_info[0].shape[2] if len(slide.level_info[0].shape) == 3 else 1
    mpp = slide.mpp if slide.mpp is not None else 1.0
    kwargs: dict[str, Any] = {
        "name": Path(slide.path).name,
        "multiscale": len(data) > 1,
        "rgb": samples in (3, 4),
        "scale": (mpp, mpp),
        "metadata": {
            "napari_histo": {
                "path": str(slide.path),
                "mpp": slide.mpp,
                "mpp_source": slide.mpp_source,
                "info": slide.info(),
            }
        },
    }
    if slide.mpp is not None:
        kwargs["units"] = ("µm", "µm")
    else:
        _notify(
            f"{Path(slide.path).name} has no µm/px in its metadata: shown in pixels. "
            "Tiling and models need a scale; pass --mpp on the command line or set it in the "
            "napari-histo widgets.",
            level="info",
        )
    if len(data) == 1:
        kwargs["multiscale"] = False
        data = data[0]
    return data, kwargs, "image"


def _notify(message: str, level: str = "warning") -> None:
    try:
        from napari.utils.notifications import show_info, show_warning

        (show_info if level == "info" else show_warning)(message)
    except Exception:  # noqa: BLE001 - without napari's notification manager, log instead
        log.warning(message)
