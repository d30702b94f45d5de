"""Does napari stay responsive while a model runs?  Frame times while panning, idle vs during inference.

Opens a slide in a real napari window (run under ``xvfb-run``), pans the camera
step by step and times each frame (the main thread's event processing after a
camera move: redraw plus whatever else the GUI thread had to do).  Then starts
the "Run a model" dock on the whole slide (a worker thread) and pans again while
it runs.  Prints median / 95th percentile / max frame times for both and the
inference throughput reached meanwhile.

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/bench_viewer_responsiveness.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED_CMU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"


def pan_frames(viewer, app, frames: int, step_um: float) -> list[float]:
    """Move the camera ``frames`` times; return each frame's GUI-thread time in ms."""
    from napari_histo._napari._widgets._view import viewer_camera

    camera = viewer_camera(viewer)
    times = []
    for i in range(frames):
        direction = 1 if (i // 20) % 2 == 0 else -1  # back and forth over the slide
        start = time.perf_counter()
        camera.center = (camera.center[0], camera.center[1] + direction * step_um)
        app.processEvents()
        times.append(1000 * (time.perf_counter() - start))
        time.sleep(0.016)  # ~60 Hz input, as a dragging hand
    return times


def describe(times: list[float]) -> str:
    p95 = float(np.percentile(times, 95))
    return f"median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  max {max(times):6.1f} ms"


def main() -> None:
    import napari
    import torch

    from napari_histo._napari._widgets._view import viewer_camera
    from napari_histo._napari._widgets.inference import InferenceWidget
    from napari_histo.models import ModelSpec, create_network, save_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slide", type=Path, default=SHARED_CMU)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", default="resnet18")
    args = parser.parse_args()

    spec = ModelSpec(args.model, 2, ("normal", "tumour"), patch_size_pixels=96, spacing_um_px=1.0)
    model_dir = save_model(create_network(spec), spec, Path(tempfile.mkdtemp()) / "model")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    app = napari.qt.get_qapp()
    layer = viewer.open(str(args.slide), plugin="napari-histo")[0]
    viewer.reset_view()
    viewer_camera(viewer).zoom *= 4  # zoomed in: panning loads new tiles
    app.processEvents()
    pan_frames(viewer, app, 20, 20.0)  # warm-up: first tiles, shaders
    idle = pan_frames(viewer, app, args.frames, 20.0)

    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.layer.value = layer
    widget.model_dir.value = model_dir
    widget.min_tissue.value = 0.0
    widget.device.value = "auto"
    progress: list[tuple[float, int]] = []
    worker = widget.run()
    worker.yielded.connect(lambda v: progress.append((time.perf_counter(), v[0])))
    busy = []
    while not widget.export_button.enabled and len(busy) < 20 * args.frames:
        busy += pan_frames(viewer, app, 10, 20.0)
    rate = (progress[-1][1] - progress[0][1]) / (progress[-1][0] - progress[0][0]) if len(progress) > 1 else 0
    print(f"slide {args.slide.name}, model {args.model} on {widget.device.value}, torch threads "
          f"{torch.get_num_threads()}")  # fmt: skip
    print(f"panning, idle:             {describe(idle)}  ({len(idle)} frames)")
    print(f"panning, model running:    {describe(busy)}  ({len(busy)} frames, inference {rate:.1f} tiles/s)")
    slow = sum(t > 100 for t in busy)
    print(f"frames over 100 ms while the model ran: {slow} of {len(busy)}")
    viewer.close()


if __name__ == "__main__":
    main()
