"""Open time, memory and random-region read speed: napari-histo vs OpenSlide vs tiffslide.

Slides: every slide in ../shared/data/wsi, plus a generated 100,000 x 100,000
Aperio-layout pyramidal JPEG TIFF made of real CMU-1 pixels (precompressed
tiles, so it is written in seconds; cached in --work between runs).

For each slide and tool, in the same run:
  * open time (median of several opens, each in a fresh subprocess so no cache
    is warm) and the extra resident memory the open costs (RSS after - before);
  * random 512 x 512 level-0 region reads per second, same locations for all.

Back-ends (``--backends``, or ``--backends-only`` for just these rows): the same
random 512 x 512 regions through each ``open_slide`` back-end beside the
built-in tifffile one, in the same run:
  * ``openslide`` back-end on each real slide (and OpenSlide itself, the peer);
  * ``wsidicom`` back-end on CMU-1-Small-Region converted to DICOM by
    wsidicomizer (lossless JPEG frames; made once in --work);
  * the same DICOM files over DICOMweb, served by a local Orthanc (when installed);
  * remote reads: each real slide served by a local ``http.server`` on
    127.0.0.1 (range requests), read through fsspec: regions/s, and bytes the
    server sent per region and to open (against the file size).

Usage:
  python benchmarks/bench_slide_io.py                 # all slides, ~2 min
  python benchmarks/bench_slide_io.py --reads 100 --skip-big
  python benchmarks/bench_slide_io.py --backends-only --reads 100
Needs the bench extra: pip install -e '.[bench]' (and the openslide, dicom and
remote extras, plus wsidicomizer, for the back-end rows).
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


class _RangeServer:
    """A local HTTP server for one folder that answers range requests and counts the bytes it sends."""

    def __init__(self, folder: Path) -> None:
        import http.server
        import os
        import re
        import threading

        self.bytes_sent = 0
        lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                path = folder / self.path.lstrip("/")
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()

            def do_GET(self) -> None:
                path = folder / self.path.lstrip("/")
                size = path.stat().st_size
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                start = int(match.group(1)) if match else 0
                end = min(size - 1, int(match.group(2))) if match and match.group(2) else size - 1
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                with open(path, "rb") as fh:
                    data = os.pread(fh.fileno(), end - start + 1, start)
                self.wfile.write(data)
                with lock:
                    owner.bytes_sent += len(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _rate(read, locations: list[tuple[int, int]]) -> float:
    read(*locations[0])  # warm-up: imports, first decoder call
    t0 = time.perf_counter()
    for r, c in locations:
        read(r, c)
    return len(locations) / (time.perf_counter() - t0)


def _histo_rate(source: str | Path, locations: list[tuple[int, int]], **options) -> float:
    from napari_histo.io import open_slide

    try:
        slide = open_slide(source, **options)
    except Exception as exc:  # noqa: BLE001 - a back-end that is not installed is reported, not fatal
        print(f"    cannot open {source} with {options or 'auto'} ({type(exc).__name__}: {exc})")
        return float("nan")
    with slide:
        return _rate(lambda r, c: slide.read_region((r, c), 0, (512, 512)), locations)


def _dicom_copy(work: Path, source: Path) -> Path | None:
    """CMU-1-Small-Region as DICOM (wsidicomizer, lossless JPEG frames; made once in ``work``)."""
    out = work / f"{source.stem}-dicom"
    if out.is_dir() and any(out.glob("*.dcm")):
        return out
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from wsidicom.codec.settings import JpegLosslessSettings
            from wsidicomizer import WsiDicomizer
            from wsidicomizer.wsidicomizer import SourceIdentifier

            out.mkdir(parents=True, exist_ok=True)
            WsiDicomizer.convert(
                source, out, tile_size=240, workers=1, preferred_source=SourceIdentifier.OPENSLIDE,
                encoding=JpegLosslessSettings(),
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - reported, the other rows still run
        print(f"  DICOM copy of {source.name} not made ({type(exc).__name__}: {exc})")
        return None
    return out


def backend_rows(slides: list[Path], work: Path, reads: int) -> dict:
    """Random 512² level-0 reads through each back-end (same locations per slide), and remote bytes."""
    from napari_histo.io import open_slide

    print("\n== back-ends: 512 x 512 level-0 regions/s, same locations for every row ==", flush=True)
    rng = np.random.default_rng(1)
    server = _RangeServer(SHARED_WSI)
    results: dict = {}
    try:
        for path in slides:
            with open_slide(path) as slide:
                rows, cols = slide.dimensions
            locations = [
                (int(rng.integers(0, max(1, rows - 512))), int(rng.integers(0, max(1, cols - 512))))
                for _ in range(reads)
            ]
            warm_page_cache(path)
            row = {
                "histo tifffile": _histo_rate(path, locations),
                "histo openslide back-end": _histo_rate(path, locations, backend="openslide"),
                "openslide (peer)": measure_reads("openslide", path, locations),
            }
            url = f"{server.url}/{path.name}"
            before = server.bytes_sent
            try:
                remote = open_slide(url)
            except Exception as exc:  # noqa: BLE001 - the remote extra missing is reported
                print(f"    remote: cannot open {url} ({type(exc).__name__}: {exc})")
                remote = None
            if remote is not None:
                opened = server.bytes_sent - before
                with remote:
                    start = server.bytes_sent
                    t0 = time.perf_counter()
                    for r, c in locations:
                        remote.read_region((r, c), 0, (512, 512))
                    rate = len(locations) / (time.perf_counter() - t0)
                    per_region = (server.bytes_sent - start) / len(locations)
                row["histo remote (HTTP, cold)"] = rate
                row["remote bytes"] = {
                    "open_bytes": opened,
                    "bytes_per_region": per_region,
                    "total_fraction_of_file": server.bytes_sent - before,
                }
            size = path.stat().st_size
            print(f"\n{path.name}  ({cols:,} x {rows:,} px, {size / 1e6:,.1f} MB)", flush=True)
            for name, value in row.items():
                if name != "remote bytes":
                    print(f"  {name:<28} {value:8.1f} regions/s", flush=True)
            if "remote bytes" in row:
                fetched = row["remote bytes"]
                total = fetched["total_fraction_of_file"]
                print(
                    f"  {'remote bytes':<28} open {fetched['open_bytes'] / 1e3:,.0f} kB, "
                    f"{fetched['bytes_per_region'] / 1e3:,.1f} kB/region "
                    f"(raw RGB 786 kB), all {len(locations)} reads + open = {total / size:.0%} of the file",
                    flush=True,
                )
                fetched["total_fraction_of_file"] = total / size
            results[path.name] = row
        cmu = SHARED_WSI / "CMU-1-Small-Region.svs"
        dicom = _dicom_copy(work, cmu) if cmu.exists() else None
        if dicom is not None:
            with open_slide(cmu) as slide:
                rows, cols = slide.dimensions
            locations = [
                (int(rng.integers(0, rows - 512)), int(rng.integers(0, cols - 512))) for _ in range(reads)
            ]
            row = {
                "histo tifffile (SVS)": _histo_rate(cmu, locations),
                "histo wsidicom (DICOM copy)": _histo_rate(dicom, locations),
            }
            from _orthanc import dicomweb_series, orthanc_available

            if orthanc_available():  # the same DICOM files served over DICOMweb by a local Orthanc
                with dicomweb_series(dicom, work / "orthanc") as url:
                    row["histo wsidicom (DICOMweb, cold)"] = _histo_rate(url, locations)
            else:
                print("    DICOMweb row skipped: apt install orthanc orthanc-dicomweb", flush=True)
            print(f"\n{cmu.name} as DICOM (lossless JPEG frames)", flush=True)
            for name, value in row.items():
                print(f"  {name:<28} {value:8.1f} regions/s", flush=True)
            results[f"{cmu.name} (DICOM)"] = row
    finally:
        server.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "histo-bench")
    parser.add_argument("--reads", type=int, default=300, help="random 512² regions per slide and tool")
    parser.add_argument("--opens", type=int, default=5, help="fresh-process opens per slide and tool")
    parser.add_argument("--skip-big", action="store_true", help="skip the generated 100,000² slide")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--backends", action="store_true", help="add the back-end and remote rows")
    parser.add_argument("--backends-only", action="store_true", help="only the back-end and remote rows")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    real_slides = sorted(p for p in SHARED_WSI.glob("*") if p.suffix in (".svs", ".ndpi"))
    slides = list(real_slides)
    if args.backends_only:
        results = backend_rows(real_slides, args.work, args.reads)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
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
    if args.backends:
        results["backends"] = backend_rows(real_slides, args.work, args.reads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
