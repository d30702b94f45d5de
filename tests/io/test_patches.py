import csv
import json

import imagecodecs
import numpy as np
import pytest
from conftest import shared_file

from napari_histo.core.tiling import TileGrid
from napari_histo.errors import MissingMppError
from napari_histo.io import open_slide
from napari_histo.io.annotations import regions_from_objects
from napari_histo.io.patches import iter_tiles, plan_slide_grid, read_tile, slide_tissue_mask, tissue_tiles
from napari_histo.io.synthetic import write_synthetic_slide
from napari_histo.io.tile_export import export_tiles


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    return write_synthetic_slide(tmp_path_factory.mktemp("slide") / "s.ome.tif", shape_rc=(2048, 3072))


def test_mask_grid_and_tiles(slide_path):
    with open_slide(slide_path) as slide:
        mask = slide_tissue_mask(slide)
        # 8 µm/px on a 0.5 µm/px slide: level 2 (x16) read directly
        assert mask.level == 2 and mask.downsample_rc == (16.0, 16.0)
        assert 0.05 < mask.mask.mean() < 0.95
        grid = plan_slide_grid(slide, 1.0, 128)
        assert isinstance(grid, TileGrid) and grid.tile_px_level0 == 256
        kept, fractions = tissue_tiles(grid, mask, 0.5)
        assert 0 < len(kept) < len(grid) and fractions.min() >= 0.5
        tile = read_tile(slide, kept, 0)
        assert tile.shape == (128, 128, 3) and tile.dtype == np.uint8
        # tissue tiles are darker than background tiles
        empty = [i for i, f in enumerate(np.asarray(tissue_tiles(grid, mask, 0)[1])) if f == 0]
        assert read_tile(slide, grid, empty[0]).mean() > tile.mean() + 10
        threaded = [t for _, t in iter_tiles(slide, kept, range(4), workers=3)]
        np.testing.assert_array_equal(threaded[0], tile)


def test_tiles_match_level0_resized(slide_path):
    with open_slide(slide_path) as slide:
        grid = plan_slide_grid(slide, 2.0, 64)  # x4 -> read from level 1 (x4) at 64 px
        assert grid.level == 1 and grid.read_px == 64
        i = len(grid) // 2
        r, c = grid.origins_rc[i]
        level0 = slide.read_region((int(r), int(c)), 0, (256, 256)).astype(float)
        coarse = level0.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
        assert np.abs(read_tile(slide, grid, i) - coarse).mean() < 6


def test_missing_mpp_names_the_option(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(imagecodecs.png_encode(np.full((300, 300, 3), 200, np.uint8)))
    with open_slide(path) as slide, pytest.raises(MissingMppError, match="--slide-mpp"):
        plan_slide_grid(slide, 0.5, 64)
    with open_slide(path) as slide:
        assert len(plan_slide_grid(slide, 0.5, 64, slide_mpp=0.25)) == 4


def test_export_writes_and_resumes(slide_path, tmp_path):
    out = tmp_path / "out"
    with open_slide(slide_path) as slide:
        grid, fractions = tissue_tiles(plan_slide_grid(slide, 1.0, 128), slide_tissue_mask(slide), 0.5)
        labels = ["a" if i % 2 else "b" for i in range(len(grid))]
        progress = list(export_tiles(slide, grid, out, fractions=fractions, labels=labels))
        assert progress[-1] == len(grid)
        first = sorted(out.glob("*/*.png"))
        assert len(first) == len(grid)
        stamp = first[0].stat().st_mtime_ns
        again = list(export_tiles(slide, grid, out, fractions=fractions, labels=labels))
        assert again == [len(grid)]  # everything skipped
        assert first[0].stat().st_mtime_ns == stamp
    rows = list(csv.DictReader((out / "tiles.csv").read_text().splitlines()))
    assert len(rows) == len(grid)
    assert set(rows[0]) >= {"slide", "x", "y", "level", "mpp", "label", "tissue_fraction"}
    assert (out / rows[0]["path"]).exists()
    collection = json.loads((out / "s_tiles.geojson").read_text())
    feature = collection["features"][0]
    assert collection["type"] == "FeatureCollection" and feature["properties"]["objectType"] == "tile"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    xs, ys = zip(*ring)
    assert (min(xs), min(ys)) == (float(rows[0]["x"]), float(rows[0]["y"]))
    assert max(xs) - min(xs) == max(ys) - min(ys) == 256  # 128 px at 1 µm/px on a 0.5 µm/px slide
    assert feature["properties"]["classification"]["name"] == rows[0]["label"]
    assert "color" in feature["properties"]["classification"]


def test_regions_from_real_qupath_export():
    path = shared_file("qupath_geojson", "qp05_dlup_qupath05.geojson")
    regions = regions_from_objects(json.loads(path.read_text()))
    assert regions and all(r.exterior_rc.shape[1] == 2 for r in regions)


def test_fit_stain_on_slide_and_json_file(slide_path, tmp_path):
    from napari_histo.core.stain import normalize_stain
    from napari_histo.io.slide_stain import fit_stain_on_slide, load_stain_params, save_stain_params

    with open_slide(slide_path) as slide:
        source = fit_stain_on_slide(slide, "macenko")
        tile = read_tile(slide, plan_slide_grid(slide, 0.5, 128), 40)
    # the synthetic slide is coloured with Ruifrok & Johnston's H&E vectors
    ruifrok = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    ruifrok /= np.linalg.norm(ruifrok, axis=1, keepdims=True)
    assert np.sum(source.stain_matrix * ruifrok, axis=1).min() > 0.95
    path = save_stain_params(source, tmp_path / "stain.json")
    loaded = load_stain_params(path)
    np.testing.assert_array_equal(loaded.stain_matrix, source.stain_matrix)
    np.testing.assert_array_equal(
        normalize_stain(tile, source, source=loaded), normalize_stain(tile, source, source=source)
    )
    (tmp_path / "bad.json").write_text('{"format": "napari-histo/stain-params", "method": "macenko"}')
    with pytest.raises(ValueError, match=r"bad\.json.*stain_matrix"):
        load_stain_params(tmp_path / "bad.json")


def test_annotations_without_bridge_say_what_to_do(monkeypatch, tmp_path):
    import sys
    import types

    from napari_histo.errors import MissingDependencyError
    from napari_histo.io.annotations import read_annotation_regions

    monkeypatch.setitem(sys.modules, "qupath_bridge", types.ModuleType("qupath_bridge"))
    with pytest.raises(MissingDependencyError, match="without --annotations"):
        read_annotation_regions(tmp_path / "a.geojson")


def test_slide_stem_keeps_inner_dots():
    from pathlib import Path

    from napari_histo.io.tile_export import slide_stem

    assert slide_stem(Path("/x/case.1.ome.tiff")) == "case.1"
    assert slide_stem(Path("CMU-1.svs")) == "CMU-1"
