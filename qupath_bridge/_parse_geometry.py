"""GeoJSON geometry dicts → shapely, leniently, recording every change in a ReadReport."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from qupath_bridge._report import ReadReport, Severity, json_short, short
from qupath_bridge.objects import DEFAULT_PLANE, ImagePlane

__all__ = ["GEOMETRY_TYPES", "MAX_COORDINATE_PX", "parse_geometry", "parse_plane"]

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
# QuPath image sizes are Java ints: no pixel coordinate of a real image can be larger.
MAX_COORDINATE_PX = 2.0**31


class _BadGeometry(Exception):
    """Internal: the geometry cannot be built; the message says why."""


def parse_geometry(geometry: Any, index: int, report: ReadReport) -> shapely.Geometry | None:
    """A shapely geometry from a GeoJSON geometry dict, or None when it must be skipped.

    Open rings are closed, 3-D coordinates lose z, degenerate holes are removed;
    each change is recorded in ``report``.  Validity (self-intersections) is checked
    later for all features at once.
    """
    if not isinstance(geometry, dict):
        what = "no geometry" if geometry is None else f"geometry {json_short(geometry)} is not a geometry"
        report.fail(index, "no-geometry", f"{what}; QuPath objects need a ROI (a geometry)")
        return None
    kind = geometry.get("type")
    if kind not in GEOMETRY_TYPES:
        report.fail(
            index,
            "unknown-geometry-type",
            f"unknown geometry type {_short(kind)}; expected one of {', '.join(GEOMETRY_TYPES)}",
        )
        return None
    state = {"z": False, "check_types": report.check_types}
    try:
        geom = _build(geometry, kind, index, report, state)
    except _BadGeometry as exc:
        report.fail(index, "bad-coordinates", f"{kind}: {exc}")
        return None
    except (ValueError, TypeError, shapely.errors.GEOSException) as exc:  # shapely's own checks
        report.fail(
            index, "bad-coordinates", f"{kind}: coordinates {_short(geometry.get('coordinates'))} ({exc})"
        )
        return None
    if state["z"]:
        report.add(
            index,
            "3d-coordinates",
            Severity.WARNING,
            "3-D coordinates: z dropped (QuPath keeps x, y; z-slices go in geometry.plane)",
        )
    return geom


def parse_plane(geometry: Any, index: int, report: ReadReport) -> ImagePlane:
    """``geometry.plane`` as an :class:`ImagePlane` (missing c/z/t take QuPath's defaults)."""
    plane = geometry.get("plane") if isinstance(geometry, dict) else None
    if plane is None:
        return DEFAULT_PLANE
    try:
        values = [plane.get(key, default) for key, default in (("c", -1), ("z", 0), ("t", 0))]
        if all(_java_int(v) for v in values):
            return ImagePlane(*(int(v) for v in values))
    except (AttributeError, TypeError, ValueError, OverflowError):
        pass
    message = f"plane {_short(plane)} ignored; expected {{c, z, t}} integers"
    report.add(index, "bad-plane", Severity.WARNING, message)
    return DEFAULT_PLANE


def _java_int(value: Any) -> bool:
    """An integral number QuPath can hold in an int (``2.0`` counts, ``true`` and ``1e400`` do not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -(2**31) <= value < 2**31 and float(value).is_integer()


def _build(geometry: dict, kind: str, index: int, report: ReadReport, state: dict) -> shapely.Geometry:
    if kind == "GeometryCollection":
        parts = geometry.get("geometries")
        if not isinstance(parts, list):
            raise _BadGeometry(f"'geometries' must be a list, got {_short(parts)}")
        built = []
        for part in parts:
            sub = part.get("type") if isinstance(part, dict) else None
            if sub not in GEOMETRY_TYPES:
                raise _BadGeometry(f"member of unknown type {_short(sub)}")
            built.append(_build(part, sub, index, report, state))
        return shapely.GeometryCollection(built)
    coords = geometry.get("coordinates")
    if kind == "Point":
        return shapely.Point(_points(coords, 1, state)[0])
    if kind == "MultiPoint":
        return shapely.MultiPoint(_points(coords, 1, state))
    if kind == "LineString":
        return shapely.LineString(_points(coords, 2, state))
    if kind == "MultiLineString":
        return shapely.MultiLineString([_points(line, 2, state) for line in _list(coords)])
    if kind == "Polygon":
        return _polygon(coords, index, report, state)
    polygons = [_polygon(p, index, report, state) for p in _list(coords)]
    return shapely.MultiPolygon([p for p in polygons if not p.is_empty])


def _polygon(rings: Any, index: int, report: ReadReport, state: dict) -> shapely.Polygon:
    rings = [_ring(r, index, report, state) for r in _list(rings)]
    if not rings or rings[0] is None:
        message = "polygon shell with < 4 positions (QuPath's JTS reader rejects it): polygon dropped"
        report.add(index, "short-ring", Severity.ERROR, message)
        return shapely.Polygon()
    holes = [r for r in rings[1:] if r is not None]
    if len(holes) < len(rings) - 1:
        message = "hole with < 4 positions (QuPath's JTS reader rejects it): hole removed"
        report.add(index, "short-ring", Severity.ERROR, message)
    return shapely.Polygon(rings[0], holes)


def _ring(ring: Any, index: int, report: ReadReport, state: dict) -> np.ndarray | None:
    points = _points(ring, 0, state)
    if len(points) and (points[0, 0] != points[-1, 0] or points[0, 1] != points[-1, 1]):
        report.add(
            index,
            "open-ring",
            Severity.ERROR,
            "polygon ring not closed (QuPath's JTS reader rejects it): closed it",
        )
        points = np.vstack([points, points[:1]])
    if len(points) < 4:
        return None
    return points


def _points(coords: Any, minimum: int, state: dict) -> np.ndarray:
    try:
        array = np.asarray(coords)
    except (TypeError, ValueError, OverflowError) as exc:  # ragged nesting, ints beyond any dtype
        _check_types(coords, None)
        raise _BadGeometry(f"expected [x, y] positions, got {_short(coords)}") from exc
    if array.dtype.kind not in "iuf" or (state["check_types"] and array.size):
        _check_types(coords, array)
    array = array.astype(np.float64, copy=False)
    if array.size == 0:
        array = np.empty((0, 2))
    elif array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or (array.size and array.shape[1] not in (2, 3)):
        raise _BadGeometry(f"expected [x, y] positions, got an array of shape {array.shape}")
    if len(array) < minimum:
        raise _BadGeometry(f"needs at least {minimum} positions, got {len(array)}")
    if array.size and array.shape[1] == 3:
        state["z"] = True
        array = np.ascontiguousarray(array[:, :2])
    if array.size:
        _check_range(array)
    return array


def _check_types(coords: Any, array: np.ndarray | None) -> None:
    """Raise for the first coordinate that is not a JSON number (text, true/false, null, an object)."""
    if array is not None and array.size == 0 and array.dtype.kind in "fO":  # [] or [[]]: counted later
        return
    stack = [coords]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        elif isinstance(item, bool):
            raise _BadGeometry(f"coordinate {json_short(item)} is a boolean, not a number")
        elif isinstance(item, int) and not -MAX_COORDINATE_PX <= item <= MAX_COORDINATE_PX:
            digits = len(str(abs(item))) if abs(item) < 10**4000 else "4,000+"
            raise _BadGeometry(
                f"coordinate {short(item, 24)} ({digits} digits) is beyond any image size (QuPath's limit "
                "is 2^31 px); coordinates must be level-0 pixels"
            )
        elif isinstance(item, str):
            raise _BadGeometry(f"coordinate {short(item, 24)} is text, not a number; write it without quotes")
        elif not isinstance(item, int | float | np.number):
            raise _BadGeometry(f"coordinate {json_short(item, 24)} is not a number")
    if array is not None and array.dtype.kind not in "iuf":
        raise _BadGeometry(f"coordinates are not numbers: {_short(coords)}")


def _check_range(array: np.ndarray) -> None:
    peak = np.abs(array).max()  # NaN and inf propagate: one pass for the common, valid case
    if peak <= MAX_COORDINATE_PX:
        return
    if not np.isfinite(array).all():
        bad = array[~np.isfinite(array)][0]
        raise _BadGeometry(f"coordinate {bad} is not finite; replace or remove the vertex")
    if peak > MAX_COORDINATE_PX:
        raise _BadGeometry(
            f"coordinate {peak:.6g} is beyond any image size (QuPath's limit is 2^31 px); "
            "coordinates must be level-0 pixels: rescale them (were they nm or a map projection?)"
        )


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise _BadGeometry(f"coordinates must be a list, got {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    return short(value, limit)
