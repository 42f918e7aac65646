"""The dashboard's pages. Each is a QWidget with `show_snapshot(snap)`; every control carries
a tooltip and an accessible name, and is reachable with the keyboard."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

W = TypeVar("W", bound=QWidget)


def tip(widget: W, text: str, name: str = "") -> W:
    widget.setToolTip(text)
    widget.setAccessibleName(name or text)
    return widget


def heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-size: 17px; font-weight: 600;")
    return label


def note(text: str = "", *, selectable: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def not_running(text: str) -> QLabel:
    """The honest line a page shows for a part of Grove that does not run yet."""
    label = note(text)
    label.setStyleSheet("background: #fef7e0; border: 1px solid #f9ab00; border-radius: 4px;"
                        " padding: 8px;")
    return label
