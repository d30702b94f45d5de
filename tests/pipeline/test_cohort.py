"""Cohorts on Dask distributed: a LocalCluster of 2 worker processes gives the serial run's outputs.

The cohort (12 slides) is made from the real slides in ../shared/data/wsi: copies of
CMU-1-Small-Region.svs, crops of it written as small tiled TIFFs, the TCGA slide
(no µm/px in its file: the manifest gives it) and one truncated copy.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest
import tifffile
from conftest import shared_file

from napari_histo.core.progress import run_to_end
from napari_histo.errors import InvalidParameterError
from napari_histo.io import open_slide
from napari_histo.pipeline.cohort import (
    CohortSlide,
    make_client,
    read_cohort,
    run_cohort,
    run_slide_task,
)

pytest.importorskip("distributed")

OPTIONS = {"mpp": 2.0, "tile_px": 64, "min_tissue": 0.25, "workers": 1}
CROPS = [(0, 0), (0, 1024), (1024, 0), (1024, 1024), (1900, 0), (1900, 1100)]
REPORTS = {"cohort.csv", "cohort.md"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[CohortSlide]:
    """12 slides in a CSV manifest: 4 copies, 6 TIFF crops (µm/px from the manifest), TCGA, 1 damaged."""
    cmu = shared_file("wsi", "CMU-1-Small-Region.svs")
    tcga = shared_file("wsi", "tcga-cr-7395-01a-01-ts1.svs")
    folder = tmp_path_factory.mktemp("cohort")
    rows = []
    for i in range(4):
        (folder / f"copy{i}.svs").write_bytes(cmu.read_bytes())
        rows.append(
            {"slide": f"copy{i}.svs", "mpp": "", "label": "tumour" if i % 2 else "normal", "patient": f"P{i}"}
        )
    with open_slide(cmu) as slide:
        pixels = slide.read_region((0, 0), 0, slide.dimensions)[..., :3]
    for i, (row, col) in enumerate(CROPS):
        crop = pixels[row : row + 1024, col : col + 1024]
        tifffile.imwrite(
            folder / f"crop{i}.tif", crop, tile=(256, 256), photometric="rgb", compression="zlib"
        )
        rows.append({"slide": f"crop{i}.tif", "mpp": "0.499", "label": "", "patient": f"P{i}"})
    (folder / "tcga.svs").write_bytes(tcga.read_bytes())
    rows.append({"slide": "tcga.svs", "mpp": "0.25", "label": "", "patient": "T"})
    (folder / "damaged.svs").write_bytes(cmu.read_bytes()[:400_000])
    rows.append({"slide": "damaged.svs", "mpp": "", "label": "", "patient": "D"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["slide", "mpp", "label", "patient"])
        writer.writeheader()
        writer.writerows(rows)
    slides = read_cohort(manifest)
    assert len(slides) == 12
    return slides


@pytest.fixture(scope="module")
def serial(cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    outcomes = run_to_end(run_cohort("tiles", cohort, out, OPTIONS))
    assert [o.status for o in outcomes] == ["done"] * 11 + ["failed"]
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in REPORTS
    }


def check_report(out: Path, statuses: dict[str, str]) -> None:
    with open(out / "cohort.csv", newline="") as fh:
        rows = {Path(r["slide"]).name: r for r in csv.DictReader(fh)}
    assert {name: row["status"] for name, row in rows.items()} == statuses
    error = rows["damaged.svs"]["error"]
    assert "damaged.svs" in error and "truncated" in error and "\n" not in error
    assert "failed" in (out / "cohort.md").read_text()


def test_read_cohort_folder_glob_and_bad_manifest(cohort, tmp_path):
    folder = cohort[0].path.parent
    assert [s.path.name for s in read_cohort(folder)] == sorted(s.path.name for s in cohort)
    assert [s.path.name for s in read_cohort(str(folder / "crop*.tif"))] == [f"crop{i}.tif" for i in range(6)]
    assert cohort[4].mpp == 0.499 and cohort[1].label == "tumour" and cohort[0].patient == "P0"
    bad = tmp_path / "bad.csv"
    bad.write_text("slide,mpp\na.svs,0.5\nb.svs,fast\n")
    with pytest.raises(InvalidParameterError, match=r"bad\.csv, row 3: mpp 'fast'"):
        read_cohort(bad)
    bad.write_text("name\na.svs\n")
    with pytest.raises(InvalidParameterError, match="needs a 'slide'"):
        read_cohort(bad)


def test_damaged_slide_is_one_failed_line_not_an_exception(cohort, tmp_path):
    outcome = run_slide_task("tiles", cohort[-1], tmp_path, OPTIONS)
    assert outcome.status == "failed" and outcome.tiles == 0
    assert "truncated" in outcome.error and "\n" not in outcome.error
    info = run_slide_task("info", cohort[0], tmp_path, {})
    assert info.status == "done" and run_slide_task("info", cohort[0], tmp_path, {}).status == "skipped"


def test_two_workers_match_serial_then_rerun_skips_done(cohort, serial, tmp_path):
    client, cluster = make_client(workers=2, dashboard=False)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        items = []
        outcomes = run_to_end(run_cohort("tiles", cohort, tmp_path, OPTIONS, client=client), items.append)
        assert [o.status for o in outcomes] == ["done"] * 11 + ["failed"]
        assert [i.done for i in items] == list(range(13)) and items[-1].total == 12
        assert files_of(tmp_path) == files_of(serial)
        check_report(
            tmp_path, {s.path.name: "failed" if s.path.name == "damaged.svs" else "done" for s in cohort}
        )

        start = time.perf_counter()
        again = run_to_end(run_cohort("tiles", cohort, tmp_path, OPTIONS, client=client))
        assert [o.status for o in again] == ["skipped"] * 11 + ["failed"]
        assert [o.tiles for o in again[:11]] == [o.tiles for o in outcomes[:11]]
        assert time.perf_counter() - start < 20
        assert files_of(tmp_path) == files_of(serial)
    finally:
        client.close()
        cluster.close()


def test_worker_killed_mid_run_every_slide_finished_once(cohort, serial, tmp_path):
    client, cluster = make_client(workers=2, dashboard=False)
    try:
        pids = client.run(os.getpid)
        work = run_cohort("tiles", cohort, tmp_path, OPTIONS, client=client)
        seen = []
        killed = None
        while True:
            try:
                item = next(work)
            except StopIteration as stop:
                outcomes = stop.value
                break
            seen.append(item.stage)
            if killed is None and item.done >= 1:
                busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
                assert busy, "no worker was running a slide when one should be killed"
                killed = pids[busy[0]]
                os.kill(killed, signal.SIGKILL)
        assert killed is not None
        assert len(outcomes) == 12 and len(seen) == 13  # the start, then each slide once
        assert sorted(Path(o.slide).name for o in outcomes) == sorted(s.path.name for s in cohort)
        assert [o.status for o in outcomes] == ["done"] * 11 + ["failed"]
        assert not list(tmp_path.rglob("*.part"))
        assert files_of(tmp_path) == files_of(serial)
    finally:
        client.close()
        cluster.close()
