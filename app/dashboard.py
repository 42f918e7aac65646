"""The dashboard window: a sidebar of pages over the live snapshot. Close hides it to the tray.

While hidden it only keeps the history the charts need; pages are drawn when shown, so an idle
tray costs next to nothing."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QStackedWidget, QVBoxLayout, QWidget

from app.bridge import NodeBridge
from app.pages import note, tip
from app.pages.credits import CreditsPage
from app.pages.health import HealthPage
from app.pages.log import LogPage
from app.pages.overview import OverviewPage
from app.pages.personas import PersonasPage
from app.pages.resources import ResourcesPage
from app.pages.training import TrainingPage
from app.state import HealthHistory
from core.i18n import QT_TR_NOOP, tr
from core.snapshot import NodeSnapshot

PAGES = (QT_TR_NOOP("Overview"), QT_TR_NOOP("Resources"), QT_TR_NOOP("Training"),
    QT_TR_NOOP("Personas"), QT_TR_NOOP("Village health"), QT_TR_NOOP("Credits"), QT_TR_NOOP("Log"))


class Dashboard(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.setWindowTitle(tr("Grove Village"))
        self.resize(900, 640)
        self.bridge = bridge
        self._latest = bridge.latest()
        self.history = HealthHistory()
        self.overview = OverviewPage(bridge)
        self.resources = ResourcesPage(bridge)
        self.training = TrainingPage(bridge)
        self.personas = PersonasPage(bridge)
        self.health = HealthPage(bridge, self.history)
        self.credits = CreditsPage(bridge)
        self.log = LogPage(bridge)
        self.pages = (self.overview, self.resources, self.training, self.personas,
                      self.health, self.credits, self.log)
        self.sidebar = tip(QListWidget(), tr("Pages (Ctrl+1 to Ctrl+7)"), tr("Pages"))
        self.sidebar.addItems([tr(p) for p in PAGES])
        self.sidebar.setFixedWidth(150)
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self._page_changed)
        for i in range(len(PAGES)):
            QShortcut(QKeySequence(f"Ctrl+{i + 1}"), self,
                      activated=lambda i=i: self.sidebar.setCurrentRow(i))
        self.banner = note()
        self.banner.setVisible(False)
        self.banner.setAccessibleName(tr("Notice"))
        self._on_close: Callable[[], None] | None = None
        columns = QHBoxLayout()
        columns.addWidget(self.sidebar)
        columns.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(columns, 1)
        self.sidebar.setCurrentRow(0)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        bridge.snapshot.connect(self.show_snapshot)
        self.show_snapshot(self._latest)

    def show_page(self, name: str) -> None:
        """By title (case-insensitive) or the first word of it: "health", "log"."""
        for i, title in enumerate(PAGES):
            if name.lower() in (title.lower(), title.lower().split()[-1]):
                self.sidebar.setCurrentRow(i)
                return
        raise ValueError(f"no page {name!r}; pages: {', '.join(PAGES)}")

    def current_page(self) -> str:
        return PAGES[self.stack.currentIndex()]

    def _page_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        self.pages[row].show_snapshot(self._latest)

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        self._latest = snap
        self.history.observe(snap)
        self.log.show_snapshot(snap)  # the log keeps every notice, shown or not
        if self.isVisible():
            self.stack.currentWidget().show_snapshot(snap)  # type: ignore[attr-defined]

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.stack.currentWidget().show_snapshot(self._latest)  # type: ignore[attr-defined]

    def live_in_window(self, why: str, on_close: Callable[[], None]) -> None:
        """No tray: this is Grove's window (a taskbar entry); `why` stays at its top, and
        closing it calls `on_close` (quit) instead of hiding to a tray that is not there."""
        self._on_close = on_close
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.notice(why)

    def notice(self, text: str, *, error: bool = False) -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(
            "padding: 6px; border-radius: 4px; "
            + ("background: #fce8e6; color: #a50e0e;" if error
               else "background: #e8f0fe; color: #174ea6;"))
        self.banner.setVisible(True)

    def closeEvent(self, event: QCloseEvent) -> None:  # close hides to the tray
        if self._on_close is not None:
            event.accept()
            self._on_close()
            return
        event.ignore()
        self.hide()
