"""Make the README's screenshots with a real napari window (run under xvfb-run).

    xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/make_screenshots.py

CMU-1-Small-Region is opened through the plugin's sample-data entry, exactly as a
user would from File > Open Sample > napari-histo.  Offline, the download is
seeded from ../shared/data/wsi when that folder exists.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
SHARED_CMU1 = REPO.parent / "shared" / "data" / "wsi" / "CMU-1-Small-Region.svs"


def main() -> int:
    os.environ.setdefault("HISTO_CACHE_DIR", tempfile.mkdtemp(prefix="histo-shots-"))
    import imagecodecs
    import napari
    import numpy as np

    from napari_histo._napari.viewer import show_scale_bar
    from napari_histo.data import cmu_small_region_path

    if SHARED_CMU1.exists():
        cmu_small_region_path(url=SHARED_CMU1.as_uri())  # offline: seed the cache from shared data
    OUT.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-histo", show=True)
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-histo", "cmu1-small-region")
    show_scale_bar(viewer)
    viewer.reset_view()
    napari.qt.get_qapp().processEvents()
    path = OUT / "cmu1-small-region.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")

    viewer.layers.clear()
    viewer.open_sample("napari-histo", "synthetic-he")
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    camera.zoom *= 6  # zoomed in: level-0 tiles, nuclei visible
    napari.qt.get_qapp().processEvents()
    path = OUT / "synthetic-he-zoomed.jpg"
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    path.write_bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(pixels[..., :3]), level=85))
    print(f"wrote {path}")
    viewer.close()

    # the journey: CMU-1, the shipped model run from its dock (classes, heatmap, legend, area table)
    import time

    from napari_histo._napari.journey_viewer import show_journey

    viewer, docks = show_journey(cmu_small_region_path(), None, "pcam-mobilenetv2", block=False)
    viewer.window.resize(1500, 950)
    infer = docks["infer"]
    infer.min_tissue.value = 0.25
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    QTest.mouseClick(infer.run_button.native, Qt.MouseButton.LeftButton)  # as a user does
    app = napari.qt.get_qapp()
    deadline = time.time() + 300
    while not infer.export_button.enabled and time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    dock = viewer.window.dock_widgets.get("3. Run a model")  # show its tab
    if dock is not None:
        dock.native.parent().raise_() if hasattr(dock, "native") else dock.parent().raise_()
    viewer.reset_view()
    app.processEvents()
    path = OUT / "journey-cmu1.jpg"
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    path.write_bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(pixels[..., :3]), level=85))
    print(f"wrote {path}: {infer.summary.value}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
