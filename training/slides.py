"""Training tiles from slides + QuPath GeoJSON annotations (source ``slides``).

Tiles are planned on the tiling grid at ``data.tile_mpp`` µm/px, kept where
there is tissue, labelled by the annotation under each tile's centre, and
exported with :func:`napari_histo.io.tile_export.export_tiles` (class folders
+ ``tiles.csv``, resumable), so a recipe on slides trains on exactly what
``histo tiles`` would write.  Splits then group by slide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_histo.core.tile_labels import label_tiles
from napari_histo.core.tiling import select_tiles
from napari_histo.io import open_slide
from napari_histo.io.annotations import read_annotation_regions
from napari_histo.io.patches import plan_slide_grid, slide_tissue_mask, tissue_tiles
from napari_histo.io.tile_export import export_tiles
from training.config import DataConfig
from training.data import DataError

__all__ = ["export_annotated_tiles"]


def export_annotated_tiles(config: DataConfig, base: Path, out_dir: Path) -> Path:
    """Write the annotated tissue tiles of every slide into ``out_dir``; returns ``out_dir/tiles.csv``."""
    if not config.slides or len(config.slides) != len(config.annotations):
        raise DataError(
            f"data.slides ({len(config.slides)}) and data.annotations ({len(config.annotations)}) must list "
            "one GeoJSON file per slide"
        )
    wanted = set(config.class_names)
    seen: set[str] = set()
    for slide_path, geojson in zip(config.slides, config.annotations):
        slide = open_slide(base / slide_path)
        grid = plan_slide_grid(slide, config.tile_mpp, config.tile_px)
        grid, fractions = tissue_tiles(grid, slide_tissue_mask(slide), config.min_tissue)
        codes, names = label_tiles(grid, read_annotation_regions(base / geojson))
        seen |= set(names)
        labels = np.array([names[c] if c >= 0 else "" for c in codes], dtype=object)
        keep = (codes >= 0) & np.array([(not wanted) or lab in wanted for lab in labels], dtype=bool)
        if keep.any():
            chosen = select_tiles(grid, keep)
            for _ in export_tiles(
                slide, chosen, out_dir, fractions=fractions[keep], labels=list(labels[keep])
            ):
                pass
    if wanted and not wanted & seen:
        raise DataError(
            f"the annotation classes {sorted(seen)} do not match the recipe's data.class_names "
            f"{sorted(wanted)}; rename the classes in QuPath or fix data.class_names"
        )
    if not (out_dir / "tiles.csv").exists():
        raise DataError(
            f"no annotated tissue tile in {list(config.slides)}; check the annotations and min_tissue"
        )
    return out_dir / "tiles.csv"
