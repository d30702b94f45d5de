"""Tile-embedding throughput against the encoder's forward bound (same run), and memory at 100,000².

  forward bound  tiles/s of the bare encoder on random uint8 batches of the run's batch shape,
                 through the same device code (normalise, resize, forward) as ``embed_slide``
  end to end     tiles/s of ``embed_slide`` on the real slide (CMU-1-Small-Region): reading the
                 nearest level, decoding, batching, forward, writing the zarr table

and prints end-to-end / forward bound.  Then, in a fresh interpreter, ``embed_slide`` on a
100,000 x 100,000 px synthetic Aperio slide (real H&E tiles, ``_mosaic.py``) at ``--big-mpp``
µm/px (coarse by default so it ends in minutes on a CPU; the tile table, tissue mask and
grid still cover the whole slide) and reports its peak resident memory.

  python benchmarks/bench_embed.py                                  # CPU here: small run
  python benchmarks/bench_embed.py --device cuda --batch 512 --workers 16 --encoder uni --big-mpp 0.5
  python benchmarks/bench_embed.py --random virchow2 --depth 4      # code path of a ViT shape (random init)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SLIDE = REPO.parent / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"
BIG_SIDE = 100_000

_BIG_PROBE = r"""
import json, resource, sys, time
from napari_histo.core.progress import run_to_end
from napari_histo.pipeline.embed import EmbedSettings, embed_slide, read_embeddings
from napari_histo.pipeline.session import open_session
path, out, mpp, batch, workers, device = sys.argv[1:7]
settings = EmbedSettings(mpp=float(mpp), min_tissue=0.0, batch_size=int(batch), workers=int(workers),
                         device=device)
start = time.perf_counter()
with open_session(path) as session:
    table = run_to_end(embed_slide(session, None, out, settings))
elapsed = time.perf_counter() - start
n = len(read_embeddings(table))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tiles": n, "seconds": elapsed, "peak_rss_mb": peak}))
"""


def forward_rate(encoder, device, batch: int, seconds: float) -> float:
    from napari_histo.models.encoders import encode_batch

    rng = np.random.default_rng(0)
    size = encoder.tile_px or encoder.input_size
    x = rng.integers(0, 255, (batch, size, size, 3), dtype=np.uint8)
    encode_batch(encoder, x, device)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encode_batch(encoder, x, device)
        done += batch
    return done / (time.perf_counter() - start)


def end_to_end_rate(
    encoder, device, batch: int, workers: int, mpp: float | None, out: Path
) -> tuple[float, int]:
    from napari_histo.core.progress import run_to_end
    from napari_histo.pipeline.embed import EmbedSettings, embed_slide
    from napari_histo.pipeline.session import open_session

    settings = EmbedSettings(mpp=mpp, min_tissue=0.0, batch_size=batch, workers=workers, device=str(device))
    start = time.perf_counter()
    with open_session(SLIDE) as session:
        items: list = []
        run_to_end(embed_slide(session, encoder, out, settings), items.append)
    return items[-1].total / (time.perf_counter() - start), items[-1].total


def main() -> None:
    import torch

    from napari_histo.models.encoders import load_encoder, random_foundation_encoder
    from napari_histo.models.loading import resolve_device

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default=None, help="what histo embed --encoder takes (default: shipped)")
    parser.add_argument(
        "--random", default=None, help="a foundation model key: its shape, randomly initialised"
    )
    parser.add_argument(
        "--depth", type=int, default=None, help="with --random: transformer blocks (shape test)"
    )
    parser.add_argument("--mpp", type=float, default=None, help="µm/px of the tiles (default: the encoder's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of the bare-encoder timing")
    parser.add_argument("--big-mpp", type=float, default=8.0, help="µm/px on the 100,000² slide (0 skips it)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "histo-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.random:
        encoder = random_foundation_encoder(args.random, depth=args.depth, device=device)
    else:
        encoder = load_encoder(args.encoder, device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({hardware}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch}, {args.workers} decode threads")  # fmt: skip
    print(f"encoder {encoder.name} ({encoder.hash[:12]}), {encoder.feature_dim} features, "
          f"{encoder.tile_px or encoder.input_size} px tiles")  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    bound = forward_rate(encoder, device, args.batch, args.seconds)
    e2e, tiles = end_to_end_rate(encoder, device, args.batch, args.workers, args.mpp, out)
    print(f"real slide {SLIDE.name}: {tiles} tiles  forward bound {bound:8.1f} tiles/s  "
          f"end to end {e2e:8.1f} tiles/s  = {e2e / bound:5.1%} of the bound", flush=True)  # fmt: skip
    results: dict = {"forward_bound": bound, "end_to_end": e2e, "ratio": e2e / bound, "tiles": tiles}
    if args.big_mpp > 0 and not args.random:
        sys.path.insert(0, str(Path(__file__).parent))
        from _mosaic import real_tile_pool, write_mosaic_slide

        args.work.mkdir(parents=True, exist_ok=True)
        big = write_mosaic_slide(args.work / f"mosaic-{BIG_SIDE}.svs", BIG_SIDE, real_tile_pool())
        probe = [sys.executable, "-c", _BIG_PROBE, str(big), str(out / "big"), str(args.big_mpp),
                 str(args.batch), str(args.workers), str(device)]  # fmt: skip
        done = subprocess.run(probe, capture_output=True, text=True, check=True)
        big_result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{BIG_SIDE:,}² slide at {args.big_mpp:g} µm/px: {big_result['tiles']:,} tiles in "
              f"{big_result['seconds']:.1f} s ({big_result['tiles'] / big_result['seconds']:.1f} tiles/s), "
              f"peak RSS {big_result['peak_rss_mb']:,.0f} MB")  # fmt: skip
        results["big"] = big_result
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
