"""napari starts fast: the reader and widget modules load no torch or timm."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import napari_histo._napari
import napari_histo._napari._widgets


def _napari_modules() -> list[str]:
    names = [f"napari_histo._napari.{m.name}" for m in pkgutil.iter_modules(napari_histo._napari.__path__)]
    widgets = napari_histo._napari._widgets
    names += [f"{widgets.__name__}.{m.name}" for m in pkgutil.iter_modules(widgets.__path__)]
    return [name for name in names if not name.endswith("._widgets")]


def test_reader_and_widget_modules_do_not_import_torch():
    modules = _napari_modules()
    assert "napari_histo._napari.reader" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_package_init_is_light():
    code = (
        "import sys, napari_histo; print(sorted(m for m in ('numpy', 'napari', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
