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
from core.i18n import QT_TR_NOOP, tr
from core.names import village_name
from core.snapshot import CreditsView, NodeSnapshot


def short_credits(x: float) -> str:
    """A bar's label: the number alone ("10.2", "1,234")."""
    return hz.credits(x).removesuffix(" credits").removesuffix(" credit")


STATUS_WORDS = {"pending": QT_TR_NOOP("waiting for checks"),
                "verified": QT_TR_NOOP("verified"), "rejected": QT_TR_NOOP("rejected")}

COLUMNS = (QT_TR_NOOP("When"), QT_TR_NOOP("Work"), QT_TR_NOOP("For"),
           QT_TR_NOOP("Credits"), QT_TR_NOOP("Status"), QT_TR_NOOP("Why"))
NAMES = {"swarm": QT_TR_NOOP("serving a model"), "training": QT_TR_NOOP("training"),
         "averaging": QT_TR_NOOP("averaging"), "relay": QT_TR_NOOP("relaying"),
         "stake": QT_TR_NOOP("stake taken by rulings"), "challenge": QT_TR_NOOP("challenges")}
UNITS = {"swarm": (QT_TR_NOOP("sample served"), QT_TR_NOOP("samples served")),
         "training": (QT_TR_NOOP("training sample"), QT_TR_NOOP("training samples")),
         "averaging": (QT_TR_NOOP("averaging round"), QT_TR_NOOP("averaging rounds")),
         "relay": (QT_TR_NOOP("byte relayed"), QT_TR_NOOP("bytes relayed"))}


class CreditsPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.state = note("")
        self.state.setStyleSheet("color: #b3261e;")
        self.balance = note("-")
        self.honoured = tip(note("-"), tr("Verified credit earned from villages this village "
                            "trusts: pre-trusted ones, and those whose work passed its own "
                            "sampled checks. Credit from villages nobody vouches for may not "
                            "be honoured by the network."), tr("Honoured credit"))
        self.periods = note("-")
        self.split = note("-")
        self.rates = note("-")
        self.assurance = tip(note("-"), tr("Service levels: the credits this village stakes to "
                             "serve checked and assured work (a failed check takes half), "
                             "what rulings on its work took, what its challenges of others' "
                             "work won or cost, and how its own checks of others came out."),
                             tr("Stake and checks"))
        self.kinds = tip(BarChart(tr("Verified credit by kind of work"), tr("Nothing "
                                                                            "verified yet."),
                                  fmt=short_credits),
                         tr("Verified credit by kind of work"), tr("Credit by kind"))
        self.history = tip(BarChart(tr("Verified credit per day (last 30 days)"),
                                    tr("No verified credit in the last 30 days."),
                                    fmt=short_credits, one_colour=True),
                           tr("Verified credit per day"), tr("Credit history"))
        self.events = tip(QTableWidget(0, len(COLUMNS)), tr("The latest credit events"),
                          tr("Credit events"))
        self.events.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.events.verticalHeader().setVisible(False)
        self.events.horizontalHeader().setStretchLastSection(True)
        self.export = tip(QPushButton(tr("Export CSV…")), tr("Save every credit event as "
                                                             "a CSV file"),
                          tr("Export credits as CSV"))
        self.export.clicked.connect(self._export_clicked)
        self.exported = note("")
        form = QFormLayout()
        form.addRow(tr("Balance:"), self.balance)
        form.addRow(tr("Honoured:"), self.honoured)
        form.addRow(tr("Earned:"), self.periods)
        form.addRow(tr("Pending / verified / rejected:"), self.split)
        form.addRow(tr("What work earns:"), self.rates)
        form.addRow(tr("Stake and checks:"), self.assurance)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Credits")))
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
        self.state.setText(v.paused or ("" if v.running else tr("The ledger is not open yet.")))
        self.state.setVisible(bool(self.state.text()))
        if not v.running:
            for label in (self.balance, self.honoured, self.periods, self.split, self.rates,
                          self.assurance):
                label.setText(tr(hz.NOT_MEASURED))
        else:
            self.balance.setText(tr("{0} (verified, from {1})").format(
                    hz.credits(v.balance), hz.plural(v.receipts, 'receipt')))
            self.honoured.setText(
                tr("{0} earned from villages you trust ({1} trusted: pre-trusted, whose "
                   "work passed this village's checks, or whose work villages you trust "
                   "checked)").format(hz.credits(v.honoured), hz.plural(v.trusted, 'village')))
            self.periods.setText(tr("today {0} · this week {1}").format(
                    hz.credits(v.today), hz.credits(v.this_week)))
            self.split.setText(tr("{0} waiting for checks · {1} verified · {2} rejected").format(
                    hz.credits(v.pending), hz.credits(v.balance), hz.credits(v.rejected)))
            self.rates.setText("; ".join(
                tr("{0}: {1}").format(tr(NAMES.get(k, k)),
                                      hz.credit_rate(r, *(tr(u) for u in UNITS[k])))
                if k in UNITS else tr("{0}: {1:g} a unit").format(tr(NAMES.get(k, k)), r)
                for k, r in v.rates))
            self.assurance.setText(assurance_words(v))
        self.kinds.set_bars([(tr(NAMES.get(k, k)), c) for k, c in v.by_kind if c > 0])
        self.history.set_bars([(time.strftime("%d %b", time.strptime(d, "%Y-%m-%d")), c)
                               for d, c in v.history if c > 0][-14:])
        self.events.setRowCount(len(v.events))
        names = {x.peer_id: x.name for x in snap.villages}
        for row, e in enumerate(v.events):
            cells = (hz.at_clock(e.at), tr(NAMES.get(e.kind, e.kind)),
                     names.get(e.peer) or village_name(e.peer) if e.peer else "-",
                     hz.credits(e.credits), tr(STATUS_WORDS.get(e.status, e.status)), e.reason)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tr("Village id: {0}").format(e.peer)
                                if col == 2 and e.peer else text)
                self.events.setItem(row, col, item)
        self.events.resizeColumnsToContents()
        self.export.setEnabled(v.receipts > 0 or bool(v.events))
        self.export.setToolTip(tr("Save every credit event as a CSV file")
                               if self.export.isEnabled()
                               else tr("Nothing to export yet: no credit has been recorded"))

    def _ledger_path(self) -> Path | None:
        config = getattr(self.bridge.handle, "config", None)
        if config is None:
            return None
        from core.ledger.service import LEDGER_FILE

        return Path(config.paths.data_dir) / LEDGER_FILE

    def _export_clicked(self) -> None:
        target, _ = QFileDialog.getSaveFileName(self, tr("Export credits"), "grove-credits.csv",
                                                tr("CSV files (*.csv)"))
        if target:
            self.export_to(Path(target))

    def export_to(self, target: Path) -> int:
        from core.ledger.reader import export_csv

        path = self._ledger_path()
        if path is None or not path.exists():
            self.exported.setText(tr("Nothing to export: no ledger yet."))
            return 0
        with open(target, "w", newline="") as f:
            n = export_csv(path, f)
        self.exported.setText(tr("Exported {0} credit events to {1}.").format(n, target))
        return n


def assurance_words(v: CreditsView) -> str:
    """The Credits page's line on stake, rulings, challenges and this village's checks."""
    stake = (tr("staking {0}, backed by {1} of verified work").format(
            hz.credits(v.stake), hz.credits(v.stake_backing)) if v.stake > 0 else
             tr("not staking, so it serves basic work only"))
    parts = [stake]
    if v.slashed:
        parts.append(tr("{0} taken by rulings").format(hz.credits(v.slashed)))
    if v.challenges:
        parts.append((tr("challenges won {0}") if v.challenges > 0
                      else tr("challenges cost {0}")).format(hz.credits(abs(v.challenges))))
    if v.checked_villages:
        parts.append(tr("this village checked the work of {0}: {1} passed, {2} failed").format(
                hz.plural(v.checked_villages, 'village'), hz.plural(v.checks_passed,
                    'check'), v.checks_failed))
    else:
        parts.append(tr("no check of others' work yet"))
    return " · ".join(parts)
