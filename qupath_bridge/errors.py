"""Exceptions and warnings raised by :mod:`qupath_bridge`.

Every error inherits :class:`QuPathBridgeError` *and* the builtin that matches the
problem, so ``except ValueError`` keeps working for callers who do not know this
package.  Messages name the feature index, the offending value and the fix.
"""

from __future__ import annotations

__all__ = [
    "GeoJSONError",
    "GeoJSONWarning",
    "LabelImageError",
    "MemoryLimitError",
    "ProjectError",
    "QuPathBridgeError",
    "QuPathBridgeWarning",
    "QuPathFileNotFoundError",
]


class QuPathBridgeError(Exception):
    """Base class of every error qupath_bridge raises on purpose."""


class QuPathFileNotFoundError(QuPathBridgeError, FileNotFoundError):
    """A GeoJSON, class list or project path does not exist."""


class GeoJSONError(QuPathBridgeError, ValueError):
    """The GeoJSON cannot be read (bad JSON, unknown geometry, impossible coordinates)."""


class LabelImageError(QuPathBridgeError, ValueError):
    """A label image or rasterisation request is not usable (wrong shape, dtype or classes)."""


class MemoryLimitError(LabelImageError, MemoryError):
    """A label image would need more memory than there is; the message gives the size and the fix."""


class ProjectError(QuPathBridgeError, ValueError):
    """A QuPath project file or class list is malformed."""


class QuPathBridgeWarning(UserWarning):
    """Base class of the warnings qupath_bridge emits."""


class GeoJSONWarning(QuPathBridgeWarning):
    """Something in a GeoJSON file was repaired, converted or ignored; the message says what."""
