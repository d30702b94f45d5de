"""QuPath bridge: QuPath GeoJSON (0.2–0.7) read and write, objects ⇄ label images, projects.

Coordinates are QuPath's: ``(x, y)`` in level-0 pixels, origin at the top-left corner
of the image.  The swap to numpy's ``(row, col)`` lives in :func:`xy_to_rc` /
:func:`rc_to_xy` only.

>>> objects = read_geojson("annotations.geojson")          # doctest: +SKIP
>>> labels = objects_to_labels(objects, (rows, cols), downsample=4)  # doctest: +SKIP
>>> write_geojson(labels_to_objects(labels, downsample=4), "cells.geojson")  # doctest: +SKIP
"""

from qupath_bridge._report import Issue, ReadReport, Severity
from qupath_bridge.errors import (
    GeoJSONError,
    GeoJSONWarning,
    LabelImageError,
    MemoryLimitError,
    ProjectError,
    QuPathBridgeError,
    QuPathBridgeWarning,
    QuPathFileNotFoundError,
)
from qupath_bridge.geojson_read import read_geojson, read_geojson_report
from qupath_bridge.geojson_write import to_geojson, write_geojson
from qupath_bridge.geometry import rc_to_xy, repair_polygonal, xy_to_rc
from qupath_bridge.groovy import GROOVY_SCRIPTS, groovy_script
from qupath_bridge.objects import (
    DEFAULT_PLANE,
    Classification,
    ImagePlane,
    ObjectType,
    PathObject,
    class_color,
)
from qupath_bridge.project import (
    ProjectImage,
    read_class_list,
    read_classification,
    read_project,
    write_class_list,
)
from qupath_bridge.rasterize import LabelMode, objects_to_labels
from qupath_bridge.tiles import probability_grid_to_tiles, tiles_to_objects
from qupath_bridge.tracing import labels_to_objects
from qupath_bridge.validate import ValidationResult, validate_geojson

__all__ = [
    "DEFAULT_PLANE",
    "GROOVY_SCRIPTS",
    "Classification",
    "GeoJSONError",
    "GeoJSONWarning",
    "ImagePlane",
    "Issue",
    "LabelImageError",
    "LabelMode",
    "MemoryLimitError",
    "ObjectType",
    "PathObject",
    "ProjectError",
    "ProjectImage",
    "QuPathBridgeError",
    "QuPathBridgeWarning",
    "QuPathFileNotFoundError",
    "ReadReport",
    "Severity",
    "ValidationResult",
    "class_color",
    "groovy_script",
    "labels_to_objects",
    "objects_to_labels",
    "probability_grid_to_tiles",
    "rc_to_xy",
    "read_class_list",
    "read_classification",
    "read_geojson",
    "read_geojson_report",
    "read_project",
    "repair_polygonal",
    "tiles_to_objects",
    "to_geojson",
    "validate_geojson",
    "write_class_list",
    "write_geojson",
    "xy_to_rc",
]
