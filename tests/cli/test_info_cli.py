"""`histo info` prints levels, µm/px and associated images, as text or JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli, main


def test_info_text_on_real_slide():
    path = shared_file("wsi", "CMU-1-Small-Region.svs")
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "aperio-svs" in result.output
    assert "0.4990 µm/px (Aperio ImageDescription MPP)" in result.output
    assert "2,220 x 2,967" in result.output
    assert "240x240" in result.output
    assert "label (387x463)" in result.output


def test_info_json_reports_missing_mpp():
    path = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["mpp"] is None
    assert [level["compression"] for level in record["levels"]] == ["APERIO_JP2000_RGB"] * 2
    assert record["associated_images"] == {"thumbnail": [768, 956, 3]}


def test_info_on_bad_file_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "broken.svs"
    bad.write_text("garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(bad)])
    assert exit_info.value.code == 3  # a bad input file
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "broken.svs: not a TIFF" in err
    assert "Traceback" not in err


def test_console_script_help_is_fast_and_loads_no_torch():
    code = "import sys; from napari_histo.cli.main import main; main(['--help'])"
    probe = code + "\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert "histo info slide.svs" in result.stdout
    check = subprocess.run(
        [sys.executable, "-c", "import sys; import napari_histo.cli.main; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert check.stdout.strip() == "False"


def test_info_text_names_the_stored_pixel_layout(tmp_path):
    import numpy as np
    import tifffile

    path = tmp_path / "rgba.tif"
    rgba = np.full((64, 64, 4), 200, np.uint8)
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    with pytest.warns(UserWarning, match="stores RGBA 8-bit pixels"):
        result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "  pixels         RGBA 8-bit" in result.output.splitlines()
    real = CliRunner().invoke(cli, ["info", str(shared_file("wsi", "CMU-1-Small-Region.svs"))])
    assert "  pixels         RGB 8-bit" in real.output.splitlines()
