"""Small files written atomically: a temporary name beside the target, then a rename.

A killed process or a full disk never leaves a half-written output under the
final name, so resumable jobs can trust every file they find.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["encode_png", "write_bytes_atomic", "write_png"]


def write_bytes_atomic(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through ``path.part`` and a rename; returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
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
