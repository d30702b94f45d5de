"""Write the tiles of a slide as patch files in class folders, plus ``tiles.csv`` and GeoJSON.

Resumable: a patch whose file exists is not read again (files are written to
a temporary name and renamed, so a killed run leaves no half-written patch);
``tiles.csv`` keeps the rows of other slides exported into the same folder.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import imagecodecs
import numpy as np

from napari_histo.core.tiling import TileGrid
from napari_histo.io._tile_geojson import write_tile_geojson
from napari_histo.io.patches import iter_tiles
from napari_histo.io.slide import SLIDE_EXTENSIONS, Slide

__all__ = ["CSV_COLUMNS", "DEFAULT_LABEL", "export_tiles", "patch_path", "slide_stem"]

CSV_COLUMNS = ("slide", "x", "y", "level", "mpp", "tile_px", "label", "tissue_fraction", "path")
#: class folder of tiles without an annotation label
DEFAULT_LABEL = "tissue"
_ENCODERS = {
    "png": lambda a: imagecodecs.png_encode(a),
    "jpg": lambda a: imagecodecs.jpeg8_encode(a, level=95),
}


def slide_stem(path: Path) -> str:
    """File name without the slide extension (``a.b.ome.tif`` -> ``a.b``)."""
    name = path.name
    for ext in sorted(SLIDE_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def patch_path(out_dir: Path, slide_name: str, label: str, row: int, col: int, fmt: str) -> Path:
    """Where the patch at level-0 (row, col) goes: ``out_dir/label/slide_x{col}_y{row}.fmt``."""
    return out_dir / label / f"{slide_name}_x{col}_y{row}.{fmt}"


def export_tiles(
    slide: Slide,
    grid: TileGrid,
    out_dir: str | os.PathLike[str],
    *,
    fractions: np.ndarray,
    labels: Sequence[str] | None = None,
    image_format: str = "png",
    workers: int = 4,
) -> Iterator[int]:
    """Export every tile of ``grid``; a generator that yields after each tile (for progress bars).

    Parameters
    ----------
    slide : Slide
    grid : TileGrid
        The tiles to write (already filtered by tissue and annotations).
    out_dir : path-like
    fractions : ndarray, float, shape (n,)
        Tissue fraction of each tile (written to CSV and GeoJSON).
    labels : sequence of str, optional
        Class of each tile (its folder); default ``"tissue"``.
    image_format : {"png", "jpg"}
    workers : int
        Decoding threads.

    Yields
    ------
    int
        Number of tiles done so far (skipped existing ones count as done).
    """
    if image_format not in _ENCODERS:
        raise ValueError(f"image_format must be one of {sorted(_ENCODERS)}, got {image_format!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slide_stem(slide.path)
    classes = list(labels) if labels is not None else [None] * len(grid)
    labels = list(labels) if labels is not None else [DEFAULT_LABEL] * len(grid)
    paths = [
        patch_path(out_dir, name, labels[i], int(r), int(c), image_format)
        for i, (r, c) in enumerate(grid.origins_rc.tolist())
    ]
    for label in set(labels):
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    done = len(grid) - len(todo)
    if done:
        yield done
    encode = _ENCODERS[image_format]
    for i, pixels in iter_tiles(slide, grid, todo, workers=workers):
        _write_atomic(paths[i], encode(pixels))
        done += 1
        yield done
    _write_csv(out_dir / "tiles.csv", slide.path.name, grid, labels, fractions, paths, out_dir)
    write_tile_geojson(
        out_dir / f"{name}_tiles.geojson", grid, slide.path.name, classes, {"tissue_fraction": fractions}
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_csv(
    path: Path,
    slide_name: str,
    grid: TileGrid,
    labels: Sequence[str],
    fractions: np.ndarray,
    paths: Sequence[Path],
    out_dir: Path,
) -> None:
    rows = []
    if path.exists():  # keep other slides' rows
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.DictReader(fh) if row.get("slide") != slide_name]
    for i, (r, c) in enumerate(grid.origins_rc.tolist()):
        rows.append(
            {
                "slide": slide_name,
                "x": c,
                "y": r,
                "level": grid.level,
                "mpp": grid.target_mpp,
                "tile_px": grid.tile_px,
                "label": labels[i],
                "tissue_fraction": f"{float(fractions[i]):.4f}",
                "path": paths[i].relative_to(out_dir).as_posix(),
            }
        )
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
