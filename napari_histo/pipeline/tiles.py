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

import contextlib
import csv
import glob
import io
import os
import re
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from napari_histo.core.progress import Progress
from napari_histo.core.tile_labels import TileLabelRule, label_tiles
from napari_histo.core.tiling import TileGrid, select_tiles
from napari_histo.core.tissue import TissueMethod
from napari_histo.errors import InvalidParameterError, NoTissueError
from napari_histo.io import SLIDE_EXTENSIONS
from napari_histo.io.files import (
    file_digest,
    read_settings,
    settings_changes,
    source_bytes,
    source_name,
    write_bytes_atomic,
    write_settings,
)
from napari_histo.io.regions import iter_tiles
from napari_histo.pipeline.predict import warn_if_not_brightfield
from napari_histo.pipeline.qupath import read_annotation_regions, write_tiles_geojson
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tissue import plan_grid, slide_tissue_mask, tissue_tiles

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_LABEL",
    "EarlierOutputsWarning",
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


class EarlierOutputsWarning(UserWarning):
    """Earlier outputs made with other settings were deleted (``overwrite``) or a run starts afresh."""


@dataclass(frozen=True)
class TileExport:
    """What :func:`export_slide_tiles` returns."""

    grid: TileGrid
    labels: list[str] | None
    total: int  # tiles in the grid before the tissue and annotation filters
    annotation_classes: tuple[str, ...] = ()  # every class the annotations named


def slide_stem(path: str | os.PathLike[str]) -> str:
    """File name without the slide extension (``a.b.ome.tif`` -> ``a.b``); a URL's file name likewise."""
    name = source_name(path)
    for ext in sorted(SLIDE_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


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
    overwrite: bool = False,
) -> Generator[Progress, None, TileExport]:
    """Cut the slide's tissue into patches of ``tile_px`` at ``target_mpp`` under ``out_dir``.

    With ``annotations`` (QuPath GeoJSON) only tiles inside an annotation are
    kept, each in its class's folder (only ``classes`` when given).  The first item yielded says which tiles
    were kept (its ``total`` is their count, its ``stage`` a sentence), then one
    item per patch written; returns :class:`TileExport`.

    The settings are recorded in ``<slide>_tiles.settings.json``: a re-run with the same
    settings resumes; with other settings it raises :class:`InvalidParameterError` while
    earlier patches of the slide are in ``out_dir`` — unless ``overwrite``, which deletes
    them (with a warning) and starts afresh.
    """
    if overlap_px >= tile_px:
        raise InvalidParameterError(f"overlap {overlap_px} px must be smaller than the tile ({tile_px} px)")
    settings = {
        "slide": session.name, "slide_bytes": source_bytes(session.slide.source), "slide_mpp": session.mpp,
        "mpp": float(target_mpp), "tile_px": int(tile_px), "overlap_px": int(overlap_px),
        "min_tissue": float(min_tissue), "tissue_method": str(getattr(tissue_method, "value", tissue_method)),
        "annotations": None if annotations is None else file_digest(annotations),
        "label_mode": str(getattr(label_rule, "value", label_rule)),
        "classes": sorted(classes) if classes else None, "format": image_format,
    }  # fmt: skip
    _check_earlier_tiles(Path(out_dir), slide_stem(session.path), settings, overwrite)
    grid = plan_grid(session, target_mpp, tile_px, overlap_px)
    total = len(grid)
    if total == 0:
        rows, cols = session.slide.dimensions
        raise NoTissueError(
            f"{session.name} is {cols:,} x {rows:,} px, smaller than one tile of {tile_px} px at "
            f"{target_mpp:g} µm/px ({grid.tile_px_level0:,.0f} level-0 px): use a smaller tile (--tile-px) "
            "or a finer µm/px (--mpp)"
        )
    warn_if_not_brightfield(session)
    grid, fractions = tissue_tiles(grid, slide_tissue_mask(session, tissue_method), min_tissue)
    labels: list[str] | None = None
    names: tuple[str, ...] = ()
    if annotations is not None:
        slide_shape = session.slide.dimensions
        regions = read_annotation_regions(annotations, slide_shape=slide_shape, slide_name=session.name)
        codes, names = label_tiles(grid, regions, label_rule)
        keep = codes >= 0
        if classes:
            keep &= np.isin(codes, [i for i, name in enumerate(names) if name in set(classes)])
        grid, fractions = select_tiles(grid, keep), fractions[keep]
        labels = [names[c] for c in codes[keep]]
    yield Progress(0, len(grid), f"{len(grid):,} of {total:,} tiles kept, read from level {grid.level}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_settings(_settings_path(Path(out_dir), slide_stem(session.path)), settings)
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
    _write_csv_rows(path, rows)


def _write_csv_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, text.getvalue().encode("utf-8"))  # no tiles.csv.part left on a full disk


# -- earlier outputs: resume with the same settings, refuse (or start afresh) with others ----------------

#: how each recorded setting is named to the user
_SETTING_NAMES = {
    "slide_bytes": "slide file size", "slide_mpp": "slide µm/px (--slide-mpp)", "mpp": "--mpp",
    "tile_px": "--tile-px", "overlap_px": "--overlap", "min_tissue": "--min-tissue",
    "tissue_method": "--tissue-method", "annotations": "--annotations (file content)",
    "label_mode": "--label-mode", "classes": "classes", "format": "--format",
}  # fmt: skip


def _settings_path(out: Path, stem: str) -> Path:
    return out / f"{stem}_tiles.settings.json"


def _earlier_patches(out: Path, stem: str) -> list[Path]:
    """Patch files of slide ``stem`` in the class folders of ``out`` (any format, ``.part`` of a kill)."""
    if not out.is_dir():
        return []
    name = re.compile(re.escape(stem) + r"_x\d+_y\d+\.(?:" + "|".join(_ENCODERS) + r")(?:\.part)?")
    return [
        path
        for folder in out.iterdir()
        if folder.is_dir() and not folder.is_symlink()
        for path in folder.glob(glob.escape(stem) + "_x*_y*.*")
        if name.fullmatch(path.name)
    ]


def _check_earlier_tiles(out: Path, stem: str, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mix patches cut with other settings into ``out`` (or, with ``overwrite``, delete them)."""
    recorded = read_settings(_settings_path(out, stem))
    keys = None
    if recorded is None:  # a folder from before settings were recorded: tiles.csv has µm/px and size
        rows = _csv_rows(out / "tiles.csv", settings["slide"])
        if not rows:
            return
        recorded = {"mpp": float(rows[0]["mpp"]), "tile_px": int(rows[0]["tile_px"])}
        keys = list(recorded)
    changes = settings_changes(recorded, settings, _SETTING_NAMES, keys)
    if not changes:
        return
    earlier = _earlier_patches(out, stem)
    if not earlier and not (out / f"{stem}_tiles.geojson").exists():
        return
    changed = "; ".join(changes)
    if not overwrite:
        raise InvalidParameterError(
            f"{out} already holds {len(earlier):,} patches of {settings['slide']} cut with other settings "
            f"({changed}); mixing them would leave old patches beside new ones: write to another folder "
            "(--out), or add --overwrite to delete them and cut the slide again"
        )
    for path in earlier:
        path.unlink(missing_ok=True)
    for folder in {path.parent for path in earlier}:
        with contextlib.suppress(OSError):  # only when empty now
            folder.rmdir()
    (out / f"{stem}_tiles.geojson").unlink(missing_ok=True)
    rows = _csv_rows(out / "tiles.csv", None)
    if rows:
        _write_csv_rows(out / "tiles.csv", [row for row in rows if row.get("slide") != settings["slide"]])
    warnings.warn(
        f"--overwrite: deleted {len(earlier):,} earlier patches of {settings['slide']} in {out}, cut with "
        f"other settings ({changed}); cutting the slide again",
        EarlierOutputsWarning,
        stacklevel=3,
    )


def _csv_rows(path: Path, slide: str | None) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [row for row in csv.DictReader(fh) if slide is None or row.get("slide") == slide]
    except (OSError, ValueError, csv.Error):
        return []
