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
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_histo.core.tiling import TileGrid, select_tiles
from napari_histo.core.viewport import tiles_in_polygons, tiles_in_view
from napari_histo.errors import NoTissueError
from napari_histo.models.engine import InferenceConfig, InferenceProgress, TilePredictions, predict_tiles
from napari_histo.pipeline.model import ModelHandle
from napari_histo.pipeline.session import SlideSession
from napari_histo.pipeline.tissue import model_tissue_grid

__all__ = ["Region", "plan_live", "predict_grid", "predict_in_order", "predict_slide"]

Prediction = Generator[InferenceProgress, None, TilePredictions]


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
    return (
        yield from predict_tiles(
            session.slide,
            model.spec,
            grid,
            model.network(),
            config=config,
            store_path=store_path,
            stain=stain,
        )
    )


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
