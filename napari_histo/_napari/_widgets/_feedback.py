"""What a dock says when something goes wrong: one plain line in the dock and a notification, no traceback.

Button callbacks run through :func:`guarded`; worker failures through
:func:`report`.  A napari-histo error (:class:`~napari_histo.errors.HistoError`)
already names the value and the fix; anything else is reported as an
unexpected failure with its type, and logged with its traceback for a bug report.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from napari_histo.errors import HistoError

__all__ = ["guarded", "plain_message", "report", "wrap_text"]

log = logging.getLogger(__name__)


def plain_message(exc: BaseException) -> str:
    """One line for a person: the project's message as is, else the kind of failure and its text."""
    text = " ".join(str(exc).split())
    if isinstance(exc, HistoError):
        return text
    log.error("unexpected failure in a napari-histo dock", exc_info=exc)
    return f"unexpected {type(exc).__name__}: {text} (please report it; details are in the log)"


def report(label: Any, exc: BaseException) -> str:
    """Show ``exc`` in the dock's result ``label`` and as a napari notification; returns the message."""
    message = plain_message(exc)
    if label is not None:
        label.value = f"⚠ {message}"
        label.tooltip = message
    try:
        from napari.utils.notifications import show_error

        show_error(message)
    except Exception:  # noqa: BLE001 - without napari's notification manager the label is enough
        log.warning(message)
    return message


def guarded(label_of: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a dock method so an exception is reported (in ``label_of(self)``), never raised."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a dock must never crash napari or show a traceback
                report(label_of(self), exc)
                return None

        return run

    return decorate


def wrap_text(*labels: Any) -> None:
    """Let long messages wrap inside the dock instead of widening it until the slide is a strip."""
    from qtpy.QtWidgets import QSizePolicy

    for label in labels:
        label.native.setWordWrap(True)
        label.native.setMinimumWidth(1)
        # take the row's whole width (a word-wrapped label otherwise settles for its narrowest)
        label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
