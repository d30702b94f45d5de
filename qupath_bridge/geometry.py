"""Coordinates and geometry validity: the one place where x/y becomes row/col.

QuPath writes ``(x, y)`` in level-0 pixels with the origin at the top-left *corner* of
the top-left pixel, so pixel ``(row=i, col=j)`` covers ``x in [j, j + 1)``,
``y in [i, i + 1)``.  numpy, scikit-image and napari index ``(row, col)`` and put
pixel ``(i, j)`` *centred* on the integer coordinate ``(i, j)``.  :func:`xy_to_rc` and
:func:`rc_to_xy` are the only functions in the package that swap axes or shift by
half a pixel; everything else calls them.
"""

from __future__ import annotations

import numpy as np
import shapely

__all__ = [
    "POLYGONAL_TYPES",
    "invalid_polygonal",
    "polygonal_parts",
    "rc_to_xy",
    "repair_polygonal",
    "xy_to_rc",
]

POLYGONAL_TYPES = ("Polygon", "MultiPolygon")


def xy_to_rc(
    xy: np.ndarray, *, downsample: float = 1.0, origin_xy: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """QuPath level-0 ``(x, y)`` → ``(row, col)`` of a pyramid level, pixel-centre convention.

    Parameters
    ----------
    xy : array_like, shape (..., 2)
        Level-0 pixel coordinates, x then y, corner-origin (QuPath / GeoJSON).
    downsample : float
        Level-0 pixels per pixel of the target level (1 for level 0, 4 for a 4× level).
    origin_xy : (float, float)
        Level-0 ``(x, y)`` of the top-left corner of the target array (a tile or crop).

    Returns
    -------
    numpy.ndarray, shape (..., 2), float64
        ``(row, col)`` where integers are pixel centres (numpy, skimage, napari):
        ``row = (y - y0) / downsample - 0.5``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    rc = (xy[..., ::-1] - (origin_xy[1], origin_xy[0])) / downsample
    return rc - 0.5


def rc_to_xy(
    rc: np.ndarray, *, downsample: float = 1.0, origin_xy: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """``(row, col)`` of a pyramid level, pixel-centre convention → QuPath level-0 ``(x, y)``.

    The exact inverse of :func:`xy_to_rc`: the centre of pixel ``(0, 0)`` of a level
    with ``downsample`` *d* is ``(x, y) = (d / 2, d / 2)``; its top-left corner,
    ``(row, col) = (-0.5, -0.5)``, is ``(0, 0)``.

    Parameters
    ----------
    rc : array_like, shape (..., 2)
        Row, col (pixel centres at integers).
    downsample, origin_xy
        As in :func:`xy_to_rc`.

    Returns
    -------
    numpy.ndarray, shape (..., 2), float64
        Level-0 ``(x, y)``, corner-origin.
    """
    rc = np.asarray(rc, dtype=np.float64)
    return (rc[..., ::-1] + 0.5) * downsample + (origin_xy[0], origin_xy[1])


def invalid_polygonal(geometries: list) -> np.ndarray:
    """Which geometries are invalid Polygons or MultiPolygons, checked in one GEOS call.

    Parameters
    ----------
    geometries : list of shapely.Geometry or None

    Returns
    -------
    numpy.ndarray of bool, shape (len(geometries),)
        False for valid polygons, for other geometry types and for None.
    """
    array = np.array(geometries, dtype=object)
    types = shapely.get_type_id(array)  # 3 Polygon, 6 MultiPolygon, -1 None
    return ((types == 3) | (types == 6)) & ~shapely.is_valid(array)


def polygonal_parts(geometry: shapely.Geometry) -> list[shapely.Polygon]:
    """The non-empty polygons of a Polygon, MultiPolygon or GeometryCollection."""
    if geometry is None or geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    if hasattr(geometry, "geoms"):
        return [p for g in geometry.geoms for p in polygonal_parts(g)]
    return []


def repair_polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """A valid (Multi)Polygon covering the same area as an invalid one.

    Self-intersections (bow-ties), wrongly nested or touching holes and spikes are
    repaired with GEOS ``make_valid(method="structure")``, which keeps the area
    enclosed by the shell minus the holes; collapsed parts (zero area) are removed.

    Parameters
    ----------
    geometry : shapely.Polygon or shapely.MultiPolygon

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        Valid; empty when nothing with area is left.
    """
    fixed = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
    parts = polygonal_parts(fixed)
    if not parts:
        return shapely.Polygon()
    if len(parts) == 1:
        return parts[0]
    joined = shapely.MultiPolygon(parts)
    if joined.is_valid:
        return joined
    # parts of a collection may share an edge, which a MultiPolygon may not: merge them
    merged = polygonal_parts(shapely.unary_union(parts))
    return merged[0] if len(merged) == 1 else shapely.MultiPolygon(merged)
