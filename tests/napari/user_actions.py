"""What a user does to a dock, on its native Qt widgets: click a button, type into a field, pick an item.

Shared by the napari tests that drive docks with real clicks (never by calling widget methods).
"""

from __future__ import annotations

from typing import Any


def click(qtbot: Any, widget: Any) -> None:
    """A left click on the widget's native button or check box."""
    from qtpy.QtCore import Qt

    qtbot.mouseClick(widget.native, Qt.MouseButton.LeftButton)


def type_text(qtbot: Any, widget: Any, text: str) -> None:
    """Select the field's text and type ``text`` over it, then Enter (a spin box or a file field)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QAbstractSpinBox, QLineEdit

    native = widget.native
    edit = native if isinstance(native, QAbstractSpinBox | QLineEdit) else native.findChild(QLineEdit)
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Enter)


def pick(widget: Any, text: str) -> None:
    """Choose ``text`` in a drop-down, as a user does."""
    index = widget.native.findText(text)
    assert index >= 0, f"{text!r} not in {[widget.native.itemText(i) for i in range(widget.native.count())]}"
    widget.native.setCurrentIndex(index)
