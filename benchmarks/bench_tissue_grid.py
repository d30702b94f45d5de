"""Tissue mask + tile grid of a 100,000 x 100,000 slide on the CPU (target: under 2 s).

The slide is written into a temporary folder from pre-compressed JPEG tiles
(tissue tiles inside an ellipse, background outside) with reduced levels x4,
x16, x64 (tifffile lists SubIFD levels only with one constant ratio) at
0.25 µm/px, so writing takes seconds, not minutes.

    python benchmarks/bench_tissue_grid.py [--size 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from napari_histo.data.synthetic import write_synthetic_slide
from napari_histo.io import open_slide
from napari_histo.pipeline.session import open_session
from napari_histo.pipeline.tissue import DEFAULT_MASK_MPP, plan_grid, slide_tissue_mask, tissue_tiles

TILE = 256
MPP = 0.25


def _jpeg_tiles(tmp: Path) -> tuple[bytes, bytes]:
    """One real-looking H&E tile (from the synthetic renderer) and one background tile, JPEG."""
    small = write_synthetic_slide(tmp / "src.ome.tif", shape_rc=(1024, 1024), seed=1)
    with open_slide(small) as slide:
        level0 = slide.read_region((0, 0), 0, (1024, 1024))
    tissue_frac = [(level0[r : r + TILE, c : c + TILE] < 200).mean() for r in range(0, 1024, TILE)
                   for c in range(0, 1024, TILE)]  # fmt: skip
    best = int(np.argmax(tissue_frac))
    r, c = divmod(best, 1024 // TILE)
    tissue = np.ascontiguousarray(level0[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE])
    background = np.full((TILE, TILE, 3), 242, np.uint8)
    return imagecodecs.jpeg8_encode(tissue, level=80), imagecodecs.jpeg8_encode(background, level=80)


def write_big_slide(path: Path, size: int, tmp: Path) -> Path:
    tissue, background = _jpeg_tiles(tmp)

    def tiles(ds: int):
        n = -(-size // ds // TILE)
        centre = (n - 1) / 2
        for r in range(n):
            for c in range(n):
                inside = ((r - centre) / (0.4 * n)) ** 2 + ((c - centre) / (0.3 * n)) ** 2 <= 1
                yield tissue if inside else background

    opts = {"dtype": "uint8", "tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb"}
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        res = {"resolution": (1e4 / MPP, 1e4 / MPP), "resolutionunit": "CENTIMETER"}
        tif.write(tiles(1), shape=(size, size, 3), subifds=3, **res, **opts)
        for ds in (4, 16, 64):
            tif.write(tiles(ds), shape=(size // ds, size // ds, 3), subfiletype=1, **opts)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mpp", type=float, default=0.5, help="patch µm/px")
    parser.add_argument("--tile-px", type=int, default=224)
    parser.add_argument("--mask-mpp", type=float, default=DEFAULT_MASK_MPP, help="µm/px asked of the mask")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = write_big_slide(Path(tmp) / "big.tif", args.size, Path(tmp))
        took = time.perf_counter() - t0
        print(f"wrote {args.size:,}² slide ({path.stat().st_size / 1e6:.0f} MB) in {took:.1f} s")
        for i in range(args.repeat):
            t0 = time.perf_counter()
            with open_session(path, mpp=MPP) as session:
                t1 = time.perf_counter()
                mask = slide_tissue_mask(session, mask_mpp=args.mask_mpp)
                t2 = time.perf_counter()
                grid = plan_grid(session, args.mpp, args.tile_px)
                kept, _ = tissue_tiles(grid, mask, 0.5)
                t3 = time.perf_counter()
            print(
                f"run {i}: total {t3 - t0:.2f} s = open {t1 - t0:.2f} + tissue mask {t2 - t1:.2f} "
                f"(level {mask.level}, {mask.mask.shape[1]}x{mask.mask.shape[0]} px, "
                f"{mask.downsample_rc[0] * MPP:.1f} µm/px) + grid {t3 - t2:.3f}; "
                f"{len(kept):,} of {len(grid):,} tiles of {args.tile_px} px at {args.mpp} µm/px kept"
            )


if __name__ == "__main__":
    main()
