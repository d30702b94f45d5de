"""Tiles of a slide as patch files: class folders, ``tiles.csv`` and the grid as QuPath GeoJSON.

:func:`export_slide_tiles` is ``histo tiles``: tissue grid → (optional)
QuPath annotation labels → patch files.  :func:`export_tiles` writes an
already chosen grid; :func:`export_labelled_tiles` writes the tiles a
pathologist corrected, as a ``histo train`` data folder.

Resumable: a patch whose file exists is not read again; every file is written
to a temporary name and renamed, so a killed run leaves no half-written patch;
``tiles.csv`` keeps the rows of other slides exported into the same folder.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.tile_labels import TileLabelRule, label_tiles
from napari_histo.core.tiling import TileGrid, select_tiles
from napari_histo.core.tissue import TissueMethod
from napari_histo.errors import InvalidParameterError, NoTissueError
from napari_histo.io import SLIDE_EXTENSIONS
from napari_histo.io.files import write_bytes_atomic
from napari_histo.io.regions import iter_tiles
from napari_histo.pipeline.qupath import read_annotation_regions, write_tiles_geojson
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tissue import plan_grid, slide_tissue_mask, tissue_tiles

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_LABEL",
    "TileExport",
    "export_labelled_tiles",
    "export_slide_tiles",
    "export_tiles",
    "patch_path",
    "slide_stem",
]

CSV_COLUMNS = ("slide", "x", "y", "level", "mpp", "tile_px", "label", "tissue_fraction", "path")
#: class folder of tiles without an annotation label
DEFAULT_LABEL = "tissue"
_ENCODERS: dict[str, Callable[[np.ndarray], bytes]] = {
    "png": lambda a: bytes(imagecodecs.png_encode(a)),
    "jpg": lambda a: bytes(imagecodecs.jpeg8_encode(a, level=95)),
}


@dataclass(frozen=True)
class TileExport:
    """What :func:`export_slide_tiles` returns."""

    grid: TileGrid
    labels: list[str] | None
    total: int  # tiles in the grid before the tissue and annotation filters
    annotation_classes: tuple[str, ...] = ()  # every class the annotations named


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


def export_slide_tiles(
    session: SlideSession,
    out_dir: str | os.PathLike[str],
    *,
    target_mpp: float,
    tile_px: int,
    overlap_px: int = 0,
    min_tissue: float = 0.5,
    tissue_method: TissueMethod | str = TissueMethod.HSV,
    annotations: str | os.PathLike[str] | None = None,
    label_rule: TileLabelRule | str = TileLabelRule.CENTRE,
    classes: Sequence[str] | None = None,
    image_format: str = "png",
    workers: int = 4,
) -> Generator[Progress, None, TileExport]:
    """Cut the slide's tissue into patches of ``tile_px`` at ``target_mpp`` under ``out_dir``.

    With ``annotations`` (QuPath GeoJSON) only tiles inside an annotation are
    kept, each in its class's folder (only ``classes`` when given).  The first item yielded says which tiles
    were kept (its ``total`` is their count, its ``stage`` a sentence), then one
    item per patch written; returns :class:`TileExport`.
    """
    if overlap_px >= tile_px:
        raise InvalidParameterError(f"overlap {overlap_px} px must be smaller than the tile ({tile_px} px)")
    grid = plan_grid(session, target_mpp, tile_px, overlap_px)
    total = len(grid)
    if total == 0:
        rows, cols = session.slide.dimensions
        raise NoTissueError(
            f"{session.name} is {cols:,} x {rows:,} px, smaller than one tile of {tile_px} px at "
            f"{target_mpp:g} µm/px ({grid.tile_px_level0:,.0f} level-0 px): use a smaller tile (--tile-px) "
            "or a finer µm/px (--mpp)"
        )
    grid, fractions = tissue_tiles(grid, slide_tissue_mask(session, tissue_method), min_tissue)
    labels: list[str] | None = None
    names: tuple[str, ...] = ()
    if annotations is not None:
        codes, names = label_tiles(grid, read_annotation_regions(annotations), label_rule)
        keep = codes >= 0
        if classes:
            keep &= np.isin(codes, [i for i, name in enumerate(names) if name in set(classes)])
        grid, fractions = select_tiles(grid, keep), fractions[keep]
        labels = [names[c] for c in codes[keep]]
    yield Progress(0, len(grid), f"{len(grid):,} of {total:,} tiles kept, read from level {grid.level}")
    yield from export_tiles(session, grid, out_dir, fractions=fractions, labels=labels,
                            image_format=image_format, workers=workers)  # fmt: skip
    return TileExport(grid, labels, total, tuple(names))


def export_tiles(
    session: SlideSession,
    grid: TileGrid,
    out_dir: str | os.PathLike[str],
    *,
    fractions: np.ndarray,
    labels: Sequence[str] | None = None,
    image_format: str = "png",
    workers: int = 4,
) -> Generator[Progress, None, int]:
    """Write every tile of ``grid`` with ``tiles.csv`` and ``<slide>_tiles.geojson``; returns the count.

    ``fractions`` is each tile's tissue fraction; ``labels`` each tile's class
    (its folder), default ``"tissue"``.  Yields after each tile (skipped existing
    ones count as done).
    """
    if image_format not in _ENCODERS:
        raise InvalidParameterError(f"image format must be one of {sorted(_ENCODERS)}, got {image_format!r}")
    out = Path(out_dir)
    name = slide_stem(session.path)
    folders = list(labels) if labels is not None else [DEFAULT_LABEL] * len(grid)
    paths = [patch_path(out, name, folders[i], int(r), int(c), image_format)
             for i, (r, c) in enumerate(grid.origins_rc.tolist())]  # fmt: skip
    for label in set(folders) or {DEFAULT_LABEL}:
        (out / label).mkdir(parents=True, exist_ok=True)
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    done = len(grid) - len(todo)
    yield Progress(done, len(grid), "writing tiles")
    encode = _ENCODERS[image_format]
    for i, pixels in iter_tiles(session.slide, grid, todo, workers=workers):
        write_bytes_atomic(paths[i], encode(pixels))
        done += 1
        yield Progress(done, len(grid), "writing tiles")
    _write_csv(out / "tiles.csv", session.name, grid, folders, fractions, paths, out)
    write_tiles_geojson(out / f"{name}_tiles.geojson", grid, session.name, labels=labels,
                        measurements={"tissue_fraction": fractions})  # fmt: skip
    return len(grid)


def export_labelled_tiles(
    session: SlideSession,
    grid: TileGrid,
    tile_classes: np.ndarray,
    class_names: Sequence[str],
    root: str | os.PathLike[str],
    *,
    workers: int = 4,
) -> Generator[Progress, None, dict[str, int]]:
    """Write every tile with a class (``tile_classes[i] >= 0``) into ``root/<class name>/``.

    The layout every ``histo train`` recipe reads with ``data.source: folders``.
    Returns the number of tiles per class; existing files are kept, so an
    interrupted export resumes.
    """
    tile_classes = np.asarray(tile_classes, dtype=np.int64)
    if tile_classes.shape != (len(grid),):
        raise InvalidParameterError(
            f"tile classes must have one entry per tile ({len(grid)}), got shape {tile_classes.shape}"
        )
    if tile_classes.max(initial=-1) >= len(class_names):
        raise InvalidParameterError(
            f"a tile has class {tile_classes.max()} but only {len(class_names)} classes are named"
        )
    root = Path(root)
    counts = {name: 0 for name in class_names}
    for name in class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    labelled = np.flatnonzero(tile_classes >= 0)
    stem = slide_stem(session.path)
    for done, (index, pixels) in enumerate(
        iter_tiles(session.slide, grid, labelled.tolist(), workers=workers)
    ):
        name = class_names[tile_classes[index]]
        path = root / name / f"{stem}_{index:07d}.png"
        counts[name] += 1
        if not path.exists():
            write_bytes_atomic(path, _ENCODERS["png"](pixels))
        yield Progress(done + 1, len(labelled), "exporting corrected tiles")
    return counts


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
