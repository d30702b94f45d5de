"""``histo tiles`` and ``histo predict`` killed mid-run (SIGKILL), then run again: identical outputs.

Also: Ctrl+C (SIGINT) ends a run with one line and exit code 130, and a run that
filled the disk resumes once there is space again.  On the real CMU-1 slide
(skipped when ../shared/data is absent).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

TILES = ["tiles", "--mpp", "0.5", "--tile-px", "96", "--min-tissue", "0"]
PREDICT = ["predict", "--model", "pcam-mobilenetv2", "--batch-size", "8", "--workers", "2", "--device", "cpu"]


def histo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-m", "napari_histo.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def stop_when(args: list[str], cwd: Path, ready: Callable[[], bool], sig: int) -> tuple[int, str]:
    """Start ``histo ARGS``, send ``sig`` once ``ready()``; returns its exit code and stderr."""
    with subprocess.Popen(
        [sys.executable, "-m", "napari_histo.cli.main", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        deadline = time.monotonic() + 300
        while not ready():
            assert child.poll() is None, f"ended before it was stopped: {child.communicate()}"
            assert time.monotonic() < deadline, "never got far enough to be stopped"
            time.sleep(0.02)
        child.send_signal(sig)
        _, err = child.communicate(timeout=120)
    return child.returncode, err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def count_png(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.png")) if folder.is_dir() else 0


@pytest.mark.slow
def test_tiles_killed_then_resumed_gives_identical_outputs(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    reference = histo(*TILES, str(slide), "--out", "ref", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    killed, _ = stop_when([*TILES, str(slide), "--out", "run"], tmp_path,
                          lambda: count_png(tmp_path / "run" / "tissue") >= 30, signal.SIGKILL)  # fmt: skip
    assert killed == -signal.SIGKILL
    written = count_png(tmp_path / "run" / "tissue")
    assert 30 <= written < count_png(tmp_path / "ref" / "tissue"), "killed too late to test a resume"
    resumed = histo(*TILES, str(slide), "--out", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert files(tmp_path / "run") == files(tmp_path / "ref")  # no .part left, every patch byte for byte


@pytest.mark.slow
def test_ctrl_c_is_one_line_then_the_run_resumes(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    stopped, err = stop_when([*TILES, str(slide), "--out", "run"], tmp_path,
                             lambda: count_png(tmp_path / "run" / "tissue") >= 10, signal.SIGINT)  # fmt: skip
    assert stopped == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: interrupted")
    resumed = histo(*TILES, str(slide), "--out", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not list((tmp_path / "run").rglob("*.part"))


@pytest.mark.slow
def test_predict_killed_then_resumed_gives_identical_outputs(tmp_path):
    zarr = pytest.importorskip("zarr")
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    reference = histo(*PREDICT, str(slide), "--out", "ref", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    partial = tmp_path / "run" / "CMU-1-Small-Region.zarr.partial"
    killed, _ = stop_when([*PREDICT, str(slide), "--out", "run"], tmp_path,
                          lambda: (partial / "done" / "c").is_dir(), signal.SIGKILL)  # fmt: skip
    assert killed == -signal.SIGKILL
    assert partial.is_dir() and not (tmp_path / "run" / "CMU-1-Small-Region.summary.json").exists()
    resumed = histo(*PREDICT, str(slide), "--out", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "afresh" not in resumed.stderr  # the interrupted run was resumed, not started again
    ref, run = tmp_path / "ref", tmp_path / "run"
    timing = ("elapsed_s", "tiles_per_s")
    summaries = [json.loads((d / "CMU-1-Small-Region.summary.json").read_text()) for d in (ref, run)]
    same = [{k: v for k, v in s.items() if k not in timing} for s in summaries]
    assert same[0] == same[1]
    for name in (
        "CMU-1-Small-Region.geojson",
        "CMU-1-Small-Region.overlay.png",
        "CMU-1-Small-Region.settings.json",
    ):
        assert (ref / name).read_bytes() == (run / name).read_bytes(), name
    stores = [zarr.open_group(str(d / "CMU-1-Small-Region.zarr"), mode="r") for d in (ref, run)]
    np.testing.assert_array_equal(stores[0]["class_map"][:], stores[1]["class_map"][:])
    np.testing.assert_allclose(stores[0]["probabilities"][:], stores[1]["probabilities"][:], atol=1e-5)
    assert not list(run.rglob("*.part")) and not partial.exists()


def _mount_refused() -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmp],
                                  capture_output=True, text=True, timeout=20, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot run mount: {exc}"
        if done.returncode:
            return f"mount is not allowed here: {done.stderr.strip()}"
        subprocess.run(["umount", tmp], check=False, timeout=20)
    return None


@pytest.mark.slow
def test_tiles_that_filled_the_disk_resume_once_there_is_space(tmp_path):
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    reason = _mount_refused()
    if reason:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True, timeout=20)
    try:
        full = histo(*TILES, str(slide), "--out", "disk/t", cwd=tmp_path)
        assert full.returncode == 4, full.stderr
        line = full.stderr.strip().splitlines()[-1]
        assert line.startswith("error: no space left on the disk of disk/t") and "--out" in line
        assert not list(disk.rglob("*.part"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True, timeout=20)
        resumed = histo(*TILES, str(slide), "--out", "disk/t", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        reference = histo(*TILES, str(slide), "--out", "ref", cwd=tmp_path)
        assert files(disk / "t") == files(tmp_path / "ref")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=20)
    assert reference.returncode == 0
