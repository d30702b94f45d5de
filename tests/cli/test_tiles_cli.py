import csv
import json

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner

from napari_histo.cli.main import cli
from napari_histo.data.synthetic import write_synthetic_slide


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    return write_synthetic_slide(tmp_path_factory.mktemp("slide") / "s.ome.tif", shape_rc=(2048, 3072))


def test_tiles_command_writes_patches_csv_geojson(slide_path, tmp_path):
    out = tmp_path / "out"
    args = [
        "tiles",
        str(slide_path),
        "--mpp",
        "1.0",
        "--tile-px",
        "128",
        "--min-tissue",
        "0.5",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "tiles.csv").read_text().splitlines()))
    assert rows and all(float(r["tissue_fraction"]) >= 0.5 for r in rows)
    patch = imagecodecs.imread(out / rows[0]["path"])
    assert patch.shape == (128, 128, 3)
    assert len(json.loads((out / "s_tiles.geojson").read_text())["features"]) == len(rows)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and len(
        list(csv.DictReader((out / "tiles.csv").read_text().splitlines()))
    ) == len(rows)


def test_annotations_label_tiles(slide_path, tmp_path):
    pytest.importorskip("qupath_bridge").__dict__.get("read_geojson") or pytest.skip("no read_geojson yet")
    ann = tmp_path / "a.geojson"
    square = [[0, 0], [1536, 0], [1536, 2048], [0, 2048], [0, 0]]
    ann.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
    }]}))  # fmt: skip
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["tiles", str(slide_path), "--mpp", "1", "--tile-px", "128", "--min-tissue", "0",
              "--annotations", str(ann), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "tiles.csv").read_text().splitlines()))
    assert rows and {r["label"] for r in rows} == {"Tumor"}
    assert all(int(r["x"]) + 128 <= 1536 + 128 for r in rows)
    assert (out / "Tumor").is_dir()


def test_slide_without_mpp_asks_for_slide_mpp(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(imagecodecs.png_encode(np.full((300, 300, 3), 200, np.uint8)))
    result = CliRunner().invoke(cli, ["tiles", str(path), "--mpp", "0.5", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "--slide-mpp" in str(result.exception)


def test_mpp_or_magnification_required(slide_path, tmp_path):
    result = CliRunner().invoke(cli, ["tiles", str(slide_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--mpp" in result.output


def test_tile_larger_than_slide_is_explained_in_one_line(slide_path, tmp_path, capsys):
    from napari_histo.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["tiles", str(slide_path), "--mpp", "0.5", "--tile-px", "4096", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 3  # the slide is too small for the tile: an input problem
    err = capsys.readouterr().err
    assert "smaller than one tile" in err and "--tile-px" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_tile_kept_still_writes_empty_outputs(tmp_path):
    path = tmp_path / "blank.png"  # glass only: no tissue anywhere
    path.write_bytes(imagecodecs.png_encode(np.full((600, 600, 3), 235, np.uint8)))
    out = tmp_path / "new" / "out"
    with pytest.warns(UserWarning, match="blank.png"):  # the brightfield check: no tissue to read
        result = CliRunner().invoke(
            cli,
            ["tiles", str(path), "--slide-mpp", "0.5", "--mpp", "0.5", "--tile-px", "128", "--out", str(out)],
        )
    assert result.exit_code == 0, result.output
    assert "0 of 16 tiles kept" in result.output
    assert (out / "tiles.csv").read_text().strip() == "slide,x,y,level,mpp,tile_px,label,tissue_fraction,path"
    assert json.loads((out / "blank_tiles.geojson").read_text())["features"] == []
