"""QuPath's object model, as plain frozen dataclasses.

A :class:`PathObject` holds one QuPath object (annotation, detection, tile, cell or
TMA core): its shapely geometry in **level-0 pixel coordinates** (x right, y down,
origin at the top-left corner of the top-left pixel, as QuPath writes them), and
every property QuPath's GeoJSON carries.  Nothing here reads or writes files.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_PLANE",
    "Classification",
    "ImagePlane",
    "ObjectType",
    "PathObject",
    "class_color",
    "packed_argb",
]


class ObjectType(str, enum.Enum):
    """QuPath object types, valued as QuPath 0.4+ writes them in ``properties.objectType``."""

    ANNOTATION = "annotation"
    DETECTION = "detection"
    TILE = "tile"
    CELL = "cell"
    TMA_CORE = "tmaCore"
    ROOT = "root"

    @property
    def legacy_name(self) -> str:
        """The QuPath 0.3 ``object_type`` spelling (``tma_core`` instead of ``tmaCore``)."""
        return "tma_core" if self is ObjectType.TMA_CORE else self.value


@dataclass(frozen=True, slots=True)
class ImagePlane:
    """The image plane of an object: channel ``c`` (-1 = all), z-slice ``z``, timepoint ``t``."""

    c: int = -1
    z: int = 0
    t: int = 0

    @property
    def is_default(self) -> bool:
        """True for QuPath's default plane ``(c=-1, z=0, t=0)``, which QuPath does not write."""
        return self == DEFAULT_PLANE


DEFAULT_PLANE = ImagePlane()

# QuPath's built-in classes (qupath.lib.objects.classes.PathClass / StandardPathClasses)
_STANDARD_COLORS: dict[str, tuple[int, int, int]] = {
    "Tumor": (200, 0, 0),
    "Stroma": (150, 200, 150),
    "Immune cells": (160, 90, 160),
    "Necrosis": (50, 50, 50),
    "Other": (255, 200, 0),
    "Region*": (0, 0, 180),
    "Ignore*": (180, 180, 180),
    "Positive": (200, 50, 50),
    "Negative": (112, 112, 225),
    "1+": (255, 215, 0),
    "2+": (225, 150, 50),
    "3+": (200, 50, 50),
}


def class_color(names: tuple[str, ...] | list[str] | str) -> tuple[int, int, int]:
    """The colour used for a class that arrives without one.

    Parameters
    ----------
    names : str or sequence of str
        Class name (``"Tumor"``), derived name (``"Tumor: Positive"``) or its parts.

    Returns
    -------
    tuple of 3 int
        ``(r, g, b)`` in 0..255: QuPath's standard colour when the full name or its last
        part is a built-in class (Tumor, Stroma, Positive, ...), otherwise a colour derived
        from a hash of the name, so the same name always gets the same colour.
    """
    parts = tuple(names.split(": ")) if isinstance(names, str) else tuple(names)
    full = ": ".join(parts)
    for key in (full, parts[-1] if parts else ""):
        if key in _STANDARD_COLORS:
            return _STANDARD_COLORS[key]
    digest = hashlib.sha1(full.encode("utf-8")).digest()
    # keep colours away from black and white so they show on H&E and on dark backgrounds
    return (40 + digest[0] % 200, 40 + digest[1] % 200, 40 + digest[2] % 200)


@dataclass(frozen=True, slots=True)
class Classification:
    """A QuPath class (``PathClass``), possibly derived (``"Tumor: Positive"``).

    Attributes
    ----------
    names : tuple of str
        The class name split at ``": "``: ``("Tumor",)`` or ``("Tumor", "Positive")``.
    color : tuple of 3 or 4 int, or None
        ``(r, g, b)`` or ``(r, g, b, a)`` in 0..255; ``None`` means "QuPath's default",
        filled in by :meth:`resolved_color` when written.
    """

    names: tuple[str, ...]
    color: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            object.__setattr__(self, "names", tuple(self.names.split(": ")))
        if not self.names or any(not isinstance(n, str) or n == "" for n in self.names):
            raise ValueError(
                f"a classification needs one or more non-empty names, got {self.names!r}; "
                "use None for 'unclassified'"
            )
        if self.color is not None:
            color = tuple(int(v) for v in self.color)
            if len(color) not in (3, 4) or any(not 0 <= v <= 255 for v in color):
                raise ValueError(f"class colour must be (r, g, b[, a]) in 0..255, got {self.color!r}")
            object.__setattr__(self, "color", color)

    @classmethod
    def from_name(cls, name: str, color: tuple[int, ...] | None = None) -> Classification:
        """Classification from a QuPath class string such as ``"Tumor: Positive"``."""
        return cls(tuple(name.split(": ")), color)

    @property
    def name(self) -> str:
        """The full QuPath class string, parts joined with ``": "``."""
        return ": ".join(self.names)

    @property
    def resolved_color(self) -> tuple[int, ...]:
        """``color``, or the default of :func:`class_color` when it is ``None``."""
        return self.color if self.color is not None else class_color(self.names)


@dataclass(frozen=True, slots=True)
class PathObject:
    """One QuPath object.

    Attributes
    ----------
    geometry : shapely.Geometry
        ROI in level-0 pixels (x, y), QuPath's corner-origin convention.
    object_type : ObjectType
        annotation, detection, tile, cell, tmaCore (root only for hierarchies).
    id : str or None
        UUID string; ``None`` gets a new UUID when written.
    name : str or None
        Object name (not the class).
    color : tuple of int or None
        Object colour ``(r, g, b)``, independent of the class colour.
    classification : Classification or None
        ``None`` = unclassified.
    measurements : dict of str to float
        NaN and ±inf allowed (written as QuPath's ``"NaN"``/``"Infinity"`` strings).
    metadata : dict of str to str
        QuPath's string-to-string object metadata.
    is_locked : bool
    is_ellipse : bool
        ``geometry`` is QuPath's polygon of an ellipse ROI (``geometry.isEllipse``).
    plane : ImagePlane
    nucleus_geometry : shapely.Geometry or None
        Nucleus ROI of a cell, level-0 pixels.
    is_missing : bool or None
        TMA cores only.
    children : tuple of PathObject
        Child objects (``childObjects``), only in hierarchy exports.
    extra : dict
        Properties QuPath does not know (foreign GeoJSON), kept and written back unchanged.
    """

    geometry: Any
    object_type: ObjectType = ObjectType.ANNOTATION
    id: str | None = None
    name: str | None = None
    color: tuple[int, ...] | None = None
    classification: Classification | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    is_locked: bool = False
    is_ellipse: bool = False
    plane: ImagePlane = DEFAULT_PLANE
    nucleus_geometry: Any = None
    is_missing: bool | None = None
    children: tuple[PathObject, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def class_name(self) -> str | None:
        """The full class string, or ``None`` when unclassified."""
        return None if self.classification is None else self.classification.name


def packed_argb(color: tuple[int, ...]) -> int:
    """``(r, g, b[, a])`` → Java's signed 32-bit ARGB int (alpha 255 when absent), as QuPath stores."""
    alpha = color[3] if len(color) == 4 else 255
    packed = (alpha << 24) | (color[0] << 16) | (color[1] << 8) | color[2]
    return packed - (1 << 32) if packed >= 1 << 31 else packed  # Java's signed int
