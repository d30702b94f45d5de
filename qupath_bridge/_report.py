"""What happened while reading a GeoJSON file: issues per feature and their summary."""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field

from qupath_bridge.errors import GeoJSONError
from qupath_bridge.objects import PathObject

__all__ = ["Issue", "ReadReport", "Severity", "json_short", "one_line", "short"]


def short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, never raising (a 5,000-digit int has no repr)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # int beyond sys.int_info's digit limit, absurd nesting
        text = f"<{type(value).__name__} too large to show>"
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_short(value: object, limit: int = 60) -> str:
    """Like :func:`short`, but ``null``, ``true`` and ``false`` spelled as in the JSON file."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return short(value, limit)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


class Severity(str, enum.Enum):
    """How bad an :class:`Issue` is for QuPath."""

    ERROR = "error"  # QuPath 0.4–0.7 would refuse the file (qupath_bridge repaired or skipped it)
    WARNING = "warning"  # read, but changed or converted: the message says how
    INFO = "info"  # legal but notable (a legacy layout, a writer quirk)


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding about one feature.

    Attributes
    ----------
    index : int or None
        0-based index of the feature in file order (``None`` for the whole file).
    code : str
        Short stable identifier, e.g. ``"self-intersection"``, ``"class-without-color"``.
    severity : Severity
    message : str
        What was found, the bad value and what was done or how to fix it.
    """

    index: int | None
    code: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = "file" if self.index is None else f"feature {self.index}"
        return f"{self.severity.value}: {where}: {self.message}"


@dataclass
class ReadReport:
    """Objects read from a GeoJSON source and everything noticed on the way.

    Attributes
    ----------
    objects : list of PathObject
    issues : list of Issue
    layout : str
        ``"0.2"``, ``"0.3"``, ``"0.4+"`` (QuPath layouts), ``"geometry"`` (bare geometries),
        ``"qupath"`` (QuPath properties, no version marker), ``"foreign"`` (plain GeoJSON),
        ``"mixed"`` or ``"empty"``.
    container : str
        ``"FeatureCollection"``, ``"Feature"``, ``"array"`` or ``"geometry"``.
    n_features : int
        Features seen (objects read plus features skipped).
    """

    objects: list[PathObject] = field(default_factory=list)
    object_indices: list[int] = field(default_factory=list)  # feature index of each object
    issues: list[Issue] = field(default_factory=list)
    layout: str = "empty"
    container: str = "FeatureCollection"
    n_features: int = 0
    source: str = "<data>"
    strict: bool = True  # raise on unreadable features instead of recording them
    # check each coordinate's JSON type (booleans among numbers); the loader turns it off for text
    # in which no array holds a true/false token, so the common case stays at numpy speed
    check_types: bool = True

    def add(self, index: int | None, code: str, severity: Severity, message: str) -> None:
        """Record an issue (its message is made one line)."""
        self.issues.append(Issue(index, code, severity, one_line(message)))

    def fail(self, index: int | None, code: str, message: str) -> None:
        """An unreadable feature: raise :class:`GeoJSONError`, or record it when not strict."""
        if self.strict:
            where = "" if index is None else f"feature {index}: "
            raise GeoJSONError(one_line(f"{self.source}: {where}{message}"))
        self.add(index, code, Severity.ERROR, message)

    @property
    def errors(self) -> list[Issue]:
        """Issues QuPath would reject the file for."""
        return [i for i in self.issues if i.severity is Severity.ERROR]

    def count(self, code: str) -> int:
        """How many issues carry ``code``."""
        return sum(1 for i in self.issues if i.code == code)

    def summary(self, severities: tuple[Severity, ...] = (Severity.ERROR, Severity.WARNING)) -> str:
        """One line per kind of issue, with counts and the first feature indices (indented)."""
        return "\n".join(f"  {line}" for line in self.summary_lines(severities))

    def summary_lines(
        self, severities: tuple[Severity, ...] = (Severity.ERROR, Severity.WARNING)
    ) -> list[str]:
        """One line per kind of issue: ``3 × code (features 1, 4, 9): first message``."""
        groups: dict[str, list[Issue]] = defaultdict(list)
        for issue in self.issues:
            if issue.severity in severities:
                groups[issue.code].append(issue)
        lines = []
        for code, issues in groups.items():
            where = sorted({i.index for i in issues if i.index is not None})
            shown = ", ".join(map(str, where[:10])) + (", ..." if len(where) > 10 else "")
            at = f" (features {shown})" if where else ""
            lines.append(f"{len(issues)} × {code}{at}: {issues[0].message}")
        return lines
