"""Open time, memory and random-region read speed: napari-histo vs OpenSlide vs tiffslide.

Slides: every slide in ../shared/data/wsi, plus a generated 100,000 x 100,000
Aperio-layout pyramidal JPEG TIFF made of real CMU-1 pixels (precompressed
tiles, so it is written in seconds; cached in --work between runs).

For each slide and tool, in the same run:
  * open time (median of several opens, each in a fresh subprocess so no cache
    is warm) and the extra resident memory the open costs (RSS after - before);
  * random 512 x 512 level-0 region reads per second, same locations for all.

Usage:
  python benchmarks/bench_slide_io.py                 # all slides, ~2 min
  python benchmarks/bench_slide_io.py --reads 100 --skip-big
Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _mosaic import real_tile_pool, write_mosaic_slide

REPO = Path(__file__).resolve().parents[1]
SHARED_WSI = REPO.parent / "shared" / "data" / "wsi"
BIG_SIDE = 100_000
TOOLS = ("histo", "openslide", "tiffslide")

# Runs in a fresh interpreter: open the slide, touch its metadata, report time and RSS growth.
_OPEN_PROBE = r"""
import json, sys, time, psutil, gc
tool, path = sys.argv[1], sys.argv[2]
proc = psutil.Process()
if tool == "histo":
    from napari_histo.io import open_slide
    import tifffile, dask.array, imagecodecs, zarr  # loaded lazily by open_slide; count them apart
elif tool == "openslide":
    import openslide
else:
    import tiffslide
import numpy  # imports are not part of the open cost (peers load theirs at import too)
gc.collect()
rss0 = proc.memory_info().rss
t0 = time.perf_counter()
if tool == "histo":
    s = open_slide(path); dims = s.dimensions; mpp = s.mpp; n = s.level_count; _ = s.to_dask()
elif tool == "openslide":
    s = openslide.OpenSlide(path); dims = s.dimensions; n = s.level_count
    mpp = s.properties.get("openslide.mpp-x")
else:
    s = tiffslide.TiffSlide(path); dims = s.dimensions; n = s.level_count
    mpp = s.properties.get("tiffslide.mpp-x")
dt = time.perf_counter() - t0
rss1 = proc.memory_info().rss
print(json.dumps({"seconds": dt, "extra_mb": (rss1 - rss0) / 2**20, "levels": n}))
"""


def make_big_slide(work: Path, side: int = BIG_SIDE) -> Path:
    """The 100,000² Aperio-layout JPEG TIFF of real CMU-1 tiles (cached in ``work``)."""
    return write_mosaic_slide(work / f"mosaic-{side}.svs", side, real_tile_pool())


def warm_page_cache(path: Path) -> None:
    """Read the file once so that no tool pays for cold disk reads the next one gets for free."""
    with open(path, "rb") as fh:
        while fh.read(64 * 2**20):
            pass


def measure_open(tool: str, path: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _OPEN_PROBE, tool, str(path)], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
        runs.append(json.loads(out.stdout))
    return {
        "open_ms": 1000 * statistics.median(r["seconds"] for r in runs),
        "extra_mb": max(r["extra_mb"] for r in runs),
        "levels": runs[0]["levels"],
    }


def opener(tool: str, path: Path, cache: bool = True):
    """A (read(row, col) -> ndarray, close) pair reading 512 x 512 level-0 regions."""
    if tool == "histo":
        from napari_histo.io import open_slide

        slide = open_slide(path) if cache else open_slide(path, cache_bytes=0)
        return (lambda r, c: slide.read_region((r, c), 0, (512, 512))), slide.close
    if tool == "openslide":
        import openslide

        slide = openslide.OpenSlide(str(path))
        return (lambda r, c: np.asarray(slide.read_region((c, r), 0, (512, 512)))), slide.close
    import tiffslide

    slide = tiffslide.TiffSlide(str(path))
    return (lambda r, c: slide.read_region((c, r), 0, (512, 512), as_array=True)), slide.close


def measure_reads(tool: str, path: Path, locations: list[tuple[int, int]], cache: bool = True) -> float:
    try:
        read, close = opener(tool, path, cache)
    except Exception as exc:  # noqa: BLE001 - a peer that cannot open a format is reported, not fatal
        print(f"    {tool}: cannot open ({type(exc).__name__}: {exc})")
        return float("nan")
    read(*locations[0])  # warm-up: imports, first decoder call
    t0 = time.perf_counter()
    for r, c in locations:
        read(r, c)
    rate = len(locations) / (time.perf_counter() - t0)
    close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "histo-bench")
    parser.add_argument("--reads", type=int, default=300, help="random 512² regions per slide and tool")
    parser.add_argument("--opens", type=int, default=5, help="fresh-process opens per slide and tool")
    parser.add_argument("--skip-big", action="store_true", help="skip the generated 100,000² slide")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    slides = sorted(p for p in SHARED_WSI.glob("*") if p.suffix in (".svs", ".ndpi"))
    if not args.skip_big:
        slides.append(make_big_slide(args.work))
    rng = np.random.default_rng(0)
    results = {}
    for path in slides:
        from napari_histo.io import open_slide

        with open_slide(path) as slide:
            rows, cols = slide.dimensions
        locations = [
            (int(rng.integers(0, rows - 512)), int(rng.integers(0, cols - 512))) for _ in range(args.reads)
        ]
        print(f"\n{path.name}  ({cols:,} x {rows:,} px, {path.stat().st_size / 1e6:,.1f} MB)", flush=True)
        warm_page_cache(path)  # every tool then reads from memory: the first one measured is not penalised
        row = {}
        for tool in TOOLS:
            opened = measure_open(tool, path, args.opens)
            rate = measure_reads(tool, path, locations)
            row[tool] = {**opened, "regions_per_s": rate}
        row["histo (no tile cache)"] = {"regions_per_s": measure_reads("histo", path, locations, cache=False)}
        for tool, figures in row.items():
            if "error" in figures:
                print(f"  {tool:<22} open failed: {figures['error']}")
                continue
            open_text = ""
            if "open_ms" in figures:
                open_text = f"open {figures['open_ms']:7.1f} ms  +{figures['extra_mb']:6.1f} MB"
            print(f"  {tool:<22} {open_text:<32} {figures['regions_per_s']:8.1f} regions/s", flush=True)
        peers = [row[t].get("regions_per_s", float("nan")) for t in ("openslide", "tiffslide")]
        best_peer = max((p for p in peers if not np.isnan(p)), default=float("nan"))
        ratio = row["histo"]["regions_per_s"] / best_peer
        verdict = "OK" if ratio >= 1.0 else "SLOWER"
        print(f"  -> napari-histo / faster peer = {ratio:.2f}x  [{verdict}]", flush=True)
        histo = row["histo"]
        print(
            f"  -> open {histo['open_ms']:.1f} ms (bound 1000 ms), +{histo['extra_mb']:.1f} MB (bound 200 MB)"
        )
        results[path.name] = row
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
