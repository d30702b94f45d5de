"""What QuPath would reject in a GeoJSON file, and why (``histo qupath validate``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from qupath_bridge._report import Issue, ReadReport, Severity
from qupath_bridge.errors import QuPathBridgeError
from qupath_bridge.geojson_read import GeoJSONSource, read_geojson_report

__all__ = ["ValidationResult", "validate_geojson"]


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_geojson`.

    Attributes
    ----------
    source : str
    report : ReadReport or None
        None when the file could not be parsed at all (see ``fatal``).
    fatal : str or None
        Why nothing could be read (missing file, invalid JSON, not GeoJSON).
    """

    source: str
    report: ReadReport | None
    fatal: str | None = None

    @property
    def issues(self) -> list[Issue]:
        """Every finding, file-level first."""
        return (
            []
            if self.report is None
            else sorted(self.report.issues, key=lambda i: (i.index is not None, i.index or 0))
        )

    @property
    def is_valid(self) -> bool:
        """True when QuPath 0.4–0.7 would import the file unchanged (warnings allowed)."""
        return self.fatal is None and self.report is not None and not self.report.errors

    def format(self, *, show_info: bool = False, limit: int = 50) -> str:
        """Human-readable report: a verdict line, then one line per issue."""
        report = self.report
        if self.fatal is not None or report is None:
            return f"{self.source}: INVALID: {self.fatal or 'nothing was read'}"
        n_err = len(report.errors)
        n_warn = sum(1 for i in report.issues if i.severity is Severity.WARNING)
        verdict = "INVALID for QuPath" if n_err else "OK for QuPath"
        lines = [
            f"{self.source}: {verdict}: {report.n_features} feature(s), layout {report.layout}, "
            f"{report.container}; {n_err} error(s), {n_warn} warning(s)"
        ]
        shown = [i for i in self.issues if show_info or i.severity is not Severity.INFO]
        lines += [f"  {issue}" for issue in shown[:limit]]
        if len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more")
        return "\n".join(lines)


def validate_geojson(source: GeoJSONSource) -> ValidationResult:
    """Check a GeoJSON source against what QuPath 0.4–0.7's importer accepts.

    Errors are what makes QuPath refuse the file or a feature (open or too-short rings,
    a classification without colour, bare NaN tokens, unknown geometry types,
    impossible coordinates, invalid JSON); warnings are what it would import differently
    from what the file says (case-mismatched ``objectType``, self-intersecting polygons,
    3-D coordinates, non-UUID ids, plain GeoJSON without QuPath properties).

    Parameters
    ----------
    source : path, str, bytes, dict or list
        As for :func:`~qupath_bridge.read_geojson`.

    Returns
    -------
    ValidationResult
        Never raises for bad content: everything is reported.
    """
    label = os.fspath(source) if isinstance(source, str | os.PathLike) and not _is_text(source) else "<data>"
    try:
        report = read_geojson_report(source, strict=False)
    except QuPathBridgeError as exc:
        return ValidationResult(label, None, str(exc))
    return ValidationResult(label, report)


def _is_text(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.lstrip()[:1] in ("{", "[")
