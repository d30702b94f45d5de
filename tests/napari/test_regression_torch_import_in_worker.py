"""Regression: the first model run in a fresh napari crashed with a segmentation fault.

timm → torchvision → torch._dynamo imported triton, whose native library (with its own
LLVM) crashed when loaded after Mesa's OpenGL driver had loaded the system LLVM for
napari's canvas.  The docks now load torch and timm without triton in the viewer
process (see ``_ml_stack``).  This runs in a fresh interpreter, since the test process
has long imported timm itself (before any OpenGL).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import shared_file

SCRIPT = """
import sys, time
import napari
from napari_histo._napari.journey_viewer import show_journey
assert "timm" not in sys.modules
app = napari.qt.get_qapp()
viewer, docks = show_journey(sys.argv[1], None, "pcam-mobilenetv2", block=False)
infer = docks["infer"]
infer.builtin.value = "pcam-mobilenetv2"
infer.device.value = "cpu"
infer.run()
deadline = time.time() + 240
while not infer.export_button.enabled and time.time() < deadline:
    app.processEvents()
    time.sleep(0.05)
print("RESULT", infer.summary.value)
"""


@pytest.mark.qt
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (run under xvfb-run)")
def test_first_model_run_in_a_fresh_napari_does_not_crash(tmp_path):
    pytest.importorskip("torch")
    slide = shared_file("wsi", "CMU-1-Small-Region.svs")
    env = {**os.environ, "HISTO_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(slide)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESULT" in done.stdout
    assert " tiles in " in done.stdout
