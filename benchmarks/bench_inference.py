"""Whole-slide inference speed against its two bounds, measured in the same run.

For each model, on a big Aperio-layout JPEG TIFF of real H&E pixels (CMU-1 and
PCam tiles, written precompressed in seconds):

  decode bound   tiles/s of reading + decoding + resizing 224² patches (thread pool)
  model bound    images/s of the bare forward pass on device tensors (bf16 +
                 channels_last on CUDA, optional torch.compile)
  end to end     tiles/s of ``predict_tiles`` (reading, batching, copies, forward)

and prints end-to-end / min(bounds) (goal >= 0.80; on an H100 also >= 8,000
tiles/s) and the peak host memory.

  python benchmarks/bench_inference.py                         # CPU here: small run
  python benchmarks/bench_inference.py --device cuda --side 50000 --tiles 20000 --batch 256 --workers 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _mosaic import real_tile_pool, write_mosaic_slide


def decode_rate(slide, grid, workers: int) -> float:
    from napari_histo.io.regions import iter_tiles

    start = time.perf_counter()
    count = sum(1 for _ in iter_tiles(slide, grid, workers=workers))
    return count / (time.perf_counter() - start)


def model_rate(model, spec, device, batch: int, seconds: float, channels_last: bool) -> float:
    import torch

    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255
    x = torch.randint(0, 255, (batch, spec.input_size, spec.input_size, 3), dtype=torch.uint8, device=device)
    cuda = device.type == "cuda"

    def step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            y = x.permute(0, 3, 1, 2).float()
            y = (y - mean) / std
            if cuda and channels_last:
                y = y.contiguous(memory_format=torch.channels_last)
            model(y).float().softmax(1)

    step()  # warm-up (and compilation)
    if cuda:
        torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        done += batch
    if cuda:
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def end_to_end_rate(slide, spec, grid, model, device, batch: int, workers: int, compile_model: bool) -> float:
    from napari_histo.core.progress import run_to_end
    from napari_histo.models.engine import InferenceConfig, predict_tiles

    config = InferenceConfig(device=str(device), batch_size=batch, workers=workers, compile=compile_model)
    result = run_to_end(predict_tiles(slide, spec, grid, model, config=config))
    return len(grid) / result.elapsed_s


def main() -> None:
    import psutil
    import torch

    from napari_histo.core.tiling import select_tiles
    from napari_histo.models import ModelSpec, create_network
    from napari_histo.models.loading import resolve_device
    from napari_histo.pipeline.session import open_session
    from napari_histo.pipeline.tissue import plan_grid

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=20_000, help="slide edge in pixels (level 0)")
    parser.add_argument("--tiles", type=int, default=384, help="224² tiles per measurement")
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_b0"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the bare-model timing")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "histo-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    pool = real_tile_pool(with_pcam=True)
    path = write_mosaic_slide(args.work / f"mosaic-pcam-{args.side}.svs", args.side, pool)
    device = resolve_device(args.device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({hardware}), torch {torch.__version__}, batch {args.batch}, {args.workers} threads"
    )
    results = {}
    with open_session(path) as session:
        slide = session.slide
        for name in args.models:
            classes = ("normal", "tumour")
            spec = ModelSpec(name, 2, classes, patch_size_pixels=224, spacing_um_px=0.5)
            grid = plan_grid(session, spec.spacing_um_px, spec.patch_size_pixels)
            rng = np.random.default_rng(0)
            start = int(rng.integers(0, max(1, len(grid) - args.tiles)))
            grid = select_tiles(grid, np.arange(start, min(len(grid), start + args.tiles)))
            model = create_network(spec).to(device).eval()
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            if args.compile:
                model = torch.compile(model)
            decode = decode_rate(slide, grid, args.workers)
            forward = model_rate(model, spec, device, args.batch, args.seconds, channels_last=True)
            e2e = end_to_end_rate(slide, spec, grid, model, device, args.batch, args.workers, False)
            bound = min(decode, forward)
            rss = psutil.Process().memory_info().rss / 2**20
            ok = e2e >= 0.8 * bound and (device.type != "cuda" or e2e >= 8000)
            verdict = "OK" if ok else "BELOW"
            print(
                f"{name:<16} decode {decode:9.1f}/s  model {forward:9.1f}/s  end-to-end {e2e:9.1f}/s"
                f"  = {e2e / bound:5.1%} of the smaller bound  [{verdict}]  RSS {rss:,.0f} MB",
                flush=True,
            )
            results[name] = {"decode": decode, "model": forward, "end_to_end": e2e, "ratio": e2e / bound}
            results[name].update({"rss_mb": rss, "tiles": len(grid)})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
