"""Per-slide prediction stores: chunked zarr on disk, resumable, finalised atomically.

While a run is going the store lives at ``<name>.zarr.partial``; each finished
batch is written with its ``done`` flags, so a killed run resumes where it
stopped.  :meth:`PredictionStore.finalize` renames the folder to ``<name>.zarr``
only when every tile is done, so a ``.zarr`` folder is always complete.

Layout (zarr v3 group)::

    origins_rc      (n, 2) int64     tile top-left corners, level-0 pixels
    probabilities   (n, C) float32   per-class scores (NaN until done)
    done            (n,)   bool
    class_map       (rows, cols) int16   top class per grid cell, -1 = not predicted
    probability_map (C, rows, cols) float32
    attrs: fingerprint (what was run, for resume), class_names, grid geometry
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PredictionStore"]

_CHUNK_TILES = 4096


class PredictionStore:
    """Write tile predictions as they come; read them back for layers and exports."""

    def __init__(self, group: Any, path: Path):
        self._group = group
        self.path = path

    # -- create / resume --------------------------------------------------------------------
    @classmethod
    def open_or_create(
        cls,
        final_path: str | os.PathLike[str],
        origins_rc: np.ndarray,
        class_names: list[str],
        fingerprint: dict[str, Any],
    ) -> PredictionStore:
        """Resume ``<final>.partial`` when its fingerprint matches, else start it afresh."""
        import zarr

        final_path = Path(final_path)
        partial = final_path.with_name(final_path.name + ".partial")
        stamp = json.loads(json.dumps(fingerprint))  # normalise tuples -> lists
        if partial.exists():
            try:
                group = zarr.open_group(str(partial), mode="r+")
                origins = group["origins_rc"]
                if (
                    group.attrs.get("fingerprint") == stamp
                    and isinstance(origins, zarr.Array)
                    and origins.shape[0] == len(origins_rc)
                ):
                    return cls(group, partial)
            except Exception:  # noqa: BLE001 - an unreadable partial store is simply started again
                pass
            shutil.rmtree(partial)
        n, c = len(origins_rc), len(class_names)
        group = zarr.open_group(str(partial), mode="w")
        chunk = max(1, min(_CHUNK_TILES, n))
        origins = group.create_array("origins_rc", shape=(n, 2), chunks=(chunk, 2), dtype="int64")
        if n:
            origins[:] = np.asarray(origins_rc, dtype=np.int64).reshape(n, 2)
        group.create_array(
            "probabilities", shape=(n, c), chunks=(chunk, c), dtype="float32", fill_value=np.nan
        )
        group.create_array("done", shape=(n,), chunks=(chunk,), dtype="bool", fill_value=False)
        group.attrs.update({"fingerprint": stamp, "class_names": list(class_names)})
        return cls(group, partial)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PredictionStore:
        """Open a finished (or partial) store read-only."""
        import zarr

        return cls(zarr.open_group(str(path), mode="r"), Path(path))

    # -- writing ------------------------------------------------------------------------------
    def pending(self) -> np.ndarray:
        """Indices of tiles not yet predicted (int64)."""
        done = self._group["done"][:] if self.n_tiles else np.zeros(0, bool)
        return np.flatnonzero(~done)

    def write(self, indices: np.ndarray, probabilities: np.ndarray) -> None:
        """Store ``probabilities`` (k, C) of tiles ``indices`` (k,) — contiguous runs are fastest."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return
        lo, hi = int(indices[0]), int(indices[-1]) + 1
        if hi - lo == indices.size:  # the usual case: a contiguous run
            self._group["probabilities"][lo:hi] = probabilities
            self._group["done"][lo:hi] = True
        else:
            for i, p in zip(indices, probabilities):
                self._group["probabilities"][int(i)] = p
                self._group["done"][int(i)] = True

    def finalize(
        self, grid_shape_rc: tuple[int, int], cell_index_rc: np.ndarray, attrs: dict[str, Any]
    ) -> Path:
        """Write the grid maps, then rename ``*.partial`` to the final name (atomic on one disk).

        ``cell_index_rc`` (n, 2) gives each tile's (row, col) cell in the grid maps.
        """
        if self.pending().size:
            raise RuntimeError(f"{self.path}: {self.pending().size} tiles are not predicted yet")
        probs = self.probabilities()
        rows, cols = grid_shape_rc
        class_map = np.full((rows, cols), -1, np.int16)
        prob_map = np.full((probs.shape[1], rows, cols), np.nan, np.float32)
        if len(probs):
            class_map[cell_index_rc[:, 0], cell_index_rc[:, 1]] = probs.argmax(axis=1)
            prob_map[:, cell_index_rc[:, 0], cell_index_rc[:, 1]] = probs.T
        g = self._group
        g.create_array("class_map", shape=class_map.shape, chunks=_map_chunks(class_map.shape), dtype="int16",
                       fill_value=-1, overwrite=True)[:] = class_map  # fmt: skip
        chunks = (1, *_map_chunks((rows, cols)))
        g.create_array("probability_map", shape=prob_map.shape, chunks=chunks, dtype="float32",
                       fill_value=np.nan, overwrite=True)[:] = prob_map  # fmt: skip
        g.attrs.update(json.loads(json.dumps(attrs)))
        final = self.path.with_name(self.path.name.removesuffix(".partial"))
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.path, final)
        self.path = final
        return final

    # -- reading ------------------------------------------------------------------------------
    @property
    def n_tiles(self) -> int:
        return int(self._group["origins_rc"].shape[0])

    def probabilities(self) -> np.ndarray:
        return np.asarray(self._group["probabilities"][:])

    def origins_rc(self) -> np.ndarray:
        return np.asarray(self._group["origins_rc"][:])

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._group.attrs)

    def array(self, name: str) -> Any:
        return self._group[name]


def _map_chunks(shape: tuple[int, int]) -> tuple[int, int]:
    return (max(1, min(1024, shape[0])), max(1, min(1024, shape[1])))
