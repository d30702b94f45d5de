"""Training tiles from slides + QuPath GeoJSON annotations (source ``slides``).

Tiles are planned on the tiling grid at ``data.tile_mpp`` µm/px, kept where
there is tissue, labelled by the annotation under each tile's centre, and
exported with :func:`napari_histo.pipeline.tiles.export_slide_tiles` (class folders
+ ``tiles.csv``, resumable), so a recipe on slides trains on exactly what
``histo tiles`` would write.  Splits then group by slide.
"""

from __future__ import annotations

from pathlib import Path

from napari_histo.core.progress import run_to_end
from napari_histo.pipeline.session import open_session
from napari_histo.pipeline.tiles import export_slide_tiles
from training.config import DataConfig
from training.samples import DataError

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
    exported = 0
    for slide_path, geojson in zip(config.slides, config.annotations):
        with open_session(base / slide_path) as session:
            export = run_to_end(export_slide_tiles(
                session, out_dir, target_mpp=config.tile_mpp, tile_px=config.tile_px,
                min_tissue=config.min_tissue, annotations=base / geojson, classes=sorted(wanted) or None,
            ))  # fmt: skip
        seen |= set(export.annotation_classes)
        exported += len(export.grid)
    if wanted and not wanted & seen:
        raise DataError(
            f"the annotation classes {sorted(seen)} do not match the recipe's data.class_names "
            f"{sorted(wanted)}; rename the classes in QuPath or fix data.class_names"
        )
    if not exported:
        raise DataError(
            f"no annotated tissue tile in {list(config.slides)}; check the annotations and min_tissue"
        )
    return out_dir / "tiles.csv"
