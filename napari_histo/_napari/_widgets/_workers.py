"""Starting a dock's thread worker: Cancel is enabled exactly while it runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["make_worker", "start_with_cancel"]


def start_with_cancel(worker: Any, cancel_button: Any) -> Any:
    """Enable ``cancel_button`` until ``worker`` finishes, start the worker and return it."""
    worker.finished.connect(lambda: setattr(cancel_button, "enabled", False))
    cancel_button.enabled = True
    worker.start()
    return worker


OnError = Callable[[BaseException], Any]


def make_worker(
    function: Callable[..., Any], *args: Any, on_error: OnError | None = None, **kwargs: Any
) -> Any:
    """A napari thread worker (not started) whose failure goes to ``on_error`` only.

    napari's workers re-raise an error on the main thread and post it as a
    notification with its traceback; a dock reports it instead, as one plain
    line (:func:`~napari_histo._napari._widgets._feedback.report`).
    """
    from napari.qt.threading import create_worker

    from napari_histo._napari._widgets._feedback import report

    handler = on_error if on_error is not None else (lambda exc: report(None, exc))
    worker = create_worker(function, *args, _start_thread=False, _connect={"errored": handler}, **kwargs)
    try:  # napari versions that post worker errors with their traceback: not for a dock's errors
        worker.errored.disconnect(worker._relay_error)
    except (AttributeError, TypeError, RuntimeError):
        pass  # not connected (napari 0.9): nothing else reports the error
    return worker
