"""Predict a slide, a region of it, or an ordered list of its tiles (live) with a model.

Each verb is a generator: it yields
:class:`~napari_histo.models.engine.InferenceProgress` per batch and returns
:class:`~napari_histo.models.engine.TilePredictions` (see
:mod:`napari_histo.core.progress`).  The network is loaded by the
:class:`~napari_histo.pipeline.model.ModelHandle` on first use, inside the
verb, so callers in napari run it in a worker thread.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_histo.core.brightfield import BrightfieldCheck, check_brightfield
from napari_histo.core.tiling import TileGrid, select_tiles
from napari_histo.core.viewport import tiles_in_polygons, tiles_in_view
from napari_histo.errors import NoTissueError
from napari_histo.io.slide import Slide, SlideDamageWarning, SlideWarning
from napari_histo.models.engine import InferenceConfig, InferenceProgress, TilePredictions, predict_tiles
from napari_histo.models.segmentation import SegmentationResult
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tissue import model_tissue_grid, plan_grid, slide_tissue_mask, tissue_tiles

__all__ = [
    "NotBrightfieldWarning",
    "Region",
    "plan_live",
    "predict_grid",
    "predict_in_order",
    "predict_slide",
    "segment_slide",
    "segmentation_areas_text",
    "warn_if_not_brightfield",
    "write_segmentation_geojson",
]

Prediction = Generator[InferenceProgress, None, TilePredictions]


class NotBrightfieldWarning(SlideWarning):
    """A slide does not look like a brightfield (H&E) scan: fluorescence, grayscale, blank ..."""


_CHECKED: weakref.WeakKeyDictionary[Slide, BrightfieldCheck] = weakref.WeakKeyDictionary()
_CHECKED_LOCK = threading.Lock()


def warn_if_not_brightfield(session: SlideSession) -> BrightfieldCheck:
    """Warn once per open slide when its thumbnail does not look like brightfield H&E; returns the check.

    A warning, never an error: a model may still be meant for such a slide.
    """
    slide = session.slide
    with _CHECKED_LOCK:
        known = _CHECKED.get(slide)
    if known is not None:
        return known
    result = check_brightfield(slide.thumbnail(512))
    with _CHECKED_LOCK:
        first = slide not in _CHECKED
        _CHECKED[slide] = result
    if first and not result.ok:
        warnings.warn(
            f"{session.name}: {result.reason}. Check that this is the slide you meant: models made for "
            "brightfield H&E slides give meaningless results on it.",
            NotBrightfieldWarning,
            stacklevel=2,
        )
    return result


_FILLED: weakref.WeakKeyDictionary[Slide, int] = weakref.WeakKeyDictionary()


def warn_about_filled_tiles(session: SlideSession) -> None:
    """One warning naming how many damaged tiles were read as background (``on_error="fill"``).

    Warns again for the same slide only when more tiles were filled since.
    """
    filled = session.slide.filled_tiles
    with _CHECKED_LOCK:
        new = filled > _FILLED.get(session.slide, 0)
        _FILLED[session.slide] = filled
    if new:
        tiles = (
            "1 damaged or missing tile was" if filled == 1 else f"{filled:,} damaged or missing tiles were"
        )
        warnings.warn(
            f"{session.name}: {tiles} read as background (white); predictions there are not meaningful. "
            "Copy the slide again for complete results.",
            SlideDamageWarning,
            stacklevel=2,
        )


@dataclass(frozen=True)
class Region:
    """Part of a slide in level-0 (row, col) pixels: a box, or polygons (tiles with their centre inside)."""

    box_rc: tuple[float, float, float, float] | None = None
    polygons_rc: tuple[np.ndarray, ...] = ()

    @classmethod
    def box(cls, r0: float, c0: float, r1: float, c1: float) -> Region:
        return cls(box_rc=(r0, c0, r1, c1))

    @classmethod
    def polygons(cls, polygons_rc: Sequence[np.ndarray]) -> Region:
        return cls(polygons_rc=tuple(np.asarray(p, float) for p in polygons_rc))

    def select(self, grid: TileGrid) -> TileGrid:
        """The tiles of ``grid`` in this region."""
        if self.box_rc is not None:
            return select_tiles(grid, tiles_in_view(grid, self.box_rc))
        return select_tiles(grid, tiles_in_polygons(grid, list(self.polygons_rc)))


def predict_slide(
    session: SlideSession,
    model: ModelHandle,
    *,
    min_tissue: float = 0.5,
    region: Region | None = None,
    config: InferenceConfig | None = None,
    store_path: str | os.PathLike[str] | None = None,
    stain: Any = None,
) -> Prediction:
    """Classify the tissue tiles of the slide (or of ``region``) at the model's µm/px and patch size.

    ``store_path`` streams results into a resumable ``.zarr``; ``stain`` is a
    fitted :func:`~napari_histo.pipeline.stain.stain_normalizer`.

    Raises
    ------
    NoTissueError
        When no tile with enough tissue lies in the slide or the region.
    """
    warn_if_not_brightfield(session)
    grid, _ = model_tissue_grid(session, model, min_tissue)
    if region is not None:
        grid = region.select(grid)
        if len(grid) == 0:
            raise NoTissueError(
                f"{session.name}: no tile with at least {min_tissue:.0%} tissue in the chosen region; pan or "
                "draw over tissue, or lower the minimum tissue fraction"
            )
    return (yield from predict_grid(session, model, grid, config=config, store_path=store_path, stain=stain))


def predict_grid(
    session: SlideSession,
    model: ModelHandle,
    grid: TileGrid,
    *,
    config: InferenceConfig | None = None,
    store_path: str | os.PathLike[str] | None = None,
    stain: Any = None,
) -> Prediction:
    """Classify the tiles of an already planned ``grid`` (e.g. the tiles of an earlier prediction)."""
    config = config or InferenceConfig(device=model.device)
    warn_if_not_brightfield(session)
    result = yield from predict_tiles(
        session.slide,
        model.spec,
        grid,
        model.network(),
        config=config,
        store_path=store_path,
        stain=stain,
    )
    warn_about_filled_tiles(session)
    return result


def segment_slide(
    session: SlideSession,
    model: ModelHandle,
    store_path: str | os.PathLike[str],
    *,
    min_tissue: float = 0.5,
    config: InferenceConfig | None = None,
) -> Generator[InferenceProgress, None, tuple[SegmentationResult, TileGrid, np.ndarray]]:
    """Segment the tissue tiles of the slide with a segmentation model and stitch the labels into a zarr.

    Tiles overlap by 1/8 of their edge; returns the
    :class:`~napari_histo.models.segmentation.SegmentationResult`, the tissue grid and
    its tissue fractions.

    Raises
    ------
    NoTissueError
        When no tile with enough tissue lies in the slide.
    """
    from napari_histo.models.segmentation import predict_segmentation

    config = config or InferenceConfig(device=model.device)
    warn_if_not_brightfield(session)
    spec = model.spec
    grid = plan_grid(session, spec.spacing_um_px, spec.patch_size_pixels, spec.patch_size_pixels // 8)
    if len(grid) == 0:  # the same refusal as a classifier's
        model_tissue_grid(session, model, min_tissue)
    session.slide.reserve_tile_rows(grid.level)
    grid, fractions = tissue_tiles(grid, slide_tissue_mask(session), min_tissue)
    if len(grid) == 0:
        raise NoTissueError(
            f"{session.name}: no tile of {spec.patch_size_pixels} px at {spec.spacing_um_px:g} µm/px has at "
            f"least {min_tissue:.0%} tissue. The slide may be blank or the tissue faint; lower the minimum "
            "tissue fraction (--min-tissue 0.1) or check the slide."
        )
    result = yield from predict_segmentation(session.slide, spec, grid, model.network(), store_path,
                                             config=config)  # fmt: skip
    warn_about_filled_tiles(session)
    return result, grid, fractions


def segmentation_areas_text(classes: Mapping[str, Mapping[str, Any]]) -> str:
    """``"tumour 0.42 mm², stroma 1.10 mm²"``: the ``classes`` of a segmentation summary in one line."""
    return ", ".join(f"{name} {c['area_mm2']:.2f} mm²" for name, c in classes.items())


def write_segmentation_geojson(
    mask_path: str | os.PathLike[str], path: str | os.PathLike[str], slide_mpp: float
) -> int:
    """The class regions of a stitched mask (:func:`segment_slide`) as QuPath annotations; returns the count.

    One (multi)polygon annotation per class present, traced along the mask's pixel
    edges and scaled to level-0 pixels (``slide_mpp``: the slide's level-0 µm/px),
    in the class's name and colour.
    """
    import zarr

    import qupath_bridge as qb

    group: Any = zarr.open_group(str(mask_path), mode="r")
    names = list(group.attrs["class_names"])
    colors = [tuple(c) for c in group.attrs["spec"]["class_colors"]]
    labels = np.asarray(group["labels"])
    shown = (labels + 1).astype(np.uint8 if len(names) < 255 else np.int32)  # -1 (not segmented) -> 0
    objects = qb.labels_to_objects(shown, downsample=float(group.attrs["mpp"]) / slide_mpp,
                                   object_type=qb.ObjectType.ANNOTATION, class_names=names,
                                   class_colors=dict(zip(names, colors)))  # fmt: skip
    qb.write_geojson(objects, path)
    return len(objects)


def predict_in_order(
    session: SlideSession,
    model: ModelHandle,
    grid: TileGrid,
    order: np.ndarray,
    *,
    config: InferenceConfig | None = None,
) -> Generator[InferenceProgress, None, int]:
    """Predict the tiles ``order`` (indices into ``grid``) in that order, for live views.

    Each progress item's ``batch_indices`` are indices into ``grid`` (not into
    ``order``), with their ``batch_probabilities``.  Returns the number of tiles predicted.
    """
    order = np.asarray(order, dtype=np.int64)
    done = 0
    work = predict_grid(session, model, select_tiles(grid, order), config=config)
    for item in work:
        indices = order[item.batch_indices] if item.batch_indices is not None else None
        done = item.done
        yield InferenceProgress(item.done, item.total, elapsed_s=item.elapsed_s, batch_indices=indices,
                                batch_probabilities=item.batch_probabilities)  # fmt: skip
    return done


def plan_live(session: SlideSession, model: ModelHandle, min_tissue: float = 0.5) -> TileGrid:
    """Load the network and plan the tissue grid that live prediction of the view walks through."""
    model.network()
    grid, _ = model_tissue_grid(session, model, min_tissue)
    return grid
