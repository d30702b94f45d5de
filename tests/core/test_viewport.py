"""Tiles in view, centre first, skipping done ones."""

from __future__ import annotations

import numpy as np

from napari_histo.core.tiling import plan_tile_grid
from napari_histo.core.viewport import tiles_in_view, view_order


def test_tiles_in_view_and_centre_first_order():
    grid = plan_tile_grid((1000, 1000), 0.5, 0.5, 100)  # 10 x 10 tiles of 100 px
    view = (250.0, 250.0, 450.0, 450.0)  # touches tile rows/cols 2, 3 and 4
    inside = tiles_in_view(grid, view)
    assert sorted(inside.tolist()) == [r * 10 + c for r in (2, 3, 4) for c in (2, 3, 4)]
    order = view_order(grid, view)
    assert order[0] == 33  # the tile holding the view's centre (350, 350)
    assert set(order[-4:].tolist()) == {22, 24, 42, 44}  # corners last
    done = np.zeros(len(grid), bool)
    done[[33, 34]] = True
    assert 33 not in view_order(grid, view, done)
    assert len(view_order(grid, view, done)) == 7
    assert len(view_order(grid, (5000.0, 5000.0, 6000.0, 6000.0))) == 0


def test_tiles_whose_centre_is_in_a_drawn_polygon():
    from napari_histo.core.viewport import tiles_in_polygons

    grid = plan_tile_grid((1000, 1000), 0.5, 0.5, 100)
    triangle = np.array([[0, 0], [0, 1000], [1000, 0]], float)  # upper-left half, (row, col)
    inside = tiles_in_polygons(grid, [triangle])
    centres = grid.origins_rc[inside] + 50
    assert (centres.sum(axis=1) <= 1000).all()
    assert len(inside) == 55  # tiles on or above the anti-diagonal (boundary counts as inside)
    assert len(tiles_in_polygons(grid, [])) == 0
