"""Fitted stain parameters as JSON files (e.g. a model's stain reference)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from napari_histo.core.stain import StainParams
from napari_histo.errors import InvalidParameterError
from napari_histo.io.files import write_bytes_atomic

__all__ = ["load_stain_params", "save_stain_params"]


def save_stain_params(params: StainParams, path: str | os.PathLike[str]) -> Path:
    """Write fitted parameters as JSON, atomically (a temporary file, then a rename)."""
    return write_bytes_atomic(path, (params.to_json() + "\n").encode("utf-8"))


def load_stain_params(path: str | os.PathLike[str]) -> StainParams:
    """Read parameters written by :func:`save_stain_params`; the error names the file and the bad field."""
    path = Path(path)
    try:
        return StainParams.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(
            f"{path}: not valid napari-histo stain parameters ({exc}); save a reference from the stain "
            "dock or with napari_histo.io.stain_json.save_stain_params"
        ) from exc
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read the stain reference ({exc.strerror})") from exc
