"""A progress bar over a pipeline verb (a generator yielding progress, returning its result)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from napari_histo.core.progress import run_to_end

__all__ = ["run_with_bar"]

R = TypeVar("R")


def run_with_bar(work: Generator[Any, None, R], desc: str, unit: str = "it") -> R:
    """Drive ``work`` to its end with a tqdm bar that follows its ``done``/``total``; return its result.

    Shows tiles/s when the items carry ``elapsed_s``; off when stderr is not a terminal.
    """
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit, leave=True, disable=None) as bar:

        def show(item: Any) -> None:
            bar.total = item.total
            bar.n = item.done
            rate = getattr(item, "tiles_per_s", None)
            if rate:
                bar.set_postfix_str(f"{rate:,.0f} tiles/s")
            bar.refresh()

        return run_to_end(work, show)
