"""Loading JSON text from paths (.geojson, .json, .gz, .zip), strings or bytes, QuPath's quirks noted."""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from qupath_bridge._report import ReadReport, Severity
from qupath_bridge.errors import GeoJSONError, QuPathFileNotFoundError

__all__ = ["DUPLICATES", "GeoJSONSource", "load_json"]

GeoJSONSource = str | os.PathLike | dict | list | bytes
DUPLICATES = "\x00duplicate-keys"  # set in a dict whose "metadata" key appeared twice


def load_json(source: GeoJSONSource, report: ReadReport | None = None, *, fast: bool = False) -> Any:
    """Parsed JSON of a path, JSON text or bytes (dict/list pass through).

    Duplicated keys are recorded (QuPath 0.5–0.7 write ``metadata`` twice; both copies
    are merged); bare ``NaN``/``Infinity`` tokens (QuPath 0.4) are accepted and noted.
    ``fast=True`` skips the duplicate-key check (plain ``json.loads`` speed).
    """
    report = report if report is not None else ReadReport()
    if isinstance(source, dict | list):
        return source
    text = _read_text(source, report)
    quirks = {"constant": 0}

    def constant(token: str) -> float:
        quirks["constant"] += 1
        return float(token)

    elsewhere: list[str] = []
    hook = None if fast else lambda pairs: _merge_duplicates(pairs, elsewhere)
    try:
        data = json.loads(text, parse_constant=constant, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise GeoJSONError(
            f"{report.source}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "check the file is complete (not truncated) and is GeoJSON"
        ) from exc
    if elsewhere:
        keys = sorted(set(elsewhere))
        message = f"{len(elsewhere)} repeated JSON key(s) {keys[:5]}: the last value of each was kept"
        report.add(None, "duplicate-key", Severity.WARNING, message)
    if quirks["constant"]:
        report.add(
            None,
            "bare-nan",
            Severity.ERROR,
            f"{quirks['constant']} bare NaN/Infinity token(s) (QuPath 0.4 wrote these; strict JSON and "
            'QuPath 0.5+ reject them): read as numbers; write_geojson writes them as "NaN" strings',
        )
    return data


def _read_text(source: str | os.PathLike | bytes, report: ReadReport) -> str:
    if isinstance(source, bytes):
        return _decode(source, report)
    if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        return source
    path = Path(source)
    report.source = path.name
    if not path.is_file():
        raise QuPathFileNotFoundError(f"GeoJSON file not found: {path}")
    if path.suffix.lower() == ".qpdata":
        raise GeoJSONError(
            f"{path.name} is QuPath's Java-serialised image data, not GeoJSON: export the objects in QuPath "
            "(File › Objects data › Export as GeoJSON, or qupath_bridge's export_objects_geojson.groovy)"
        )
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as fh:
                return _decode(fh.read(), report)
        if path.suffix.lower() == ".zip":
            return _decode(_zip_entry(path, report), report)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise GeoJSONError(f"{path.name}: damaged {path.suffix} archive ({exc}); export it again") from exc
    return _decode(path.read_bytes(), report)


def _zip_entry(path: Path, report: ReadReport) -> bytes:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith((".geojson", ".json"))]
        if not names:
            raise GeoJSONError(f"{path}: the zip holds no .geojson or .json entry: {archive.namelist()}")
        if len(names) > 1:
            message = f"zip has {len(names)} GeoJSON entries: read {names[0]}"
            report.add(None, "zip-entries", Severity.WARNING, message)
        return archive.read(names[0])


def _decode(payload: bytes, report: ReadReport) -> str:
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GeoJSONError(
            f"{report.source}: not UTF-8 text at byte {exc.start} (a binary file?); GeoJSON is UTF-8 JSON"
        ) from exc


def _merge_duplicates(pairs: list[tuple[str, Any]], elsewhere: list[str]) -> dict:
    """A dict from key-value pairs where a repeated key is noted, not silently overwritten.

    A repeated ``metadata`` object (QuPath 0.5–0.7 write it twice in ``properties``) is
    merged and the dict is marked with :data:`DUPLICATES` so the feature can be named;
    any other repeated key keeps its last value and is listed in ``elsewhere``.
    """
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    out = {}
    for key, value in pairs:
        if key in out:
            if key == "metadata" and isinstance(out[key], dict) and isinstance(value, dict):
                value = {**out[key], **value}
                out.setdefault(DUPLICATES, []).append(key)
            else:
                elsewhere.append(key)
        out[key] = value
    return out
