"""Read a DICOM whole-slide image through ``wsidicom`` into the parts of a slide.

Two sources: a local folder of DICOM files (one series: a pyramid plus its
label and overview instances), or a DICOMweb series URL
``https://HOST/PREFIX/studies/<StudyInstanceUID>/series/<SeriesInstanceUID>``
(the part before ``/studies/`` is the DICOMweb root).  Each pyramid level
becomes a :class:`DicomLevel`, an array-like chunked on the level's tiles and
read with ``wsidicom``'s ``read_region`` at that level's own pixel grid.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from napari_histo.errors import (
    CorruptSlideError,
    InvalidParameterError,
    MissingDependencyError,
    UnsupportedFormatError,
)
from napari_histo.io._metadata import Calibration, plausible_mpp
from napari_histo.io._slide_parts import ClosesOnce, LevelInfo, SlideParts
from napari_histo.io._tile_reader import LevelReader, guard_allocation, one_line

__all__ = ["DicomLevel", "is_dicom_folder", "open_dicom_folder", "open_dicomweb", "parse_dicomweb_url"]

INSTALL_HINT = "pip install 'napari-histo[dicom]' (wsidicom)"

_DICOMWEB_URL = re.compile(
    r"^(?P<root>https?://.+?)/studies/(?P<study>[0-9.]+)/series/(?P<series>[0-9.]+)/?$"
)


def wsidicom_module(what: str) -> Any:
    """``wsidicom``, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        with warnings.catch_warnings():  # pydicom deprecations raised by dicomweb-client's imports
            warnings.simplefilter("ignore", DeprecationWarning)
            import wsidicom
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} is a DICOM whole-slide image; reading it needs wsidicom, which is not installed "
            f"({one_line(exc)}). Install it with: {INSTALL_HINT}"
        ) from exc
    return wsidicom


def is_dicom_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding DICOM files (``*.dcm``, or files with the ``DICM`` preamble)."""
    try:
        if not path.is_dir():
            return False
        entries = sorted(p for p in path.iterdir() if p.is_file())
    except (OSError, ValueError):  # a path too long, with a NUL byte ...: check_slide_file says why
        return False
    for entry in entries[:64]:
        if entry.suffix.lower() == ".dcm":
            return True
        try:
            with open(entry, "rb") as fh:
                if fh.read(132)[128:132] == b"DICM":
                    return True
        except OSError:
            continue
    return False


def parse_dicomweb_url(url: str) -> tuple[str, str, str]:
    """(DICOMweb root, study UID, series UID) of a series URL; :class:`InvalidParameterError` otherwise."""
    match = _DICOMWEB_URL.match(url.strip())
    if match is None:
        raise InvalidParameterError(
            f"{url}: not a DICOMweb series URL. Give the series itself: "
            "https://HOST/PREFIX/studies/<StudyInstanceUID>/series/<SeriesInstanceUID>"
        )
    return match.group("root"), match.group("study"), match.group("series")


class DicomLevel(LevelReader):
    """One level of a ``wsidicom`` pyramid as an array-like of 8-bit RGB."""

    def __init__(self, owner: _DicomHandle, level: Any, name: str) -> None:
        self._owner = owner
        self._level = int(level.level)  # wsidicom's level: log2 of its scale
        self._name = name
        self.shape = (int(level.size.height), int(level.size.width), 3)
        self.dtype = np.dtype(np.uint8)
        tile = level.tile_size
        self.chunk_shape = (min(int(tile.height), self.shape[0]), min(int(tile.width), self.shape[1]))

    def read_window(self, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        r0, c0 = max(0, r0), max(0, c0)
        r1, c1 = min(self.shape[0], r1), min(self.shape[1], c1)
        out = self._window(r0, c0, r1, c1, f"{self._name} level {self._level}")
        if out.size == 0:
            return out
        guard_allocation(
            (r1 - r0, c1 - c0, 4),
            np.uint8,
            f"{self._name}: a window of {c1 - c0:,} x {r1 - r0:,} px (decoded by wsidicom)",
            "read a smaller region or a coarser level",
        )
        try:
            region = self._owner.wsi.read_region((c0, r0), self._level, (c1 - c0, r1 - r0))
        except Exception as exc:  # a frame fails to decode or fetch
            raise CorruptSlideError(
                f"{self._name}: wsidicom cannot read rows {r0}-{r1}, cols {c0}-{c1} of the level at "
                f"scale 1/{2**self._level} ({one_line(exc)}). A DICOM file is damaged or was closed."
            ) from exc
        out[...] = _rgb(np.asarray(region))
        return out


def _rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2).astype(np.uint8)
    if pixels.shape[2] == 4:  # RGBA: wsidicom paints outside the image transparent
        alpha = pixels[..., 3:4].astype(np.uint32)
        mixed = (pixels[..., :3].astype(np.uint32) * alpha + 255 * (255 - alpha) + 127) // 255
        return mixed.astype(np.uint8)
    return np.ascontiguousarray(pixels[..., :3]).astype(np.uint8, copy=False)


class _DicomHandle(ClosesOnce):
    """The open ``WsiDicom``; ``close`` is idempotent."""

    def __init__(self, wsi: Any) -> None:
        super().__init__()
        self.wsi = wsi

    def _release(self) -> None:
        self.wsi.close()


class _AssociatedLoader:
    def __init__(self, read: Any, shape: tuple[int, ...]) -> None:
        self._read = read
        self.shape = shape

    def __call__(self) -> np.ndarray:
        return _rgb(np.asarray(self._read()))


def open_dicom_folder(path: Path) -> SlideParts:
    """Open a folder of DICOM files (one whole-slide series)."""
    wsidicom = wsidicom_module(str(path))
    try:
        wsi = wsidicom.WsiDicom.open(path)
    except Exception as exc:  # no WSI instances, mixed series, damaged files ...
        raise UnsupportedFormatError(
            f"{path}: wsidicom cannot open this folder as a DICOM whole-slide image ({one_line(exc)}). "
            "The folder must hold the DICOM files of one slide (its VL Whole Slide Microscopy instances)."
        ) from exc
    return _parts_or_close(_DicomHandle(wsi), str(path))


def open_dicomweb(url: str) -> SlideParts:
    """Open a DICOMweb series (see the module docstring for the URL form)."""
    root, study, series = parse_dicomweb_url(url)
    wsidicom = wsidicom_module(url)
    session = dicomweb_session()
    stored = stored_transfer_syntax(root, study, series, session=session)
    requested = None
    if stored is not None:  # the stored syntax first: frames as stored, never transcoded by the server
        from wsidicom.web import wsidicom_web_source as web_source

        fallback = [str(uid) for uid in getattr(web_source, "PREFERED_WEB_TRANSFER_SYNTAXES", [])]
        requested = [stored, *(uid for uid in fallback if uid != stored)]
    try:
        with _quiet_bulk_data():
            client = wsidicom.WsiDicomWebClient.create_client(root, auth=session)
            wsi = wsidicom.WsiDicom.open_web(client, study, series, requested_transfer_syntax=requested)
    except Exception as exc:  # network, authentication, no such series ...
        if _http_status(exc) in (401, 403):
            raise CorruptSlideError(
                f"{url}: the DICOMweb server refused the request ({_http_status(exc)}: credentials needed or "
                f"not accepted). {CREDENTIALS_HINT}"
            ) from exc
        raise CorruptSlideError(
            f"{url}: the DICOMweb series cannot be opened ({one_line(exc)}). Check the URL, the server "
            "and the network."
        ) from exc
    return _parts_or_close(_DicomHandle(wsi), url)


#: how a user gives DICOMweb credentials (never in the URL: it is recorded in outputs' settings)
CREDENTIALS_HINT = (
    "Set HISTO_DICOMWEB_TOKEN to a bearer token (e.g. `gcloud auth print-access-token` for Google Cloud "
    "Healthcare), or HISTO_DICOMWEB_USER and HISTO_DICOMWEB_PASSWORD for HTTP basic authentication."
)


def dicomweb_session() -> Any:
    """A ``requests`` session carrying the DICOMweb credentials of the environment, or ``None``.

    ``HISTO_DICOMWEB_TOKEN`` gives ``Authorization: Bearer <token>``; otherwise
    ``HISTO_DICOMWEB_USER`` (and ``HISTO_DICOMWEB_PASSWORD``) give HTTP basic authentication.
    """
    token = os.environ.get("HISTO_DICOMWEB_TOKEN", "").strip()
    user = os.environ.get("HISTO_DICOMWEB_USER", "")
    if not token and not user:
        return None
    import requests

    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    else:
        session.auth = (user, os.environ.get("HISTO_DICOMWEB_PASSWORD", ""))
    return session


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request somewhere in ``exc``'s chain, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if status is not None:
            return int(status)
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def _quiet_bulk_data() -> Iterator[None]:
    """pydicom warns (and logs) once per instance that it does not fetch bulk data such as the ICC
    profile from DICOMweb metadata; the slide reads without it (raw colours, ``color="raw"``)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No bulk data URI handler", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


_WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
_FRAME_SYNTAX = re.compile(r"transfer-syntax=\"?([0-9.]+)")


def stored_transfer_syntax(
    root: str, study: str, series: str, timeout: float = 10.0, session: Any = None
) -> str | None:
    """The transfer syntax a DICOMweb series' pyramid frames are stored in, or ``None`` when unknown.

    Asks for one frame with ``transfer-syntax=*`` (DICOMweb: "as stored") and reads the syntax from
    the reply's content type.  wsidicom's own default prefers JPEG baseline, which makes a server
    transcode frames stored otherwise; measured on Orthanc 1.10 with lossless-JPEG (YBR_FULL) frames,
    the transcoded frames came back in the wrong colours (mean error 47 grey levels), while frames as
    stored are the source's pixels exactly.
    """
    try:
        import requests

        http = session or requests
        base = f"{root.rstrip('/')}/studies/{study}/series/{series}"
        reply = http.get(f"{base}/instances", params={"includefield": "00080008"},
                             headers={"Accept": "application/dicom+json"}, timeout=timeout)  # fmt: skip
        reply.raise_for_status()
        instances = [
            item for item in reply.json()
            if _WSM_SOP_CLASS in item.get("00080016", {}).get("Value", [])
        ]  # fmt: skip
        volumes = [i for i in instances if "VOLUME" in i.get("00080008", {}).get("Value", [])]
        if not (volumes or instances):
            return None
        uid = (volumes or instances)[0]["00080018"]["Value"][0]
        accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        with http.get(f"{base}/instances/{uid}/frames/1", headers={"Accept": accept}, timeout=timeout,
                          stream=True) as frame:  # fmt: skip
            frame.raise_for_status()
            found = _FRAME_SYNTAX.search(frame.headers.get("Content-Type", ""))
        return found[1] if found else None
    except Exception:  # noqa: BLE001 - any server that cannot say: wsidicom's own choice
        return None


def _parts_or_close(handle: _DicomHandle, name: str) -> SlideParts:
    try:
        return _parts(handle, name)
    except BaseException:
        handle.close()
        raise


def _parts(handle: _DicomHandle, name: str) -> SlideParts:
    wsi = handle.wsi
    levels = sorted(wsi.levels, key=lambda level: int(level.level))
    if not levels:
        raise UnsupportedFormatError(f"{name}: the DICOM series holds no pyramid level.")
    readers = tuple(DicomLevel(handle, level, name) for level in levels)
    cols0 = readers[0].shape[1]
    rows0 = readers[0].shape[0]
    infos = tuple(
        LevelInfo(
            reader.shape,
            (rows0 / reader.shape[0] + cols0 / reader.shape[1]) / 2,
            reader.chunk_shape,
            _transfer_syntax(level),
        )
        for reader, level in zip(readers, levels)
    )
    mpp_size = getattr(levels[0], "mpp", None)
    mpp = None
    if mpp_size is not None:
        width, height = _float(mpp_size.width), _float(mpp_size.height)
        if width and height:
            mpp = plausible_mpp((width + height) / 2)
    associated: dict[str, Any] = {}
    for key, group, read in (
        ("label", wsi.labels, wsi.read_label),
        ("macro", wsi.overviews, wsi.read_overview),
    ):
        if group is None or not len(group):
            continue
        try:
            size = group[0].size
            shape: tuple[int, ...] = (int(size.height), int(size.width), 3)
        except Exception:  # noqa: BLE001 - the size is only shown by `histo info`
            shape = ()
        associated[key] = _AssociatedLoader(read, shape)
    properties = {"dicom_study_uid": str(getattr(wsi.uids, "study_instance", "") or "")}
    return SlideParts(
        format="dicom",
        vendor="dicom",
        calibration=Calibration(mpp, None, "DICOM PixelSpacing" if mpp else "none"),
        level_info=infos,
        properties=properties,
        readers=readers,
        associated=associated,
        close=handle.close,
    )


def _transfer_syntax(level: Any) -> str:
    try:
        return str(level.default_instance.image_data.transfer_syntax.name)
    except Exception:  # noqa: BLE001 - only a label for `histo info`
        return "dicom"


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
