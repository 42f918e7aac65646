"""Credits: what this village earned for verified work, from its ledger of signed receipts.

Balance (verified), today and this week, pending / verified / rejected, by kind of work, a
30-day history chart, the latest credit events with the reason for each rejection, what each
kind of work earns, and an export of every event as CSV. When crediting is paused (a damaged
ledger file, a full disk) the page says why in plain words."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.charts import BarChart
from app.pages import heading, note, tip
from core import humanize as hz
from core.names import village_name
from core.snapshot import CreditsView, NodeSnapshot


def short_credits(x: float) -> str:
    """A bar's label: the number alone ("10.2", "1,234")."""
    return hz.credits(x).removesuffix(" credits").removesuffix(" credit")


STATUS_WORDS = {"pending": "waiting for checks", "verified": "verified",
                "rejected": "rejected"}

COLUMNS = ("When", "Work", "For", "Credits", "Status", "Why")
NAMES = {"swarm": "serving a model", "training": "training", "averaging": "averaging",
         "relay": "relaying", "stake": "stake taken by rulings", "challenge": "challenges"}
UNITS = {"swarm": ("sample served", "samples served"),
         "training": ("training sample", "training samples"),
         "averaging": ("averaging round", "averaging rounds"),
         "relay": ("byte relayed", "bytes relayed")}


class CreditsPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.state = note("")
        self.state.setStyleSheet("color: #b3261e;")
        self.balance = note("-")
        self.honoured = tip(note("-"), "Verified credit earned from villages this village "
                            "trusts: pre-trusted ones, and those whose work passed its own "
                            "sampled checks. Credit from villages nobody vouches for may not "
                            "be honoured by the network.", "Honoured credit")
        self.periods = note("-")
        self.split = note("-")
        self.rates = note("-")
        self.assurance = tip(note("-"), "Service levels: the credits this village stakes to "
                             "serve checked and assured work (a failed check takes half), "
                             "what rulings on its work took, what its challenges of others' "
                             "work won or cost, and how its own checks of others came out.",
                             "Stake and checks")
        self.kinds = tip(BarChart("Verified credit by kind of work", "Nothing verified yet.",
                                  fmt=short_credits),
                         "Verified credit by kind of work", "Credit by kind")
        self.history = tip(BarChart("Verified credit per day (last 30 days)",
                                    "No verified credit in the last 30 days.",
                                    fmt=short_credits, one_colour=True),
                           "Verified credit per day", "Credit history")
        self.events = tip(QTableWidget(0, len(COLUMNS)), "The latest credit events",
                          "Credit events")
        self.events.setHorizontalHeaderLabels(COLUMNS)
        self.events.verticalHeader().setVisible(False)
        self.events.horizontalHeader().setStretchLastSection(True)
        self.export = tip(QPushButton("Export CSV…"), "Save every credit event as a CSV file",
                          "Export credits as CSV")
        self.export.clicked.connect(self._export_clicked)
        self.exported = note("")
        form = QFormLayout()
        form.addRow("Balance:", self.balance)
        form.addRow("Honoured:", self.honoured)
        form.addRow("Earned:", self.periods)
        form.addRow("Pending / verified / rejected:", self.split)
        form.addRow("What work earns:", self.rates)
        form.addRow("Stake and checks:", self.assurance)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Credits"))
        layout.addWidget(self.state)
        layout.addLayout(form)
        layout.addWidget(self.kinds)
        layout.addWidget(self.history)
        layout.addWidget(self.events, 1)
        layout.addWidget(self.export)
        layout.addWidget(self.exported)
        self._view = CreditsView()
        self._villages: tuple[Any, ...] = ()

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        v = snap.credits
        if v == self._view and snap.villages == self._villages:
            return
        self._villages = snap.villages
        self._view = v
        self.state.setText(v.paused or ("" if v.running else "The ledger is not open yet."))
        self.state.setVisible(bool(self.state.text()))
        if not v.running:
            for label in (self.balance, self.honoured, self.periods, self.split, self.rates,
                          self.assurance):
                label.setText(hz.NOT_MEASURED)
        else:
            self.balance.setText(f"{hz.credits(v.balance)} (verified, from "
                                 f"{hz.plural(v.receipts, 'receipt')})")
            self.honoured.setText(
                f"{hz.credits(v.honoured)} earned from villages you trust "
                f"({hz.plural(v.trusted, 'village')} trusted: pre-trusted, whose work passed "
                "this village's checks, or whose work villages you trust checked)")
            self.periods.setText(f"today {hz.credits(v.today)} · this week "
                                 f"{hz.credits(v.this_week)}")
            self.split.setText(f"{hz.credits(v.pending)} waiting for checks · "
                               f"{hz.credits(v.balance)} verified · "
                               f"{hz.credits(v.rejected)} rejected")
            self.rates.setText("; ".join(f"{NAMES.get(k, k)}: {hz.credit_rate(r, *UNITS[k])}"
                                         if k in UNITS else f"{NAMES.get(k, k)}: {r:g} a unit"
                                         for k, r in v.rates))
            self.assurance.setText(assurance_words(v))
        self.kinds.set_bars([(NAMES.get(k, k), c) for k, c in v.by_kind if c > 0])
        self.history.set_bars([(time.strftime("%d %b", time.strptime(d, "%Y-%m-%d")), c)
                               for d, c in v.history if c > 0][-14:])
        self.events.setRowCount(len(v.events))
        names = {x.peer_id: x.name for x in snap.villages}
        for row, e in enumerate(v.events):
            cells = (hz.at_clock(e.at), NAMES.get(e.kind, e.kind),
                     names.get(e.peer) or village_name(e.peer) if e.peer else "-",
                     hz.credits(e.credits), STATUS_WORDS.get(e.status, e.status), e.reason)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"Village id: {e.peer}" if col == 2 and e.peer else text)
                self.events.setItem(row, col, item)
        self.events.resizeColumnsToContents()
        self.export.setEnabled(v.receipts > 0 or bool(v.events))
        self.export.setToolTip("Save every credit event as a CSV file" if self.export.isEnabled()
                               else "Nothing to export yet: no credit has been recorded")

    def _ledger_path(self) -> Path | None:
        config = getattr(self.bridge.handle, "config", None)
        if config is None:
            return None
        from core.ledger.service import LEDGER_FILE

        return Path(config.paths.data_dir) / LEDGER_FILE

    def _export_clicked(self) -> None:
        target, _ = QFileDialog.getSaveFileName(self, "Export credits", "grove-credits.csv",
                                                "CSV files (*.csv)")
        if target:
            self.export_to(Path(target))

    def export_to(self, target: Path) -> int:
        from core.ledger.reader import export_csv

        path = self._ledger_path()
        if path is None or not path.exists():
            self.exported.setText("Nothing to export: no ledger yet.")
            return 0
        with open(target, "w", newline="") as f:
            n = export_csv(path, f)
        self.exported.setText(f"Exported {n} credit events to {target}.")
        return n


def assurance_words(v: CreditsView) -> str:
    """The Credits page's line on stake, rulings, challenges and this village's checks."""
    stake = (f"staking {hz.credits(v.stake)}, backed by {hz.credits(v.stake_backing)} of "
             "verified work" if v.stake > 0 else
             "not staking, so it serves basic work only")
    parts = [stake]
    if v.slashed:
        parts.append(f"{hz.credits(v.slashed)} taken by rulings")
    if v.challenges:
        parts.append(f"challenges {'won' if v.challenges > 0 else 'cost'} "
                     f"{hz.credits(abs(v.challenges))}")
    if v.checked_villages:
        parts.append(f"this village checked the work of "
                     f"{hz.plural(v.checked_villages, 'village')}: "
                     f"{hz.plural(v.checks_passed, 'check')} passed, {v.checks_failed} failed")
    else:
        parts.append("no check of others' work yet")
    return " · ".join(parts)
