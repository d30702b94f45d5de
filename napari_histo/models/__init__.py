"""Model specs, the network registry and weight loading (torch imported lazily).

``ModelSpec``/``load_spec`` need no torch; ``load_model``/``save_model``/
``create_network`` import it on first use.
"""

from __future__ import annotations

from typing import Any

from napari_histo.models.spec import ModelSpec, ModelSpecError, Task, load_spec, save_spec

__all__ = [
    "ModelSpec",
    "ModelSpecError",
    "Task",
    "create_network",
    "load_model",
    "load_spec",
    "save_model",
    "save_spec",
]

_LAZY = {
    "load_model": "napari_histo.models.loading",
    "save_model": "napari_histo.models.loading",
    "create_network": "napari_histo.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_histo.models' has no attribute {name!r}")
