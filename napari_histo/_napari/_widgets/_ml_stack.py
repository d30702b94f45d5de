"""Load PyTorch and timm safely inside napari, once, before a worker needs them.

A fresh napari crashed with a segmentation fault on the first model run:
timm → torchvision → torch._dynamo imports triton, whose native library carries
its own LLVM, and loading it into a process where Mesa's OpenGL driver has
already loaded the system LLVM (napari's canvas under Xvfb/llvmpipe, and Mesa
drivers generally) crashes during initialisation.  The napari widgets never use
``torch.compile`` (triton's only use), so :func:`ensure_ml_stack` marks triton as
unavailable in the viewer process before importing torch and timm; torch then
runs eagerly as usual.  Headless runs (``histo predict``, training) are untouched.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ensure_ml_stack", "in_worker"]

_LOADED = False


def ensure_ml_stack() -> None:
    """Import torch and timm (with torchvision) in the viewer process without triton, once."""
    global _LOADED
    if _LOADED:
        return
    # a None entry makes `import triton` raise ImportError, which torch treats as "no triton"
    sys.modules.setdefault("triton", None)  # type: ignore[arg-type]
    import timm  # noqa: F401 - imported for its side effect: loading torch and torchvision here
    import torch  # noqa: F401

    _LOADED = True


def in_worker(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a plain function or a generator verb) that first loads torch and timm, for a worker.

    Loading them takes seconds (the first model run froze napari for ~22 s when it
    happened on the main thread); in a worker thread the viewer stays responsive.
    """
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def verb(*args: Any, **kwargs: Any) -> Any:
            ensure_ml_stack()
            return (yield from function(*args, **kwargs))

        return verb

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        ensure_ml_stack()
        return function(*args, **kwargs)

    return call
