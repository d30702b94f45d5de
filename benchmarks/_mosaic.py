"""Big Aperio-layout pyramidal JPEG TIFFs made of real pixels, for the benchmarks.

Tiles are JPEG-encoded once from a pool of real 256² tiles (CMU-1-Small-Region,
plus PatchCamelyon patches when asked) and written precompressed, so a
100,000² slide takes seconds.  Lower levels reuse the pool blurred by 4× so the
pyramid looks right when zoomed out.  Written to a ``.part`` name, then renamed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TILE = 256


def real_tile_pool(with_pcam: bool = False, limit_pcam: int = 64) -> list[np.ndarray]:
    """256² RGB tiles of real H&E: CMU-1-Small-Region, and (optionally) 96² PCam patches 2×2-mosaicked."""
    from napari_histo.io import open_slide

    with open_slide(SHARED / "wsi" / "CMU-1-Small-Region.svs") as cmu:
        pixels = cmu.read_region((0, 0), 0, cmu.dimensions)
    pool = [
        pixels[r : r + TILE, c : c + TILE]
        for r in range(0, pixels.shape[0] - TILE, TILE)
        for c in range(0, pixels.shape[1] - TILE, TILE)
    ]
    if with_pcam:
        import imagecodecs

        files = sorted((SHARED / "pcam" / "train" / "1").glob("*.jpg"))[: limit_pcam * 9]
        patches = [imagecodecs.imread(f) for f in files]
        for i in range(0, len(patches) - 8, 9):  # 3 x 3 patches of 96 px = 288 px, cropped to 256
            rows = [np.hstack(patches[i + 3 * k : i + 3 * k + 3]) for k in range(3)]
            pool.append(np.vstack(rows)[:TILE, :TILE])
    return pool


def write_mosaic_slide(
    path: Path, side: int, pool: list[np.ndarray], mpp: float = 0.499, quality: int = 80
) -> Path:
    """An Aperio-layout SVS of ``side`` x ``side`` px (levels 1, 4, 16, 64) tiled from ``pool``."""
    import imagecodecs
    import tifffile

    if path.exists():
        return path
    encoded = [imagecodecs.jpeg8_encode(np.ascontiguousarray(t), level=quality) for t in pool]
    blurred = [imagecodecs.jpeg8_encode(t[::4, ::4].repeat(4, 0).repeat(4, 1), level=quality) for t in pool]

    def tiles(n: int, codes: list[bytes]) -> Iterator[bytes]:
        for r in range(n):
            for c in range(n):
                yield codes[(r * 7 + c * 13) % len(codes)]

    desc = (
        f"Aperio Image Library v12.0.15 \r\n{side}x{side} [0,0 {side}x{side}] ({TILE}x{TILE}) "
        f"JPEG/RGB Q={quality}|AppMag = 20|MPP = {mpp}|Filename = mosaic"
    )
    tmp = path.with_suffix(".part")
    print(f"writing {path} ({side:,} x {side:,} px) ...", flush=True)
    t0 = time.perf_counter()
    options = {"dtype": np.uint8, "tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb"}
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        full = {"shape": (side, side, 3), "description": desc, "metadata": None}
        tif.write(tiles(-(-side // TILE), encoded), **full, **options)
        thumb = np.full((max(1, side // 128), max(1, side // 128), 3), 230, np.uint8)
        tif.write(thumb, description=desc + "\r\n-> thumbnail", photometric="rgb", metadata=None)
        for factor in (4, 16, 64):
            level = side // factor
            if level < TILE:
                break
            reduced = {"shape": (level, level, 3), "description": desc, "metadata": None}
            tif.write(tiles(-(-level // TILE), blurred), **reduced, **options)
    os.replace(tmp, path)
    print(f"  written in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e9:.2f} GB", flush=True)
    return path
