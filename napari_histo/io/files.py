"""Small files written atomically: a temporary name beside the target, then a rename.

A killed process or a full disk never leaves a half-written output under the
final name, so resumable jobs can trust every file they find.  A settings
record beside the outputs (:func:`write_settings`) says what made them, so a
re-run with other settings is noticed instead of mixing old and new outputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "encode_png",
    "file_digest",
    "read_settings",
    "settings_changes",
    "source_bytes",
    "source_name",
    "write_bytes_atomic",
    "write_png",
    "write_settings",
]


def source_name(source: str | os.PathLike[str]) -> str:
    """The file (or folder) name of a slide given as a local path or a URL (``CMU-1.svs``; a DICOMweb
    series URL gives its series UID): what output files are named after."""
    from napari_histo.io._remote import is_url, url_name

    return url_name(source) if is_url(source) else Path(source).name  # type: ignore[arg-type]


def source_bytes(source: str | os.PathLike[str]) -> int | None:
    """Size of a local slide file (recorded to notice a changed slide); ``None`` for a folder or a URL."""
    from napari_histo.io._remote import is_url

    if is_url(source):
        return None
    path = Path(source)
    return path.stat().st_size if path.is_file() else None


def write_bytes_atomic(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through ``path.part`` and a rename; returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write (disk full) names no file: name the one being written
            exc.filename = str(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image (gray, RGB or RGBA)."""
    import imagecodecs

    return bytes(imagecodecs.png_encode(np.ascontiguousarray(image)))


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a uint8 image as PNG, atomically."""
    return write_bytes_atomic(path, encode_png(image))


# -- settings records: what made the outputs in a folder, so a re-run with other settings is noticed --


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings recorded in ``path`` (JSON object), or ``None`` when there is no usable record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_settings(path: str | os.PathLike[str], settings: Mapping[str, Any]) -> Path:
    """Record ``settings`` (JSON-able) in ``path``, atomically."""
    return write_bytes_atomic(path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())


def settings_changes(
    recorded: Mapping[str, Any],
    wanted: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
    keys: Iterable[str] | None = None,
) -> list[str]:
    """What differs between ``recorded`` and ``wanted`` settings, as ``"--tile-px 224 -> 128"`` strings.

    ``names`` maps keys to the words shown (e.g. option names); ``keys`` limits the comparison
    (default: the keys both have, so a record from an older version is compared on what it
    holds).  Values are compared as JSON would store them.
    """
    wanted = json.loads(json.dumps(dict(wanted)))
    names = names or {}
    compared = list(keys) if keys is not None else sorted(set(recorded) & set(wanted))
    return [
        _change(names.get(key, key), recorded.get(key), wanted.get(key))
        for key in compared
        if recorded.get(key) != wanted.get(key)
    ]


def _change(name: str, old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):  # e.g. digests per file: name the files
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"{name}: {', '.join(differ)} changed"
    return f"{name} {_shown(old)} -> {_shown(new)}"


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:8]  # a digest: enough to tell two apart
    return str(value)


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (cached while its size and modification time stay the same)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
