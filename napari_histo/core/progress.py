"""The one convention for long work: a generator that yields progress and returns its result.

Every long verb of napari-histo (planning a tissue grid, predicting a slide,
exporting tiles, fine-tuning ...) is a generator that yields :class:`Progress`
items (or a subclass carrying more, such as a batch of predictions) and
*returns* its result.  The CLI draws a progress bar from the items, napari's
``thread_worker`` turns them into ``yielded`` signals and the return value into
``returned``, and scripts that only want the result call :func:`run_to_end`::

    result = run_to_end(predict_slide(session, model), on_progress=print)
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Progress", "Work", "run_to_end"]

P = TypeVar("P", bound="Progress")
R = TypeVar("R")

#: The type of a long verb: yields progress, returns its result.
Work = Generator[P, None, R]


@dataclass(frozen=True)
class Progress:
    """How far a long job is: ``done`` of ``total`` units of ``stage``."""

    done: int
    total: int
    stage: str = ""

    @property
    def fraction(self) -> float:
        """``done / total`` in [0, 1] (1 when there is nothing to do)."""
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0


def run_to_end(work: Generator[Any, None, R], on_progress: Callable[[Any], None] | None = None) -> R:
    """Drive a long verb to its end, passing each progress item to ``on_progress``; return its result."""
    while True:
        try:
            item = next(work)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(item)
