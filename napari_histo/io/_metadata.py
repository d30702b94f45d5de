"""Vendor metadata parsers: pure ``str -> dict`` / number functions, no file access.

Units: every physical size is returned in micrometres per pixel (``mpp``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

__all__ = [
    "Calibration",
    "mpp_from_resolution",
    "parse_aperio_description",
    "parse_ome_calibration",
    "plausible_mpp",
]

# A brightfield or fluorescence scanner images between ~0.05 and ~50 µm/px.  A
# value outside that range is a placeholder (72 dpi -> 352.8 µm/px) and is
# treated as absent rather than trusted.
_MPP_RANGE = (0.01, 100.0)

_UM_PER_UNIT = {
    "pm": 1e-6,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "\u03bcm": 1.0,  # Greek mu, as some writers use
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


@dataclass(frozen=True)
class Calibration:
    """Physical calibration read from metadata; ``None`` fields were absent."""

    mpp: float | None = None
    magnification: float | None = None
    source: str = "none"


def plausible_mpp(mpp: float | None) -> float | None:
    """Return ``mpp`` when it is a finite microscopy value, else ``None``."""
    if mpp is None or not math.isfinite(mpp):
        return None
    lo, hi = _MPP_RANGE
    return float(mpp) if lo <= mpp <= hi else None


def parse_aperio_description(description: str) -> dict[str, str]:
    """Parse an Aperio ``ImageDescription`` into its ``key = value`` pairs.

    The first ``|``-separated field is the header line (kept as ``"header"``);
    the rest are ``key = value`` pairs such as ``MPP = 0.499`` and ``AppMag = 20``.
    Returns an empty dict when the text is not Aperio's.
    """
    if not description.startswith("Aperio"):
        return {}
    fields = description.split("|")
    out = {"header": fields[0].strip()}
    for field in fields[1:]:
        key, sep, value = field.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def aperio_calibration(properties: dict[str, str]) -> Calibration:
    """µm/px and objective power from parsed Aperio properties."""
    mpp = _to_float(properties.get("MPP"))
    mag = _to_float(properties.get("AppMag"))
    return Calibration(plausible_mpp(mpp), mag, "Aperio ImageDescription MPP" if mpp else "none")


def mpp_from_resolution(resolution: float | tuple[int, int] | None, unit: int | None) -> float | None:
    """µm/px from a TIFF ``XResolution`` (pixels per unit) and ``ResolutionUnit``.

    ``unit`` follows TIFF: 2 = inch, 3 = centimetre; 1 (none) carries no
    physical size and gives ``None``, as do implausible values such as 72 dpi.
    """
    if resolution is None or unit not in (2, 3):
        return None
    if isinstance(resolution, tuple):
        num, den = resolution
        if num == 0 or den == 0:
            return None
        pixels_per_unit = num / den
    else:
        pixels_per_unit = float(resolution)
    if pixels_per_unit <= 0:
        return None
    um_per_unit = 25_400.0 if unit == 2 else 10_000.0
    return plausible_mpp(um_per_unit / pixels_per_unit)


def parse_ome_calibration(ome_xml: str) -> Calibration:
    """µm/px (``PhysicalSizeX`` with its unit) and objective power from OME-XML."""
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return Calibration()
    mpp = magnification = None
    for elem in root.iter():
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "Pixels" and mpp is None:
            size = _to_float(elem.get("PhysicalSizeX"))
            unit = elem.get("PhysicalSizeXUnit", "µm")
            if size is not None and unit in _UM_PER_UNIT:
                mpp = plausible_mpp(size * _UM_PER_UNIT[unit])
        elif tag == "Objective" and magnification is None:
            magnification = _to_float(elem.get("NominalMagnification"))
    return Calibration(mpp, magnification, "OME PhysicalSizeX" if mpp else "none")


def _to_float(text: str | float | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
