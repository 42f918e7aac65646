"""The tray icon and its menu: Participate, pause/resume, Training projects, Open dashboard,
Quit. The icon and tooltip follow every snapshot (app.state decides); notifications are raised
for states the gardener should hear about, rate-limited and switchable."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.bridge import NodeBridge
from app.dashboard import Dashboard
from app.icons import icon_for
from app.state import Notice, Notifier, tray_state
from core.clock import tomorrow_at
from core.i18n import QT_TR_NOOP, tr
from core.snapshot import NodeSnapshot, NodeState

NO_TRAY = (QT_TR_NOOP("Your desktop shows no system tray, so Grove lives in this window; "
                      "closing it "
           "stops Grove. (On GNOME, the AppIndicator extension gives Grove its tray icon.)"))


class TrayController(QObject):
    quit_requested = Signal()

    def __init__(self, bridge: NodeBridge, icon: QSystemTrayIcon | None = None, *,
                 window: bool = False) -> None:
        """`window`: the desktop shows no tray (GNOME without the AppIndicator extension, a
        Wayland session without StatusNotifierItem): Grove lives as a normal window with a
        taskbar entry, says why once at the top of it, and closing the window quits."""
        super().__init__()
        self.bridge = bridge
        self.window = window
        self.dashboard = Dashboard(bridge)
        if window:
            self.dashboard.live_in_window(tr(NO_TRAY), self.quit_requested.emit)
        self.icon = icon or QSystemTrayIcon()
        self.menu = QMenu()
        self.menu.setToolTipsVisible(True)
        self.participate = QAction(tr("Participate"), self.menu, checkable=True)
        self.participate.setToolTip(tr("Lend this computer to the Grove network"))
        self.participate.triggered.connect(self._toggle_participation)
        self.pause_hour = QAction(tr("Pause for 1 hour"), self.menu)
        self.pause_hour.triggered.connect(lambda: self._pause(time.time() + 3600))
        self.pause_tomorrow = QAction(tr("Pause until tomorrow"), self.menu)
        self.pause_tomorrow.triggered.connect(lambda: self._pause(tomorrow_at(8, time.time())))
        self.resume = QAction(tr("Resume"), self.menu)
        self.resume.triggered.connect(
            lambda: self.bridge.run(self.bridge.handle.resume(), tr("Resuming")))
        self.restart = QAction(tr("Restart the village"), self.menu)
        self.restart.setToolTip(tr("The node stopped: start it again"))
        self.restart.triggered.connect(self.bridge.restart)
        self.training = QMenu(tr("Training projects"), self.menu)
        self.training.setToolTipsVisible(True)
        self.projects: dict[str, QAction] = {}
        self.notifications = QAction(tr("Notifications"), self.menu, checkable=True)
        self.notifications.setToolTip(tr("Tell me when Grove pauses, needs a relay or needs me"))
        self.open_dashboard = QAction(tr("Open dashboard"), self.menu)
        self.open_dashboard.triggered.connect(self.show_dashboard)
        self.quit = QAction(tr("Quit Grove"), self.menu)
        self.quit.triggered.connect(self.quit_requested.emit)
        self.menu.addAction(self.restart)
        self.menu.addAction(self.participate)
        for a in (self.pause_hour, self.pause_tomorrow, self.resume):
            self.menu.addAction(a)
        self.menu.addMenu(self.training)
        self.menu.addSeparator()
        self.menu.addAction(self.open_dashboard)
        self.menu.addAction(self.notifications)
        self.menu.addSeparator()
        self.menu.addAction(self.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.notifier = Notifier()
        self.notified: list[Notice] = []
        self.notifications.setChecked(self.notifier.enabled)
        self.notifications.toggled.connect(self._notifications)
        bridge.snapshot.connect(self.show_snapshot)
        bridge.command_failed.connect(lambda text: self.say(tr("Grove Village"), text, error=True))
        self.state = ""
        self.show_snapshot(bridge.latest())

    def show(self) -> None:
        if self.window:
            self.show_dashboard()
        else:
            self.icon.show()

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        now = time.time()
        st = tray_state(snap, now)
        if st.icon != self.state:
            self.icon.setIcon(icon_for(st.icon))
            self.state = st.icon
        self.icon.setToolTip(st.tooltip)
        running = snap.state is NodeState.RUNNING
        self.restart.setVisible(snap.state in (NodeState.STOPPED, NodeState.FAILED))
        self.participate.setChecked(snap.participating)
        self.participate.setEnabled(running)
        paused = snap.is_paused(now)
        self.resume.setVisible(paused)
        self.pause_hour.setVisible(not paused)
        self.pause_tomorrow.setVisible(not paused)
        for a in (self.resume, self.pause_hour, self.pause_tomorrow):
            a.setEnabled(running)
        self._show_projects(snap, running)
        if snap.settings is not None:
            self.notifier.enabled = snap.settings.notifications
            self.notifications.blockSignals(True)
            self.notifications.setChecked(snap.settings.notifications)
            self.notifications.blockSignals(False)
        for n in self.notifier.observe(snap, now):
            self.notified.append(n)
            self.say(n.title, n.text, error=n.kind == "error")

    def say(self, title: str, text: str, *, error: bool = False) -> None:
        """A notification: the tray's balloon, or in window mode the window's banner."""
        if self.window:
            self.dashboard.notice(f"{title}: {text}", error=error)
            return
        kind = (QSystemTrayIcon.MessageIcon.Critical if error
                else QSystemTrayIcon.MessageIcon.Information)
        self.icon.showMessage(title, text, kind, 10_000)

    def _show_projects(self, snap: NodeSnapshot, running: bool) -> None:
        """One checkable entry per project: checked = opted in; the tooltip says how it
        goes."""
        for view in snap.training:
            action = self.projects.get(view.project)
            if action is None:
                action = QAction(view.title, self.training, checkable=True)
                action.triggered.connect(
                    lambda on, name=view.project: self._opt(name, on))
                self.training.addAction(action)
                self.projects[view.project] = action
            action.blockSignals(True)
            action.setChecked(view.opted_in)
            action.blockSignals(False)
            action.setEnabled(running)
            acc = tr(", test accuracy {0:.1f}%").format(
                    100 * view.accuracy) if view.accuracy is not None \
                else ""
            action.setToolTip(tr("{0} (step {1}{2}; rule {3})").format(
                    view.status, view.epoch, acc, view.rule))

    def _opt(self, project: str, on: bool) -> None:
        snap = self.bridge.latest()
        chosen = [p for p in (snap.settings.training_projects if snap.settings else ())
                  if p != project] + ([project] if on else [])
        self.bridge.run(self.bridge.handle.update_settings(training_projects=tuple(chosen)),
                        (tr("Joining {0}") if on else tr("Leaving {0}")).format(project))

    def _notifications(self, on: bool) -> None:
        self.notifier.enabled = on
        self.bridge.run(self.bridge.handle.update_settings(notifications=on),
                        tr("Changing notifications"))

    def _toggle_participation(self, checked: bool) -> None:
        self.bridge.run(self.bridge.handle.set_participation(checked),
                        tr("Changing participation"))

    def _pause(self, until: float) -> None:
        self.bridge.run(self.bridge.handle.pause(until), tr("Pausing"))

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_dashboard()

    def show_dashboard(self, page: str = "") -> None:
        if page:
            self.dashboard.show_page(page)
        self.dashboard.show()
        self.dashboard.raise_()
        self.dashboard.activateWindow()
