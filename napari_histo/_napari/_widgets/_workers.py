"""Starting a dock's thread worker: Cancel is enabled exactly while it runs."""

from __future__ import annotations

from typing import Any

__all__ = ["start_with_cancel"]


def start_with_cancel(worker: Any, cancel_button: Any) -> Any:
    """Enable ``cancel_button`` until ``worker`` finishes, start the worker and return it."""
    worker.finished.connect(lambda: setattr(cancel_button, "enabled", False))
    cancel_button.enabled = True
    worker.start()
    return worker
