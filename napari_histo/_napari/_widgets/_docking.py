"""The plugin's docks open as tabs of one dock area, not stacked (four stacked docks outgrow 1080 px).

napari docks a plugin widget on its own when it is opened from the Plugins or
Layers menu.  Each napari-histo dock calls :func:`tabify_when_docked` in its
constructor; once napari has docked it, it joins the tabs of any other
napari-histo dock already shown and comes to the front.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QWidget

__all__ = ["HISTO_DOCK", "tabify_when_docked"]

HISTO_DOCK = "napari_histo_dock"  # a Qt property on each dock's widget


def tabify_when_docked(widget: Any) -> None:
    """After the event loop docks ``widget`` (a magicgui container), tabify it with the other histo docks."""
    native: QWidget = widget.native
    native.setProperty(HISTO_DOCK, True)
    QTimer.singleShot(0, lambda: _tabify(native))


def _dock_of(native: QWidget) -> QDockWidget | None:
    parent = native.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def _tabify(native: QWidget) -> None:
    try:
        dock = _dock_of(native)
    except RuntimeError:  # the widget was deleted before the event loop came back
        return
    if dock is None or not isinstance(window := dock.parentWidget(), QMainWindow):
        return
    area = window.dockWidgetArea(dock)
    others = [
        other
        for other in window.findChildren(QDockWidget)
        if other is not dock
        and other.isVisible()
        and not other.isFloating()
        and window.dockWidgetArea(other) == area
        and other.widget() is not None
        and _holds_histo_widget(other)
    ]
    if not others or dock in window.tabifiedDockWidgets(others[0]):
        return
    window.tabifyDockWidget(others[0], dock)
    dock.show()
    dock.raise_()


def _holds_histo_widget(dock: QDockWidget) -> bool:
    inner = dock.widget()
    widgets = [inner, *inner.findChildren(QWidget)] if inner is not None else []
    return any(bool(w.property(HISTO_DOCK)) for w in widgets)
