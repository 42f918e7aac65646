"""Training and Credits: parts of Grove that do not run in this version. The pages say so,
and their controls stay disabled with the reason, rather than showing numbers nobody earned."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFormLayout,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, not_running, note, tip
from core.snapshot import NodeSnapshot

TRAINING_OFF = ("Collaborative training does not run in this version of Grove. No project can "
                "be joined yet, and nothing trains on this computer; this page will list the "
                "projects you can opt in to, their progress and the samples you contributed.")
CREDITS_OFF = ("Credits are not counted in this version of Grove: the ledger of signed "
               "receipts is not part of it yet. Nothing here is earned, pending or rejected, "
               "and there is nothing to export.")


class TrainingPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.state = not_running(TRAINING_OFF)
        self.projects = tip(QListWidget(), "Training projects you may opt in to (none are "
                            "offered in this version)", "Training projects")
        self.projects.setEnabled(False)
        self.samples = note("0 (no project joined)")
        form = QFormLayout()
        form.addRow("Samples contributed:", self.samples)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Training"))
        layout.addWidget(self.state)
        layout.addWidget(self.projects, 1)
        layout.addLayout(form)

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        self.projects.setToolTip("No training projects are offered in this version")


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
