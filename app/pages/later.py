"""Credits: a part of Grove that does not run in this version. The page says so, and its
controls stay disabled with the reason, rather than showing numbers nobody earned."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFormLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, not_running, note, tip
from core.snapshot import NodeSnapshot

CREDITS_OFF = ("Credits are not counted in this version of Grove: the ledger of signed "
               "receipts is not part of it yet. Nothing here is earned, pending or rejected, "
               "and there is nothing to export.")


class CreditsPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.state = not_running(CREDITS_OFF)
        self.balance = note("none (not counted in this version)")
        self.export = tip(QPushButton("Export CSV…"), "Nothing to export: credits are not "
                          "counted in this version", "Export credits as CSV")
        self.export.setEnabled(False)
        form = QFormLayout()
        form.addRow("Balance:", self.balance)
        form.addRow("Pending / verified / rejected:", note("-"))
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Credits"))
        layout.addWidget(self.state)
        layout.addLayout(form)
        layout.addWidget(self.export)
        layout.addStretch(1)

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        pass
