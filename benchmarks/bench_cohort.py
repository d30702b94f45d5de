"""Cohort runs on Dask: slides/s serially, on 1 and on 2 local workers, and scheduler overhead per slide.

Part 1 builds a cohort from the real CMU-1-Small-Region.svs in ../shared/data/wsi (copies, plus
crops written as small tiled JPEG TIFFs, their µm/px given in a CSV manifest) and runs the same
slide job serially in this process (``client=None``), on a LocalCluster of 1 worker and of 2
workers; it prints slides/s side by side and the scaling efficiency (speed-up / workers).

Part 2 measures the scheduler overhead per slide: a simulated cohort of N tiny 64² TIFF slides run
with job ``info`` (the cheapest real task) on a LocalCluster of 2 workers, minus the serial
in-process time of the same N tasks, divided by N (goal: < 50 ms per slide).

Worker processes are started and warmed (imports) before the clock starts; cluster start-up is
printed apart.  Every mode writes to its own fresh output folder, so nothing is skipped.

    python benchmarks/bench_cohort.py [--job tiles|predict] [--copies 8 --crops 6] [--tiny 1000]
"""

from __future__ import annotations

import argparse
import csv
import importlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_histo.core.progress import run_to_end
from napari_histo.pipeline.cohort import make_client, read_cohort, run_cohort

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CMU = SHARED / "wsi" / "CMU-1-Small-Region.svs"
CMU_MPP = 0.499


def build_cohort(folder: Path, copies: int, crops: int) -> Path:
    """``copies`` copies of CMU-1-Small-Region.svs and ``crops`` tiled-TIFF crops of it; the manifest."""
    import tifffile

    from napari_histo.io import open_slide

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(copies):
        path = folder / f"cmu_copy_{i:02d}.svs"
        shutil.copyfile(CMU, path)
        rows.append({"slide": path.name, "mpp": "", "label": "copy", "patient": f"P{i % 4}"})
    with open_slide(CMU) as cmu:
        pixels = cmu.read_region((0, 0), 0, cmu.dimensions)
    h, w = pixels.shape[:2]
    rng = np.random.default_rng(0)
    for i in range(crops):
        ch, cw = int(h * rng.uniform(0.5, 0.8)) // 16 * 16, int(w * rng.uniform(0.5, 0.8)) // 16 * 16
        r, c = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        path = folder / f"cmu_crop_{i:02d}.tif"
        tifffile.imwrite(path, pixels[r : r + ch, c : c + cw], tile=(256, 256), compression="jpeg")
        rows.append({"slide": path.name, "mpp": CMU_MPP, "label": "crop", "patient": f"P{i % 4}"})
    manifest = folder / "cohort.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["slide", "mpp", "label", "patient"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def build_tiny(folder: Path, count: int) -> Path:
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        tifffile.imwrite(folder / f"tiny_{i:05d}.tif", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return folder


def warm(client) -> None:
    """Import the task's code on every worker (and here) so that start-up is not timed."""
    importlib.import_module("napari_histo.pipeline.cohort")
    if client is not None:
        client.run(importlib.import_module, "napari_histo.pipeline.cohort")


def timed_run(job, slides, out: Path, options: dict, client) -> tuple[float, list]:
    t0 = time.perf_counter()
    outcomes = run_to_end(run_cohort(job, slides, out, options, client=client))
    return time.perf_counter() - t0, outcomes


def run_mode(job, slides, out: Path, options: dict, workers: int | None) -> tuple[float, float, list]:
    """(start-up s, run s, outcomes) serially (workers None) or on a LocalCluster of ``workers``."""
    if workers is None:
        warm(None)
        seconds, outcomes = timed_run(job, slides, out, options, None)
        return 0.0, seconds, outcomes
    t0 = time.perf_counter()
    client, cluster = make_client(workers=workers, threads_per_worker=1, dashboard=False)
    try:
        warm(client)
        startup = time.perf_counter() - t0
        seconds, outcomes = timed_run(job, slides, out, options, client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return startup, seconds, outcomes


def scaling(args, root: Path) -> None:
    manifest = build_cohort(root / "cohort", args.copies, args.crops)
    slides = read_cohort(manifest)
    # one decoding thread per slide task, so that serial and each worker use one core alike
    options = {"min_tissue": args.min_tissue, "workers": 1}
    if args.job == "predict":
        options.update({"model": args.model, "device": "cpu", "batch_size": 64})
    else:
        options.update({"mpp": args.mpp, "tile_px": args.tile_px})
    print(
        f"Part 1: job {args.job!r} {options} on {len(slides)} slides "
        f"({args.copies} copies of CMU-1-Small-Region.svs, {args.crops} tiled-TIFF crops)"
    )
    results = {}
    for name, workers in (("serial", None), ("1 worker", 1), ("2 workers", 2)):
        startup, seconds, outcomes = run_mode(
            job=args.job, slides=slides, out=root / f"out_{workers}", options=options, workers=workers
        )
        results[name] = (startup, seconds, outcomes)
    base = results["serial"][1]
    print(
        f"{'':<11}{'start-up s':>11}{'run s':>8}{'slides/s':>10}{'speed-up':>10}{'efficiency':>11}"
        f"{'done':>6}{'tiles':>8}"
    )
    for name, (startup, seconds, outcomes) in results.items():
        workers = {"serial": 1, "1 worker": 1, "2 workers": 2}[name]
        speedup = base / seconds
        done = sum(o.status == "done" for o in outcomes)
        tiles = sum(o.tiles for o in outcomes)
        print(
            f"{name:<11}{startup:>11.1f}{seconds:>8.1f}{len(slides) / seconds:>10.2f}{speedup:>10.2f}"
            f"{speedup / workers:>11.0%}{done:>6}{tiles:>8}"
        )
    per_slide = [{o.slide: (o.status, o.tiles) for o in r[2]} for r in results.values()]
    print("same per-slide status and tiles in every mode:", all(p == per_slide[0] for p in per_slide))


def overhead(args, root: Path) -> None:
    folder = build_tiny(root / "tiny", args.tiny)
    slides = read_cohort(folder)
    print(f"\nPart 2: scheduler overhead, job 'info' on {len(slides)} tiny 64² TIFF slides")
    _, serial_s, serial_out = run_mode("info", slides, root / "tiny_serial", {}, None)
    startup, dask_s, dask_out = run_mode("info", slides, root / "tiny_dask", {}, 2)
    n = len(slides)
    per_slide = (dask_s - serial_s) / n
    print(f"{'':<22}{'run s':>8}{'ms/slide':>10}{'done':>6}")
    print(
        f"{'serial in-process':<22}{serial_s:>8.2f}{1000 * serial_s / n:>10.2f}"
        f"{sum(o.status == 'done' for o in serial_out):>6}"
    )
    print(
        f"{'LocalCluster 2 workers':<22}{dask_s:>8.2f}{1000 * dask_s / n:>10.2f}"
        f"{sum(o.status == 'done' for o in dask_out):>6}   (start-up {startup:.1f} s apart)"
    )
    verdict = "meets" if per_slide < 0.050 else "misses"
    print(
        f"overhead (cluster - serial) / {n} = {1000 * per_slide:.2f} ms/slide: {verdict} the 50 ms goal; "
        f"a 10,000-slide cohort would spend {10_000 * per_slide / 60:.1f} min in overhead"
    )
    report_s = report_write_seconds(10_000, root / "report")
    print(
        f"cohort.csv + cohort.md of 10,000 slides: {1000 * report_s:.0f} ms a write; written at most every "
        f"5 s (run_cohort's report_every_s), so at most {100 * report_s / 5:.1f} % of the client's time"
    )


def report_write_seconds(count: int, folder: Path) -> float:
    """Seconds to write the cohort report of ``count`` finished slides once."""
    from napari_histo.pipeline.cohort import CohortSlide, SlideOutcome, write_report

    slides = [CohortSlide(Path(f"/cohort/slide_{i:05d}.svs")) for i in range(count)]
    outcomes = {
        i: SlideOutcome(str(s.path), "done", 100, 60.0, "", {"info": f"/results/slide_{i:05d}.info.json"})
        for i, s in enumerate(slides)
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_report(folder, slides, outcomes, 1.0)  # warm-up
    t0 = time.perf_counter()
    write_report(folder, slides, outcomes, 1.0)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=("tiles", "predict"), default="tiles")
    parser.add_argument("--copies", type=int, default=8, help="copies of CMU-1-Small-Region.svs")
    parser.add_argument("--crops", type=int, default=6, help="tiled-TIFF crops of it")
    parser.add_argument("--mpp", type=float, default=2.0)
    parser.add_argument("--tile-px", type=int, default=128)
    parser.add_argument("--min-tissue", type=float, default=0.5)
    parser.add_argument("--model", default="pcam-mobilenetv2", help="for --job predict (run on cpu)")
    parser.add_argument("--tiny", type=int, default=1000, help="tiny slides for the overhead (0: skip)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it")
    args = parser.parse_args()
    if not CMU.exists() and not args.skip_scaling:
        raise SystemExit(f"needs {CMU}")
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        root = args.keep or Path(tmp)
        if not args.skip_scaling:
            scaling(args, root)
        if args.tiny:
            overhead(args, root)


if __name__ == "__main__":
    main()
