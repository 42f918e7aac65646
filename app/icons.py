"""Tray icons, from the SVGs in `resources/icons`."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from core.resources import read_text

STATES = ("off", "idle", "contributing", "paused", "relay", "offline", "error")


@cache
def icon_for(state: str) -> QIcon:
    renderer = QSvgRenderer(QByteArray(read_text(f"icons/tray-{state}.svg").encode()))
    icon = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        pm = QPixmap(size, size)
        pm.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pm)
        renderer.render(painter)
        painter.end()
        icon.addPixmap(pm)
    return icon
