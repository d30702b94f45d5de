"""Loading JSON text from paths (.geojson, .json, .gz, .zip), strings or bytes, QuPath's quirks noted.

Hostile input is refused before it costs memory or a crash: archives are inflated in
chunks up to a size limit (:data:`MAX_MB_ENV` raises it), the nesting depth is measured
before parsing (:data:`MAX_DEPTH`), and binary files, absurdly long numbers, empty files
and folders each get one clear :class:`~qupath_bridge.errors.GeoJSONError`.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import re
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from qupath_bridge._report import ReadReport, Severity, one_line, short
from qupath_bridge.errors import GeoJSONError, QuPathBridgeError, QuPathFileNotFoundError

__all__ = [
    "DEFAULT_MAX_MB",
    "DUPLICATES",
    "MAX_DEPTH",
    "MAX_MB_ENV",
    "GeoJSONSource",
    "load_json",
    "max_text_bytes",
]

GeoJSONSource = str | os.PathLike | dict | list | bytes
DUPLICATES = "\x00duplicate-keys"  # set in a dict whose "metadata" key appeared twice

#: deepest JSON nesting read; QuPath's own exports stay below 20 (a cell hierarchy adds 3 per level)
MAX_DEPTH = 256
#: environment variable: the most megabytes of GeoJSON text read (after inflating .gz/.zip)
MAX_MB_ENV = "QUPATH_BRIDGE_MAX_GEOJSON_MB"
#: default of :data:`MAX_MB_ENV`: parsing needs several times the text's size in memory
DEFAULT_MAX_MB = 1024

_CHUNK = 1 << 20
_MAGIC = {
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a zip archive",
    b"PK\x05\x06": "an empty zip archive",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"II+\x00": "a BigTIFF image",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"\xac\xed\x00\x05": "Java-serialised data (a QuPath .qpdata file?)",
    b"SQLite format 3": "an SQLite database",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
# the structure scan keeps brackets, quotes, commas, colons and the first letters of true/false
_KEEP = b'[]{}",:tf'
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def max_text_bytes() -> int:
    """The most bytes of GeoJSON text read: ``$QUPATH_BRIDGE_MAX_GEOJSON_MB`` MB, default 1024 MB."""
    text = os.environ.get(MAX_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MB * 2**20
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise GeoJSONError(f"{MAX_MB_ENV}={text!r} is not a size in megabytes (e.g. {MAX_MB_ENV}=4096)")
    return int(value * 2**20)


def load_json(source: GeoJSONSource, report: ReadReport | None = None, *, fast: bool = False) -> Any:
    """Parsed JSON of a path, JSON text or bytes (dict/list pass through).

    Duplicated keys are recorded (QuPath 0.5–0.7 write ``metadata`` twice; both copies
    are merged); bare ``NaN``/``Infinity`` tokens (QuPath 0.4) are accepted and noted.
    ``fast=True`` skips the duplicate-key check (plain ``json.loads`` speed).

    Raises :class:`GeoJSONError` for a folder, an empty or binary file, text nested
    deeper than :data:`MAX_DEPTH`, more text than :func:`max_text_bytes` (also when
    inflated from ``.gz``/``.zip``), invalid JSON and numbers too long to read.
    """
    report = report if report is not None else ReadReport()
    if isinstance(source, dict | list):
        return source
    if isinstance(source, bytearray | memoryview):
        source = bytes(source)
    if not isinstance(source, str | bytes | os.PathLike):
        raise GeoJSONError(
            f"cannot read GeoJSON from {type(source).__name__} {short(source, 40)}: give a path, JSON text, "
            "bytes, or parsed JSON (dict or list)"
        )
    text, raw = _read_text(source, report)
    if not text.strip():
        what = "is empty" if not text else "holds only blank space"
        raise GeoJSONError(f"{report.source} {what}: nothing to read; export the objects again")
    _check_structure(raw if raw is not None else text.encode("utf-8", "surrogatepass"), report)
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
    except RecursionError as exc:  # the scan above stops this first; kept as the last line of defence
        raise GeoJSONError(_too_deep(report.source, None)) from exc
    except ValueError as exc:  # an integer longer than Python reads (sys.get_int_max_str_digits)
        raise GeoJSONError(_long_number(text, report.source)) from exc
    if elsewhere:
        keys = sorted(set(elsewhere))
        message = (
            f"{len(elsewhere)} repeated JSON key(s) {short(keys[:5], 120)}: the last value of each was kept"
        )
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


# ---------------------------------------------------------------- files and archives


def _read_text(source: str | os.PathLike | bytes, report: ReadReport) -> tuple[str, bytes | None]:
    """The text, and its UTF-8 bytes when they are at hand (for the structure scan)."""
    if isinstance(source, bytes):
        return _decode(_limited(source, report.source, "the data"), report)
    if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        if len(source) > max_text_bytes():
            raise GeoJSONError(_too_large("the GeoJSON text", len(source)))
        return source, None
    path = Path(source)
    report.source = path.name
    try:
        _check_path(path)
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte in it
        if isinstance(exc, QuPathBridgeError):
            raise
        message = f"GeoJSON file not found: {short(str(path), 120)} ({exc})"
        raise QuPathFileNotFoundError(one_line(message)) from exc
    try:
        payload = _read_payload(path, report)
    except GeoJSONError:
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        if path.suffix.lower() in (".gz", ".zip"):
            message = f"{path.name}: damaged {path.suffix} archive ({exc}); export it again"
            raise GeoJSONError(one_line(message)) from exc
        raise GeoJSONError(one_line(f"{path.name}: cannot be read ({_os_reason(exc)})")) from exc
    return _decode(payload, report)


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise GeoJSONError(f"{path} is a folder, not a GeoJSON file; give the .geojson file inside it")
    if not path.is_file():
        if path.is_symlink():
            raise QuPathFileNotFoundError(f"GeoJSON file not found: {path} is a broken link (or a link loop)")
        if path.exists():
            raise GeoJSONError(f"{path} is not a regular file (a device or pipe?); give a .geojson file")
        raise QuPathFileNotFoundError(f"GeoJSON file not found: {path}")
    if path.suffix.lower() == ".qpdata":
        raise GeoJSONError(
            f"{path.name} is QuPath's Java-serialised image data, not GeoJSON: export the objects in QuPath "
            "(File › Objects data › Export as GeoJSON, or qupath_bridge's export_objects_geojson.groovy)"
        )


def _read_payload(path: Path, report: ReadReport) -> bytes:
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(4)
    kind = "gz" if suffix == ".gz" else "zip" if suffix == ".zip" else None
    if kind is None and head[:2] == b"\x1f\x8b":
        kind = "gz"
    elif kind is None and head in (b"PK\x03\x04", b"PK\x05\x06"):
        kind = "zip"
    if kind is not None and suffix not in (".gz", ".zip"):
        name = "gzip" if kind == "gz" else "zip"
        message = (
            f"a {name} archive named {suffix or 'without a suffix'}: read it as one (QuPath needs .{kind})"
        )
        report.add(None, "archive-suffix", Severity.ERROR, message)
    if kind == "gz":
        with gzip.open(path, "rb") as fh:
            return _read_limited(fh, f"{path.name} (inflated)")
    if kind == "zip":
        return _zip_entry(path, report)
    size = path.stat().st_size
    if size > max_text_bytes():
        raise GeoJSONError(_too_large(path.name, size))
    return path.read_bytes()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _read_limited(fh: _Readable, what: str) -> bytes:
    """Read ``fh`` to the end in chunks, refusing as soon as more than the limit came out."""
    limit = max_text_bytes()
    chunks, total = [], 0
    while chunk := fh.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise GeoJSONError(_too_large(what, total, more=True))
        chunks.append(chunk)
    return b"".join(chunks)


def _limited(payload: bytes, source: str, what: str) -> bytes:
    if len(payload) > max_text_bytes():
        raise GeoJSONError(_too_large(source if source != "<data>" else what, len(payload)))
    return payload


def _zip_entry(path: Path, report: ReadReport) -> bytes:
    with zipfile.ZipFile(path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if not infos:
            raise GeoJSONError(f"{path.name}: the zip archive is empty; export the objects again")
        candidates = [i for i in infos if i.filename.lower().endswith((".geojson", ".json"))]
        candidates = [i for i in candidates if not _macos_extra(i.filename)]
        unsafe = [i.filename for i in candidates if not _safe_member(i.filename)]
        if unsafe:
            message = (
                f"{len(unsafe)} zip entry name(s) point outside the archive ({short(unsafe[0], 80)}): "
                "skipped (nothing is extracted to disk, but QuPath never writes such names)"
            )
            report.add(None, "unsafe-zip-entry", Severity.WARNING, message)
            candidates = [i for i in candidates if _safe_member(i.filename)]
        if not candidates:
            names = short([i.filename for i in infos[:5]], 120)
            message = f"the zip holds no usable .geojson or .json entry (entries: {names})"
            raise GeoJSONError(f"{path.name}: {message}")
        if len(candidates) > 1:
            message = f"zip has {len(candidates)} GeoJSON entries: read {short(candidates[0].filename, 80)}"
            report.add(None, "zip-entries", Severity.WARNING, message)
        info = candidates[0]
        if info.file_size > max_text_bytes():  # the declared size: refuse before inflating anything
            raise GeoJSONError(_too_large(f"{path.name}: entry {info.filename}", info.file_size))
        try:
            with archive.open(info) as fh:
                return _read_limited(fh, f"{path.name}: entry {short(info.filename, 60)} (inflated)")
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, or a compression zipfile lacks
            raise GeoJSONError(one_line(f"{path.name}: cannot inflate {info.filename} ({exc}); "
                                        "export it again as a plain zip or .geojson")) from exc  # fmt: skip


def _macos_extra(name: str) -> bool:
    """Finder's resource-fork copies (``__MACOSX/._a.geojson``): binary, never the export."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return "__MACOSX" in parts or (bool(parts) and parts[-1].startswith("._"))


def _safe_member(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return (
        not pure.is_absolute() and ".." not in pure.parts and ":" not in (pure.parts[0] if pure.parts else "")
    )


def _too_large(what: str, size: int, *, more: bool = False) -> str:
    limit = max_text_bytes()
    amount = f"more than {_mb(limit)}" if more else _mb(size)
    return (
        f"{what}: {amount} of GeoJSON text, over the {_mb(limit)} limit qupath_bridge reads "
        f"(parsing needs several times that in memory); if the file is genuine, raise the limit with "
        f"the environment variable {MAX_MB_ENV} (e.g. {MAX_MB_ENV}={max(2 * limit // 2**20, 2048)})"
    )


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size:,} bytes"


def _os_reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


# ---------------------------------------------------------------- text


def _decode(payload: bytes, report: ReadReport) -> tuple[str, bytes | None]:
    for bom, codec, name in _BOMS:
        if payload.startswith(bom):
            try:
                text = payload[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                why = f"a {name} byte-order mark, then byte {exc.start + len(bom):,} is not {name}"
                raise GeoJSONError(_not_text(report.source, payload, why)) from exc
            if text.lstrip()[:1] not in ("{", "["):
                why = f"a {name} byte-order mark, then no JSON"
                raise GeoJSONError(_not_text(report.source, payload, why))
            message = f"{name} text: read, but QuPath reads GeoJSON as UTF-8 only; save the file as UTF-8"
            report.add(None, "not-utf8", Severity.ERROR, message)
            return text, None
    if payload.startswith(codecs.BOM_UTF8):
        message = "starts with a UTF-8 byte-order mark: read, but JSON has none; save the file without it"
        report.add(None, "utf8-bom", Severity.WARNING, message)
        payload = payload[len(codecs.BOM_UTF8) :]
    head = payload[:4096]
    if b"\x00" in head:
        raise GeoJSONError(_not_text(report.source, payload, "it holds NUL bytes"))
    try:
        return payload.decode("utf-8"), payload
    except UnicodeDecodeError as exc:
        raise GeoJSONError(_not_text(report.source, payload, f"byte {exc.start:,} is not UTF-8")) from exc


def _not_text(source: str, payload: bytes, why: str) -> str:
    kind = next((name for magic, name in _MAGIC.items() if payload.startswith(magic)), None)
    what = f"it is {kind}" if kind else why
    return f"{source}: not a GeoJSON text file ({what}); give the .geojson that QuPath exported"


def _check_structure(data: bytes, report: ReadReport) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`; note whether any array holds true/false.

    One pass at C speed: escapes are removed, every byte but brackets, quotes, commas,
    colons and ``t``/``f`` is deleted, strings are masked by quote parity, and the
    depth is the running sum of opening minus closing brackets.  A ``t``/``f`` right
    after ``[`` or ``,`` is a boolean inside an array (in objects a key comes first).
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    compact = np.frombuffer(data.translate(None, _DELETE), np.uint8)
    depth = peak = 0
    in_string = False
    previous = 0
    bools = False
    step = 1 << 24
    for start in range(0, len(compact), step):
        chunk = compact[start : start + step]
        quotes = chunk == ord('"')
        parity = np.cumsum(quotes, dtype=np.uint8) & 1
        outside = (parity == 0) if not in_string else (parity == 1)
        in_string = in_string != bool(parity[-1]) if len(parity) else in_string
        structure = chunk[outside & ~quotes]
        if not len(structure):
            continue
        levels = np.cumsum(_STEP[structure], dtype=np.int32) + depth  # a chunk moves < 2**24 levels
        peak = max(peak, int(levels.max()))
        depth = max(int(levels[-1]), 0)  # below 0 the JSON is broken anyway; keeps int32 in range
        if not bools:
            value = (structure == ord("t")) | (structure == ord("f"))
            before = np.concatenate([[previous], structure[:-1]])
            bools = bool(np.any(value & ((before == ord("[")) | (before == ord(",")))))
        previous = int(structure[-1])
        if peak > MAX_DEPTH:
            raise GeoJSONError(_too_deep(report.source, peak))
    report.check_types = bools


def _too_deep(source: str, depth: int | None) -> str:
    found = f"nested {depth:,}+ levels deep" if depth is not None else "nested too deeply to read"
    return (
        f"{source}: JSON {found}; qupath_bridge reads at most {MAX_DEPTH} levels (QuPath's exports use "
        "fewer than 20): the file is damaged or was not made as GeoJSON"
    )


def _long_number(text: str, source: str) -> str:
    limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300
    match = re.search(rf"-?\d{{{limit + 1},}}", text)
    if match is None:
        return f"{source}: a number in the file is too long to read; fix or remove it"
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    digits = len(match.group().lstrip("-"))
    return (
        f"{source}: a number with {digits:,} digits at line {line}, column {column} "
        f"({match.group()[:12]}...): far beyond any coordinate or measurement (GeoJSON numbers are "
        "doubles); fix or remove it"
    )


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
