import numpy as np
import pytest

from napari_histo.core.tile_labels import AnnotationRegion, TileLabelRule, label_tiles
from napari_histo.core.tiling import (
    mpp_from_magnification,
    plan_tile_grid,
    resize_tile,
    select_tiles,
    tile_mask_fraction,
)
from napari_histo.errors import MissingMppError


def test_grid_geometry_at_target_mpp():
    grid = plan_tile_grid((1000, 2000), 0.25, 0.5, 100, 0, (1.0, 4.0, 16.0))
    # 100 px at 0.5 µm/px = 200 level-0 px at 0.25 µm/px
    assert grid.tile_px_level0 == 200
    assert len(grid) == 5 * 10
    assert grid.level == 0 and grid.read_px == 200
    assert grid.origins_rc[:, 0].max() + 200 <= 1000
    assert grid.origins_rc[:, 1].max() + 200 <= 2000


def test_level_nearest_target_not_coarser():
    grid = plan_tile_grid((4096, 4096), 0.25, 2.0, 128, 0, (1.0, 4.0, 16.0))
    # scale 8: level 1 (ds 4) is read at 256 px and resized to 128
    assert (grid.level, grid.level_downsample, grid.read_px) == (1, 4.0, 256)


def test_overlap_shrinks_stride():
    plain = plan_tile_grid((1000, 1000), 0.5, 0.5, 100)
    overlapping = plan_tile_grid((1000, 1000), 0.5, 0.5, 100, 50)
    assert len(plain) == 100
    assert len(overlapping) == 19 * 19
    assert overlapping.stride_px_level0 == 50


def test_missing_mpp_says_what_to_pass():
    with pytest.raises(MissingMppError, match="--slide-mpp"):
        plan_tile_grid((1000, 1000), None, 0.5, 224)


@pytest.mark.parametrize(("tile_px", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes(tile_px, overlap):
    with pytest.raises(ValueError, match="tile_px"):
        plan_tile_grid((100, 100), 0.5, 0.5, tile_px, overlap)


def test_magnification():
    assert mpp_from_magnification(20) == 0.5
    assert mpp_from_magnification(40) == 0.25


def test_mask_fraction_and_selection():
    grid = plan_tile_grid((400, 400), 1.0, 1.0, 100)
    mask = np.zeros((40, 40), bool)  # downsample 10
    mask[:10, :10] = True  # tile (0, 0) full
    mask[10:15, 10:20] = True  # tile (1, 1) half
    frac = tile_mask_fraction(grid, mask)
    by_origin = {tuple(o): f for o, f in zip(grid.origins_rc.tolist(), frac)}
    assert by_origin[(0, 0)] == pytest.approx(1.0)
    assert by_origin[(100, 100)] == pytest.approx(0.5)
    assert by_origin[(300, 300)] == 0.0
    kept = select_tiles(grid, frac >= 0.5)
    assert sorted(map(tuple, kept.origins_rc.tolist())) == [(0, 0), (100, 100)]


def test_resize_tile():
    pixels = np.zeros((256, 256, 3), np.uint8)
    pixels[:128] = 200
    out = resize_tile(pixels, 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert out[10, 10, 0] == 200 and out[120, 10, 0] == 0
    assert resize_tile(out, 128) is out


def test_labels_centre_and_majority_with_hole():
    grid = plan_tile_grid((300, 300), 1.0, 1.0, 100)
    square = np.array([[0, 0], [0, 300], [300, 300], [300, 0]], float)  # (row, col)
    hole = np.array([[100, 100], [100, 200], [200, 200], [200, 100]], float)
    small = np.array([[0, 0], [0, 60], [60, 60], [60, 0]], float)  # covers 36% of tile (0, 0)
    regions = [AnnotationRegion("stroma", square, (hole,)), AnnotationRegion("tumour", small)]
    codes, names = label_tiles(grid, regions, TileLabelRule.CENTRE)
    assert names == ("stroma", "tumour")
    by_origin = {tuple(o): c for o, c in zip(grid.origins_rc.tolist(), codes)}
    assert by_origin[(100, 100)] == -1  # centre in the hole
    assert by_origin[(0, 0)] == 1  # centre (50, 50) is in both squares: the later one wins
    assert by_origin[(0, 100)] == 0
    codes, _ = label_tiles(grid, regions, TileLabelRule.MAJORITY)
    by_origin = {tuple(o): c for o, c in zip(grid.origins_rc.tolist(), codes)}
    assert by_origin[(0, 0)] == 0  # 64 % stroma, 36 % tumour
    assert by_origin[(100, 100)] == -1
    assert by_origin[(200, 200)] == 0
    # a tile 30 % covered by one class is mostly unannotated: no label
    sliver = np.array([[0, 0], [0, 30], [100, 30], [100, 0]], float)
    codes, _ = label_tiles(grid, [AnnotationRegion("tumour", sliver)], "majority")
    assert codes.tolist() == [-1] * len(grid)
    codes, _ = label_tiles(grid, [AnnotationRegion("tumour", sliver * [1, 2])], "majority")
    assert codes[0] == 0
