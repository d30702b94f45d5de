"""Full and read-only disks, and runs killed mid-way (``cli/disk/`` and ``cli/kill/`` cases).

A small tmpfs is mounted in the case folder (``mount -t tmpfs -o size=...``, as
root); where mounting is not allowed the cases are skipped.  What a user should see:

* disk full during ``tiles``, ``predict``, ``qupath convert`` or ``export-wsinfer``:
  one line ``error: no space left on the disk of FOLDER ...`` with the fix, exit
  code 4, and no half-written ``*.part`` file left behind;
* a read-only output folder: one line naming it, exit code 4;
* a run killed with SIGKILL (``histo tiles`` on the real CMU-1 slide), then run
  again with other settings: refused with the fix and the earlier patches kept, or
  with ``--overwrite`` done again with a warning.  (That a plain re-run resumes to
  identical outputs is tested in ``tests/cli/test_kill_resume.py``.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tifffile
from badinput_cases_cli import MODEL, SLIDE, both, geojson, he_like, slide
from badinput_corpus import Case

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CMU = SHARED / "wsi" / "CMU-1-Small-Region.svs"
DISK = "disk"  # the mount point inside the case folder
ENVIRONMENT = 4

Setup = Callable[[Path], None]


@functools.lru_cache(maxsize=1)
def mount_refused() -> str | None:
    """Why a small tmpfs cannot be mounted here (not root, no mount command, a container), or None."""
    if sys.platform != "linux":
        return "tmpfs mounts need Linux"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmp],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot run mount: {exc}"
        if done.returncode != 0:
            return f"mount is not allowed here: {done.stderr.strip()}"
        subprocess.run(["umount", tmp], check=False, timeout=20)
    return None


def no_cmu() -> str | None:
    return None if CMU.is_file() else f"real slide not available: {CMU}"


def small_disk(size: str, *, full: bool = False, read_only: bool = False) -> Setup:
    """Mount a tmpfs of ``size`` at DISK (filled up first when ``full``; remounted read-only when asked)."""

    def setup(d: Path) -> None:
        point = d / DISK
        point.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True, timeout=20
        )
        if full:
            with open(point / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, timeout=20)

    return setup


def unmount(d: Path) -> None:
    point = d / DISK
    if point.is_mount():
        subprocess.run(["umount", "-l", str(point)], check=False, timeout=20)


def part_files(d: Path) -> list[str]:
    """``*.part`` (and ``.NAME.XXXX.tmp``) files anywhere under the case folder."""
    return sorted(
        str(p.relative_to(d))
        for p in d.rglob("*")
        if p.is_file() and (p.name.endswith(".part") or (p.name.startswith(".") and p.name.endswith(".tmp")))
    )


def big_slide(d: Path) -> None:
    """2048 x 2048 px at 0.5 µm/px: 164 tissue patches of 128 px, about 5.7 MB of PNG."""
    tifffile.imwrite(
        d / "big.tif", he_like(2048, 2048), metadata=None, resolution=(2e4, 2e4), resolutionunit="CENTIMETER"
    )


def disk_case(name: str, argv: list[str], expect: str, setup: Setup, **kw) -> Case:
    return Case(
        f"cli/disk/{name}",
        argv,
        expect=expect,
        setup=setup,
        teardown=unmount,
        leftovers=part_files,
        skip_if=mount_refused,
        exit_code=kw.pop("exit_code", ENVIRONMENT),
        **kw,
    )


def killed(argv: list[str], folder: str, least: int, timeout_s: float = 120) -> Setup:
    """Start ``histo ARGV`` in a child, SIGKILL it once ``folder`` holds ``least`` patch files."""

    def setup(d: Path) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        child = subprocess.Popen(
            [sys.executable, "-m", "napari_histo.cli.main", *argv],
            cwd=d,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and child.poll() is None:
                target = d / folder
                if target.is_dir() and sum(1 for p in target.iterdir() if p.suffix == ".png") >= least:
                    break
                time.sleep(0.05)
            if child.poll() is not None:
                raise RuntimeError(
                    f"histo {' '.join(argv)} ended (exit {child.returncode}) before it was killed"
                )
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=30)

    return setup


FULL = r"no space left on the disk of disk.*free some space there or write to another folder \(--out\)"
PREDICT = ["predict", SLIDE, "--model", MODEL, "--out", f"{DISK}/r"]
CMU_TILES = ["tiles", str(CMU), "--mpp", "0.5", "--tile-px", "64", "--min-tissue", "0", "--out", "t"]

CASES: list[Case] = [
    disk_case(
        "tiles-fills-the-disk",
        ["tiles", "big.tif", "--mpp", "0.5", "--tile-px", "128", "--out", f"{DISK}/t"],
        FULL,
        both(big_slide, small_disk("1m")),
    ),
    disk_case(
        "tiles-on-a-full-disk",
        ["tiles", SLIDE, "--mpp", "1", "--tile-px", "64", "--out", f"{DISK}/t"],
        FULL,
        both(slide, small_disk("64k", full=True)),
    ),
    disk_case("predict-on-a-full-disk", PREDICT, FULL, both(slide, small_disk("64k", full=True))),
    disk_case("predict-fills-the-disk-at-the-overlay", PREDICT, FULL, both(slide, small_disk("320k"))),
    disk_case(
        "qupath-convert-on-a-full-disk",
        ["qupath", "convert", "a.geojson", f"{DISK}/a.tif", "--shape", "64x64"],
        FULL,
        both(geojson, small_disk("64k", full=True)),
    ),
    disk_case(
        "export-wsinfer-fills-the-disk",
        ["export-wsinfer", MODEL, f"{DISK}/w"],
        FULL,
        small_disk("1m"),
    ),
    disk_case(
        "tiles-into-a-read-only-folder",
        ["tiles", SLIDE, "--mpp", "1", "--tile-px", "64", "--out", f"{DISK}/t"],
        r"disk.* is on a read-only file system: write to another folder \(--out\)",
        both(slide, small_disk("64k", read_only=True)),
    ),
    disk_case(
        "predict-into-a-read-only-folder",
        PREDICT,
        r"disk.* is on a read-only file system",
        both(slide, small_disk("64k", read_only=True)),
    ),
    disk_case(
        "qupath-convert-into-a-read-only-folder",
        ["qupath", "convert", "a.geojson", f"{DISK}/a.tif", "--shape", "64x64"],
        r"disk is on a read-only file system",
        both(geojson, small_disk("64k", read_only=True)),
    ),
    # killed mid-way, then run again with other settings
    Case(
        "cli/kill/tiles-then-another-tile-px",
        [*CMU_TILES[:5], "128", *CMU_TILES[6:]],
        expect=r"t already holds \d+ patches of CMU-1-Small-Region\.svs cut with other settings "
        r"\(--tile-px 64 -> 128\).*--overwrite",
        setup=killed(CMU_TILES, "t/tissue", 20),
        keep=("t/CMU-1-Small-Region_tiles.settings.json",),
        exit_code=2,
        skip_if=no_cmu,
    ),
    Case(
        "cli/kill/tiles-then-another-tile-px-with-overwrite",
        [*CMU_TILES[:5], "512", *CMU_TILES[6:], "--overwrite"],
        expect=r"--overwrite: deleted \d+ earlier patches of CMU-1-Small-Region\.svs .*--tile-px 64 -> 512",
        setup=killed(CMU_TILES, "t/tissue", 20),
        kind="handled",
        leftovers=part_files,
        skip_if=no_cmu,
    ),
]
