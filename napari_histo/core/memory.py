"""Memory budgets: refuse an allocation that cannot fit before making it.

:func:`check_allocation` is called before every array whose size comes from
the input (a slide's claimed pixels, a grid from a user's µm/px, a label image
from a requested shape), so a damaged header or an absurd option ends in one
:class:`~napari_histo.errors.MemoryBudgetError` naming the size and the fix
instead of a multi-terabyte ``MemoryError`` (or the machine swapping).

The budget is half of the memory available now (``psutil``, else
``/proc/meminfo``, else 8 GiB); the environment variable
``NAPARI_HISTO_MEMORY_BUDGET`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix)
overrides it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_histo.errors import MemoryBudgetError

__all__ = ["BUDGET_ENV", "check_allocation", "format_bytes", "memory_budget"]

#: environment variable that sets the budget (e.g. ``16G``)
BUDGET_ENV = "NAPARI_HISTO_MEMORY_BUDGET"
_FALLBACK_BYTES = 8 * 2**30
_SUFFIXES = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def memory_budget() -> int:
    """Bytes one allocation may take: ``$NAPARI_HISTO_MEMORY_BUDGET``, else half the available memory."""
    return _budget()[0]


def _budget() -> tuple[int, str]:
    text = os.environ.get(BUDGET_ENV, "").strip().upper().removesuffix("IB").removesuffix("B")
    if text:
        number, suffix = (text[:-1], text[-1]) if text[-1] in _SUFFIXES else (text, "")
        try:
            value = float(number) * _SUFFIXES[suffix]
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            return int(value), f"set by {BUDGET_ENV}"
    return _available_bytes() // 2, f"half the memory available now; {BUDGET_ENV} changes it"


def _available_bytes() -> int:
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or failing: fall back below
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _FALLBACK_BYTES


def format_bytes(n: float) -> str:
    """``2.7 TiB``, ``197 GiB``, ``512 MiB`` ... (binary units)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{int(n)} bytes"


def check_allocation(shape: Sequence[int] | int, dtype: Any, what: str, fix: str) -> int:
    """Raise :class:`MemoryBudgetError` if an array of ``shape`` and ``dtype`` would exceed the budget.

    Parameters
    ----------
    shape : int or sequence of int
        The array's shape (or a number of elements).
    dtype : numpy dtype-like
    what : str
        What the array is, for the message (``"slide.svs level 0 (1,000,000 x 1,000,000 px)"``).
    fix : str
        What the user can do (``"use a coarser --mpp"``).

    Returns
    -------
    int
        The array's size in bytes (when it fits).
    """
    dims = [int(shape)] if isinstance(shape, (int, np.integer)) else [int(n) for n in shape]
    nbytes = math.prod(max(0, n) for n in dims) * np.dtype(dtype).itemsize
    budget, source = _budget()
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(nbytes)} of memory, more than the {format_bytes(budget)} allowed "
            f"({source}): {fix}"
        )
    return nbytes
