"""``histo cohort``: a folder of slides, serially and on 2 local Dask workers; one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import shared_file

from napari_histo.cli.main import cli, main


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three slides: two copies of CMU-1-Small-Region.svs and a truncated one."""
    data = shared_file("wsi", "CMU-1-Small-Region.svs").read_bytes()
    folder = tmp_path_factory.mktemp("cohort")
    (folder / "a.svs").write_bytes(data)
    (folder / "b.svs").write_bytes(data)
    (folder / "c.svs").write_bytes(data[:400_000])
    (folder / "notes.txt").write_text("not a slide")
    return folder


def histo(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from napari_histo.cli.main import main; sys.argv[0] = 'histo'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["cohort", "--help"])
    assert result.exit_code == 0
    assert "histo cohort predict" in result.output and "--jobqueue slurm" in result.output
    assert "histo cohort" in CliRunner().invoke(cli, ["--help"]).output


def test_serial_tiles_report_failed_slide_then_rerun_skips(cohort, tmp_path):
    out = tmp_path / "out"
    args = ["cohort", "tiles", str(cohort), "--mpp", "2", "--tile-px", "64", "--out", str(out), "--serial"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert "3 slides: 2 done, 0 skipped, 1 failed" in result.output and "slides/s" in result.output
    assert "failed: " in result.output and "c.svs" in result.output
    report = (out / "cohort.csv").read_text().splitlines()
    rows = {r["slide"].rsplit("/", 1)[-1]: r for r in csv.DictReader(report)}
    assert [rows[n]["status"] for n in ("a.svs", "b.svs", "c.svs")] == ["done", "done", "failed"]
    assert (out / "a" / "tiles.csv").exists() and (out / "a.tiles.json").exists()
    again = CliRunner().invoke(cli, args)
    assert "3 slides: 0 done, 2 skipped, 1 failed" in again.output


def test_info_on_two_local_workers(cohort, tmp_path):
    out = tmp_path / "info"
    result = histo("cohort", "info", str(cohort), "--out", str(out), "--workers", "2", "--no-dashboard")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Dask workers: 2" in result.stdout
    assert "3 slides: 2 done, 0 skipped, 1 failed" in result.stdout
    info = json.loads((out / "a.info.json").read_text())["info"]
    assert info["dimensions_rc"] == [2967, 2220]
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and "c.svs: the file is truncated" in failed[0]
    assert "Traceback" not in result.stdout  # (distributed may log a heartbeat at shutdown on stderr)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["cohort", "predict", "COHORT", "--out", "r"], 2, "needs --model"),
        (["cohort", "tiles", "COHORT", "--out", "r"], 2, "needs --mpp"),
        (["cohort", "info", "COHORT", "--out", "r", "--jobqueue-option", "cores"], 2, "expected key=value"),
        (["cohort", "info", "COHORT", "--out", "r", "--jobqueue-option", "cores=8"], 2, "needs --jobqueue"),
        (["cohort", "info", "nowhere/", "--out", "r", "--serial"], 3, "nowhere/: not found"),
        (["cohort", "info", "nowhere/*.svs", "--out", "r", "--serial"], 3, "matches no file"),
        (["cohort", "tiles", "COHORT", "--out", "r", "--mpp", "0"], 2, "--mpp"),
    ],
)
def test_bad_arguments_are_one_line(cohort, tmp_path, capsys, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    args = [str(cohort) if a == "COHORT" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serial_predict_writes_ome_zarr_per_slide(tmp_path):
    """``histo cohort predict --ome-zarr``: each slide's maps also as OME-NGFF (read by ome-zarr)."""
    pytest.importorskip("torch")
    ome_io = pytest.importorskip("ome_zarr.io")
    from ome_zarr.reader import Reader

    folder = tmp_path / "slides"
    folder.mkdir()
    (folder / "a.svs").write_bytes(shared_file("wsi", "CMU-1-Small-Region.svs").read_bytes())
    out = tmp_path / "out"
    args = ["cohort", "predict", str(folder), "--model", "pcam-mobilenetv2", "--out", str(out), "--serial",
            "--device", "cpu", "--ome-zarr"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    store = out / "a.ome.zarr"
    assert (out / "a.zarr").is_dir() and store.is_dir()
    nodes = list(Reader(ome_io.parse_url(str(store)))())
    image = nodes[0].metadata
    assert [a["name"] for a in image["axes"]] == ["c", "y", "x"] and image["channel_names"] == [
        "normal",
        "tumour",
    ]
    assert image["coordinateTransformations"][0][0]["scale"][1:] == [96.0, 96.0]  # one pixel per tile, in µm
    labels = next(n for n in nodes if n.metadata.get("name") == "classes")
    assert set(labels.metadata["color"]) == {1, 2}  # class index + 1, 0 = not predicted
    assert labels.data[0].shape == nodes[0].data[0].shape[1:]
