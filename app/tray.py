"""The tray icon and its menu: Participate, Open dashboard, Quit."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.bridge import NodeBridge
from app.dashboard import Dashboard
from app.icons import icon_for
from app.state import tray_state
from core.clock import tomorrow_at
from core.snapshot import NodeSnapshot


class TrayController(QObject):
    quit_requested = Signal()

    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.dashboard = Dashboard(bridge)
        self.icon = QSystemTrayIcon()
        self.menu = QMenu()
        self.participate = QAction("Participate", self.menu, checkable=True)
        self.participate.setToolTip("Lend this computer to the Grove network")
        self.participate.triggered.connect(self._toggle_participation)
        self.pause_hour = QAction("Pause for 1 hour", self.menu)
        self.pause_hour.triggered.connect(lambda: self._pause(time.time() + 3600))
        self.pause_tomorrow = QAction("Pause until tomorrow", self.menu)
        self.pause_tomorrow.triggered.connect(lambda: self._pause(tomorrow_at(8, time.time())))
        self.resume = QAction("Resume", self.menu)
        self.resume.triggered.connect(
            lambda: self.bridge.run(self.bridge.handle.resume(), "Resuming"))
        self.open_dashboard = QAction("Open dashboard", self.menu)
        self.open_dashboard.triggered.connect(self.show_dashboard)
        self.quit = QAction("Quit Grove", self.menu)
        self.quit.triggered.connect(self.quit_requested.emit)
        self.menu.addAction(self.participate)
        for a in (self.pause_hour, self.pause_tomorrow, self.resume):
            self.menu.addAction(a)
        self.menu.addSeparator()
        self.menu.addAction(self.open_dashboard)
        self.menu.addSeparator()
        self.menu.addAction(self.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        bridge.snapshot.connect(self.show_snapshot)
        self.state = ""
        self.show_snapshot(bridge.latest())

    def show(self) -> None:
        self.icon.show()

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        st = tray_state(snap, time.time())
        if st.icon != self.state:
            self.icon.setIcon(icon_for(st.icon))
            self.state = st.icon
        self.icon.setToolTip(st.tooltip)
        self.participate.setChecked(snap.participating)
        paused = snap.is_paused()
        self.resume.setVisible(paused)
        self.pause_hour.setVisible(not paused)
        self.pause_tomorrow.setVisible(not paused)

    def _toggle_participation(self, checked: bool) -> None:
        self.bridge.run(self.bridge.handle.set_participation(checked),
                        "Changing participation")

    def _pause(self, until: float) -> None:
        self.bridge.run(self.bridge.handle.pause(until), "Pausing")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_dashboard()

    def show_dashboard(self) -> None:
        self.dashboard.show()
        self.dashboard.raise_()
        self.dashboard.activateWindow()
