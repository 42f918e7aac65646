"""Log: what happened, newest last, in words; copy it all to the clipboard for a bug report."""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from app.bridge import NodeBridge
from app.pages import heading, note, tip
from app.state import clock
from core.i18n import tr
from core.names import village_name
from core.snapshot import (
    NodeEvent,
    NodeSnapshot,
    NodeStopped,
    ParticipationChanged,
    PauseChanged,
    PeerConnected,
    PeerDisconnected,
    ServiceFailed,
    SettingsChanged,
)

KEEP = 500


def describe(event: NodeEvent) -> str:
    if isinstance(event, PeerConnected):
        return tr("connected to {0}").format(village_name(event.peer_id))
    if isinstance(event, PeerDisconnected):
        return f"{village_name(event.peer_id)} disconnected"
    if isinstance(event, ServiceFailed):
        return (tr("{0} failed: {1} (restarting in {2:.0f} s)").format(
                event.service, event.error, event.restart_in))
    if isinstance(event, ParticipationChanged):
        return "participation " + (tr("switched on") if event.participating else tr("switched off"))
    if isinstance(event, PauseChanged):
        return (tr("paused until {0}").format(clock(event.paused_until)) if event.paused_until
                else "resumed")
    if isinstance(event, SettingsChanged):
        return tr("settings changed: ") + ", ".join(event.fields)
    if isinstance(event, NodeStopped):
        return tr("the node stopped: {0}").format(event.reason)
    return type(event).__name__


class LogPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.lines: deque[str] = deque(maxlen=KEEP)
        self.view = tip(QPlainTextEdit(), tr("Recent events of this village"), tr("Event log"))
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(KEEP)
        self.copy = tip(QPushButton(tr("Copy to clipboard")), tr("Copy every line above, "
                                                                 "e.g. for a "
                        "bug report"))
        self.copy.clicked.connect(self.copy_all)
        self.copied = note()
        row = QHBoxLayout()
        row.addWidget(self.copy)
        row.addWidget(self.copied, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Log")))
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        self._notices: tuple[str, ...] = ()
        bridge.event.connect(self.add_event)
        bridge.command_failed.connect(self.add)

    def add_event(self, event: NodeEvent) -> None:
        self.add(describe(event), event.at or None)

    def add(self, text: str, at: float | None = None) -> None:
        line = f"{clock(at or time.time())}  {text}"
        self.lines.append(line)
        self.view.appendPlainText(line)

    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText("\n".join(self.lines))
        self.copied.setText(tr("copied {0} lines").format(len(self.lines)))

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        shown = snap.errors + snap.notices
        for text in shown:
            if text not in self._notices:
                self.add(text)
        self._notices = shown
