"""Overlap-tile stitching: exact on constant fields, bounded memory, row-order releases."""

from __future__ import annotations

import numpy as np
import pytest

from napari_histo.core.stitching import OverlapStitcher, tile_weights


def _grid(shape, tile, overlap):
    stride = tile - overlap
    rows = range(0, shape[0] - tile + 1, stride)
    cols = range(0, shape[1] - tile + 1, stride)
    return [(r, c) for r in rows for c in cols]


def _stitch(stitcher, tiles):
    bands = []
    for origin, scores in tiles:
        bands += stitcher.add(origin, scores)
    bands += stitcher.finish()
    return bands


def test_overlapping_tiles_of_a_known_field_stitch_exactly():
    rng = np.random.default_rng(0)
    shape, tile, overlap, classes = (200, 260), 64, 16, 3
    field = rng.random((classes, *shape)).astype(np.float32)
    field /= field.sum(0, keepdims=True)
    stitcher = OverlapStitcher(shape, classes, tile, overlap)
    tiles = [((r, c), field[:, r : r + tile, c : c + tile]) for r, c in _grid(shape, tile, overlap)]
    bands = _stitch(stitcher, tiles)
    labels = np.concatenate([b.labels for b in bands])
    probs = np.concatenate([b.probabilities for b in bands], axis=1)
    assert labels.shape == shape
    covered_rows = max(r for r, _ in _grid(shape, tile, overlap)) + tile
    covered_cols = max(c for _, c in _grid(shape, tile, overlap)) + tile
    # every covered pixel gets back exactly the field (a weighted mean of identical values)
    np.testing.assert_allclose(probs[:, :covered_rows, :covered_cols], field[:, :covered_rows, :covered_cols],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(
        labels[:covered_rows, :covered_cols], field.argmax(0)[:covered_rows, :covered_cols]
    )
    assert (labels[covered_rows:] == -1).all()
    assert np.isnan(probs[:, covered_rows:]).all()
    assert [b.row0 for b in bands] == sorted(b.row0 for b in bands)


def test_disagreeing_tiles_are_blended_by_the_weights():
    stitcher = OverlapStitcher((64, 112), 2, 64, 16)
    left = np.zeros((2, 64, 64), np.float32)
    left[0] = 1  # class 0 everywhere
    right = np.zeros((2, 64, 64), np.float32)
    right[1] = 1  # class 1 everywhere
    bands = _stitch(stitcher, [((0, 0), left), ((0, 48), right)])
    labels = np.concatenate([b.labels for b in bands])
    assert (labels[:, :48] == 0).all()
    assert (labels[:, 64:] == 1).all()
    # in the 16-px overlap the tile whose centre is nearer wins
    assert (labels[32, 48:56] == 0).all()
    assert (labels[32, 56:64] == 1).all()


def test_memory_stays_a_band_not_the_slide():
    shape, tile, overlap = (5000, 300), 100, 20
    stitcher = OverlapStitcher(shape, 2, tile, overlap)
    peak = 0
    scores = np.ones((2, tile, tile), np.float32) / 2
    released = 0
    for origin in _grid(shape, tile, overlap):
        released += sum(len(b.labels) for b in stitcher.add(origin, scores))
        peak = max(peak, stitcher.band_rows)
    released += sum(len(b.labels) for b in stitcher.finish())
    assert released == shape[0]
    assert peak <= 2 * tile  # never the 5000 rows of the whole output


def test_out_of_order_tiles_are_refused():
    stitcher = OverlapStitcher((128, 128), 2, 64)
    stitcher.add((64, 0), np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="row order"):
        stitcher.add((0, 0), np.zeros((2, 64, 64), np.float32))


def test_weights_fade_over_the_overlap_only():
    w = tile_weights(10, 3)
    assert w[5, 5] == 1
    assert w[0, 5] == pytest.approx(0.25)
    assert (w > 0).all()
    assert (tile_weights(8, 0) == 1).all()


def test_resumed_stitch_from_a_row_matches_the_full_one():
    rng = np.random.default_rng(3)
    shape, tile, overlap = (180, 140), 60, 20
    grid = _grid(shape, tile, overlap)
    tiles = [((r, c), rng.random((2, tile, tile)).astype(np.float32)) for r, c in grid]
    full = np.concatenate([b.labels for b in _stitch(OverlapStitcher(shape, 2, tile, overlap), tiles)])
    resume_at = 70  # rows < 70 were written before the run was killed
    needed = [(o, s) for o, s in tiles if o[0] + tile > resume_at]
    bands = _stitch(OverlapStitcher(shape, 2, tile, overlap, start_row=resume_at), needed)
    assert bands[0].row0 == resume_at
    np.testing.assert_array_equal(np.concatenate([b.labels for b in bands]), full[resume_at:])


def _regions(shape, n_classes, rng):
    """A label image that is constant on rectangular regions, with borders at odd places."""
    truth = np.zeros(shape, np.int64)
    for _ in range(12):
        r0, c0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r1, c1 = r0 + rng.integers(5, shape[0]), c0 + rng.integers(5, shape[1])
        truth[r0:r1, c0:c1] = rng.integers(0, n_classes)
    return truth


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "slide_mpp"),
    [
        ((256, 320), 64, 16, 1.0),  # a multiple of the stride
        ((203, 271), 64, 16, 1.0),  # not a multiple: partial tiles at the right and bottom
        ((150, 97), 48, 0, 1.0),  # no overlap
        ((610, 437), 40, 8, 0.5),  # level-0 twice as fine as the output, odd size
    ],
)
def test_identity_model_stitches_seamlessly_to_the_slide_edges(shape, tile, overlap, slide_mpp):
    from napari_histo.core.tiling import plan_tile_grid
    from napari_histo.models.segmentation import cover_edges, output_shape

    rng = np.random.default_rng(sum(shape))
    classes = 4
    grid = plan_tile_grid(shape, slide_mpp, 1.0, tile, overlap)
    out_shape = output_shape(grid)
    truth = _regions(out_shape, classes, rng)
    one_hot = np.eye(classes, dtype=np.float32)[truth].transpose(2, 0, 1)
    read_grid, origins = cover_edges(grid)
    assert len(read_grid) == len(origins) >= len(grid)
    assert (origins >= 0).all() and (origins + tile <= np.array(out_shape)).all()
    order = np.lexsort((origins[:, 1], origins[:, 0]))
    stitcher = OverlapStitcher(out_shape, classes, tile, overlap)
    # the "model" returns the truth of the tile it sees: any seam or gap shows up as a mismatch
    tiles = [((r, c), one_hot[:, r : r + tile, c : c + tile]) for r, c in origins[order]]
    bands = _stitch(stitcher, tiles)
    labels = np.concatenate([b.labels for b in bands])
    assert labels.shape == out_shape
    assert (labels >= 0).all(), f"{(labels < 0).mean():.1%} of the output unfilled"
    np.testing.assert_array_equal(labels, truth)
    probs = np.concatenate([b.probabilities for b in bands], axis=1)
    np.testing.assert_allclose(probs, one_hot, atol=1e-6)
