"""A model resolved once: its directory, its spec (read once) and its network (loaded on first use)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_histo.models.loading import BUILTIN_MODELS_DIR, resolve_model_dir
from napari_histo.models.spec import ModelSpec, load_spec

__all__ = ["DEFAULT_MODEL", "ModelHandle", "builtin_model_names", "resolve_model"]

#: The model shipped with napari-histo that the demo and the docks start with.
DEFAULT_MODEL = "pcam-mobilenetv2"


@dataclass
class ModelHandle:
    """A model directory with its :class:`ModelSpec`; :meth:`network` loads the weights once.

    Make one with :func:`resolve_model`.  Loading imports torch, so a handle is
    cheap to make (the spec is JSON) and the network is loaded where it runs —
    in a worker thread in napari, in the job in a cohort.
    """

    directory: Path
    spec: ModelSpec
    device: str = "auto"
    _network: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name or self.directory.name

    def network(self) -> Any:
        """The ``torch.nn.Module`` in eval mode on :attr:`device` (loaded on the first call)."""
        with self._lock:
            if self._network is None:
                from napari_histo.models.loading import load_model

                self._network = load_model(self.directory, device=self.device, spec=self.spec)
            return self._network


def resolve_model(model: str | os.PathLike[str] | ModelHandle, device: str = "auto") -> ModelHandle:
    """A :class:`ModelHandle` from a model directory, a built-in model name, or a handle (returned as is)."""
    if isinstance(model, ModelHandle):
        return model
    directory = resolve_model_dir(model)
    return ModelHandle(directory, load_spec(directory), device)


def builtin_model_names() -> list[str]:
    """Names of the models shipped with napari-histo (each usable wherever a model is asked for)."""
    if not BUILTIN_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_MODELS_DIR.iterdir() if (p / "model.json").exists())
