"""QuPath project files: class lists (``classifiers/classes.json``) and ``project.qpproj``.

Class colours in these files are Java's signed 32-bit ARGB ints (``-3670016`` is
opaque ``(200, 0, 0)``).  ``data/<id>/data.qpdata`` is Java-serialised and is not read
here (QuPath or paquo are needed for it); export objects as GeoJSON instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from qupath_bridge._files import atomic_write
from qupath_bridge._parse_properties import parse_classification, parse_color
from qupath_bridge._report import ReadReport, short
from qupath_bridge.errors import ProjectError, QuPathFileNotFoundError
from qupath_bridge.objects import Classification, class_color, packed_argb

__all__ = [
    "ProjectImage",
    "read_class_list",
    "read_classification",
    "read_project",
    "write_class_list",
]


_MAX_PROJECT_BYTES = 256 * 2**20  # a project.qpproj of 10,000 images is a few MB


@dataclass(frozen=True)
class ProjectImage:
    """One image entry of a QuPath project.

    Attributes
    ----------
    entry_id : int
        QuPath's entry ID (``data/<entry_id>/`` in the project folder).
    name : str
        The name shown in QuPath.
    uri : str or None
        Image URI as stored (``file:/...``); ``path`` is its local path when it is a file URI.
    width, height : int or None
        Level-0 size in pixels.
    downsamples : tuple of float
        Pyramid level downsamples QuPath knows.
    mpp : float or None
        Pixel width in µm when calibrated in µm.
    server : dict
        The full ``serverBuilder`` JSON.
    """

    entry_id: int
    name: str
    uri: str | None
    width: int | None = None
    height: int | None = None
    downsamples: tuple[float, ...] = ()
    mpp: float | None = None
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """Local path of a ``file:`` URI, else None."""
        if not self.uri or not self.uri.startswith("file:"):
            return None
        return Path(unquote(urlparse(self.uri).path))


def read_class_list(path: str | os.PathLike) -> list[Classification]:
    """Classes of a QuPath project (``classifiers/classes.json``).

    Parameters
    ----------
    path : path-like
        The ``classes.json`` file, or the project folder / ``project.qpproj``.

    Returns
    -------
    list of Classification
        In QuPath's order, colours as ``(r, g, b[, a])``.
    """
    path = Path(path)
    if path.is_dir() or path.suffix == ".qpproj":
        path = (path if path.is_dir() else path.parent) / "classifiers" / "classes.json"
    data = _load(path)
    entries = data.get("pathClasses") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        got = f"keys {short(list(data)[:5], 80)}" if isinstance(data, dict) else short(data, 40)
        raise ProjectError(f"{path}: expected {{'pathClasses': [...]}}, got {got}")
    out = []
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise ProjectError(f"{path}: class {i} has no name: {short(entry, 80)}")
        color = parse_color(entry.get("color"))
        out.append(Classification.from_name(name, color if color is not None else class_color(name)))
    return out


def write_class_list(classes: list[Classification | str], path: str | os.PathLike) -> Path:
    """Write a QuPath class list (``classes.json``) atomically; colours as signed ARGB ints."""
    entries = []
    for cls in classes:
        cls = Classification.from_name(cls) if isinstance(cls, str) else cls
        entries.append({"name": cls.name, "color": packed_argb(cls.resolved_color)})
    path = Path(path)
    atomic_write(path, json.dumps({"pathClasses": entries}, indent=2).encode("utf-8"))
    return path


def read_classification(source: str | os.PathLike | dict) -> Classification:
    """One serialised PathClass: ``{names|name, color}`` (0.4+) or ``{name, colorRGB, parentClass}``."""
    data = source if isinstance(source, dict) else _load(Path(source))
    report = ReadReport()
    cls = parse_classification(data, 0, report)
    if cls is None:
        raise ProjectError(f"not a QuPath classification: {short(data, 80)}")
    return cls


def read_project(path: str | os.PathLike) -> list[ProjectImage]:
    """Image entries of a QuPath project (``project.qpproj``, or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "project.qpproj"
    data = _load(path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ProjectError(f"{path}: no 'images' list; is this a QuPath project.qpproj?")
    return [_image(entry, i, path) for i, entry in enumerate(images)]


def _image(entry: dict, index: int, path: Path) -> ProjectImage:
    try:
        return _image_entry(entry, index)
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ProjectError(f"{path}: image entry {index} is malformed ({short(str(exc), 120)})") from exc


def _image_entry(entry: dict, index: int) -> ProjectImage:
    server = entry.get("serverBuilder") or {}
    meta = server.get("metadata") or {}
    calibration = (meta.get("pixelCalibration") or {}).get("pixelWidth") or {}
    mpp = calibration.get("value") if calibration.get("unit") in ("µm", "um", "microns") else None
    uri = server.get("uri")
    if uri is None and isinstance(server.get("builder"), dict):  # rotated/sparse servers wrap the builder
        uri = server["builder"].get("uri")
    return ProjectImage(
        entry_id=int(entry.get("entryID", index + 1)),
        name=str(entry.get("imageName") or meta.get("name") or f"image {index}"),
        uri=uri,
        width=meta.get("width"),
        height=meta.get("height"),
        downsamples=tuple(float(level["downsample"]) for level in meta.get("levels", [])),
        mpp=float(mpp) if mpp is not None else None,
        server=server,
    )


def _load(path: Path) -> Any:
    if path.is_dir():
        raise ProjectError(f"{path} is a folder; give the QuPath JSON file (classes.json, project.qpproj)")
    if not path.is_file():
        raise QuPathFileNotFoundError(f"QuPath file not found: {path}")
    size = path.stat().st_size
    if size > _MAX_PROJECT_BYTES:
        raise ProjectError(f"{path}: {size / 2**20:,.0f} MB is far more than a QuPath project or class list")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        why = f"byte {exc.start:,} is not UTF-8 text"
        raise ProjectError(f"{path}: not a QuPath JSON text file ({why})") from exc
    except OSError as exc:
        raise ProjectError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ProjectError(f"{path}: JSON nested too deeply; the file is damaged") from exc
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise ProjectError(f"{path}: holds a number thousands of digits long; the file is damaged") from exc
