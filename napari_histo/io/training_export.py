"""Training sets from corrected predictions: labelled tiles of a slide as class folders of PNGs.

What a pathologist paints over a model's class map (or draws as classified
annotations) becomes ``root/<class>/<slide>_<tile>.png`` — the layout every
``histo train`` recipe reads with ``data.source: folders``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_histo.core.tiling import TileGrid
from napari_histo.io.patches import iter_tiles
from napari_histo.io.slide import Slide

__all__ = ["export_labelled_tiles"]


def export_labelled_tiles(
    slide: Slide,
    grid: TileGrid,
    tile_classes: np.ndarray,
    class_names: Sequence[str],
    root: str | os.PathLike[str],
    *,
    workers: int = 4,
) -> dict[str, int]:
    """Write every tile with a class (``tile_classes[i] >= 0``) into ``root/<class name>/``.

    Returns the number of tiles per class.  Files are written atomically;
    existing files are kept, so an interrupted export resumes.
    """
    import imagecodecs

    tile_classes = np.asarray(tile_classes, dtype=np.int64)
    if tile_classes.shape != (len(grid),):
        raise ValueError(f"tile_classes must have one entry per tile ({len(grid)}), got {tile_classes.shape}")
    if tile_classes.max(initial=-1) >= len(class_names):
        raise ValueError(
            f"a tile has class {tile_classes.max()} but only {len(class_names)} classes are named"
        )
    root = Path(root)
    counts = {name: 0 for name in class_names}
    for name in class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    labelled = np.flatnonzero(tile_classes >= 0)
    stem = slide.path.name.split(".")[0]
    for index, pixels in iter_tiles(slide, grid, labelled.tolist(), workers=workers):
        name = class_names[tile_classes[index]]
        path = root / name / f"{stem}_{index:07d}.png"
        counts[name] += 1
        if path.exists():
            continue
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(imagecodecs.png_encode(pixels))
        os.replace(tmp, path)
    return counts
