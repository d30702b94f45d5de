"""napari reader contribution: a slide file becomes a multiscale RGB Image layer in µm.

``get_slide_reader`` never raises: files it cannot read give ``None`` (so other
readers may try), and damaged slides also show a notification that says why.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePath
from typing import Any

from napari_histo.errors import HistoError, UnsupportedFormatError
from napari_histo.io import SLIDE_EXTENSIONS, Slide, open_slide
from napari_histo.io._dicom_parts import is_dicom_folder
from napari_histo.io._omezarr_parts import is_omezarr
from napari_histo.io.slide import OPENSLIDE_EXTENSIONS
from napari_histo.pipeline.session import SlideSession

__all__ = ["get_slide_reader", "slide_layer_data"]

log = logging.getLogger(__name__)
_SLIDE_ONLY_EXTENSIONS = (".svs", ".ndpi", ".qptiff", ".btf", ".tf8")


def _is_slide_source(path: str) -> bool:
    """A slide file by its name, a folder of DICOM files or an OME-Zarr image, or a URL of a slide."""
    name = path.lower().split("?", 1)[0].rstrip("/")
    if name.endswith(SLIDE_EXTENSIONS + OPENSLIDE_EXTENSIONS):
        return True
    if "://" in name:  # a DICOMweb series
        return "/dicomweb" in name or ("/studies/" in name and "/series/" in name)
    return is_dicom_folder(Path(path)) or is_omezarr(Path(path))


def get_slide_reader(path: str | list[str]) -> Any:
    """Return a reader function for a slide path, or ``None`` if this is not one.

    Paths: slide files (tifffile, or OpenSlide for MRXS, SCN, BIF, VMS ...),
    folders of DICOM files (wsidicom), and URLs of TIFF-family slides or
    DICOMweb series; the back-end is picked by content (see ``open_slide``).
    """
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if isinstance(path, PurePath):
        path = str(path)
    if not isinstance(path, str) or not _is_slide_source(path):
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


def slide_layer_data(slide: Slide | SlideSession) -> tuple[Any, dict[str, Any], str]:
    """A napari layer-data tuple for a slide: lazy levels, ``scale`` in µm/px, the session in metadata.

    The layer's metadata carries the pipeline session (the open slide and its
    µm/px) that the napari-histo docks work on.
    """
    session = slide if isinstance(slide, SlideSession) else SlideSession(slide)
    data = session.slide.to_dask()
    info = session.slide.level_info[0]
    samples = info.shape[2] if len(info.shape) == 3 else 1
    kwargs: dict[str, Any] = {
        "name": session.name,
        "multiscale": len(data) > 1,
        "rgb": samples in (3, 4),
        "metadata": {
            "napari_histo": {
                "session": session,
                "path": session.slide.source,
                "mpp": session.mpp,
                "mpp_source": session.mpp_source,
                "info": session.slide.info(),
            }
        },
    }
    if session.mpp is not None:
        kwargs["scale"] = (session.mpp, session.mpp)
        kwargs["units"] = ("µm", "µm")
    else:
        _notify(
            f"{session.name} has no µm/px in its metadata: shown in pixels. Tiling and models need a "
            "scale: give the slide's µm/px in a napari-histo dock ('slide µm/px') or --slide-mpp on the "
            "command line.",
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
