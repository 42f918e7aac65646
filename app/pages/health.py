"""Village health: who is out there (villages known, tiers), this village against its region
and the network (averaged Moshpit-style, no central server), over time, and nearby villages."""

from __future__ import annotations

import time
from collections import Counter

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.charts import BarChart, LineChart
from app.pages import heading, note, tip
from app.state import HealthHistory
from core import humanize as hz
from core.glance import TIER_WORDS
from core.i18n import QT_TR_NOOP, tr
from core.snapshot import NodeSnapshot, live_villages

TIERS = ("cpu", "consumer-gpu", "prosumer-gpu")
TIER_LABELS = {"cpu": QT_TR_NOOP("CPU"), "consumer-gpu": QT_TR_NOOP("GPU"),
    "prosumer-gpu": QT_TR_NOOP("GPU 16G+")}
SHOWN_FIELDS = ("contributing", "allowance_in_use", "direct", "relay_only", "personas_active",
                "median_latency_ms")
FIELD_LABELS = {"contributing": QT_TR_NOOP("Lending compute"),
    "allowance_in_use": QT_TR_NOOP("Allowance in use"),
                "direct": QT_TR_NOOP("Reachable directly"),
                    "relay_only": QT_TR_NOOP("Only through a relay"),
                "personas_active": QT_TR_NOOP("Personas awake"),
                    "median_latency_ms": QT_TR_NOOP("Round trip (median)")}
VILLAGE_COLUMNS = (QT_TR_NOOP("Village"), QT_TR_NOOP("Tier"), QT_TR_NOOP("Region"),
    QT_TR_NOOP("Reach"), QT_TR_NOOP("Upload"), QT_TR_NOOP("Free for agents"),
                   QT_TR_NOOP("Personas"), QT_TR_NOOP("Checked here"), QT_TR_NOOP("Connected"))


class HealthPage(QWidget):
    def __init__(self, bridge: NodeBridge, history: HealthHistory) -> None:
        super().__init__()
        self.bridge = bridge
        self.history = history
        self.summary = note()
        self.tiers = tip(BarChart(tr("Villages by compute tier"), tr("No village records yet.")),
                         tr("How many known villages are in each compute tier (this one "
                         "included)"), tr("Tiers histogram"))
        waiting = (tr("The network's health is averaged every telemetry round; the chart starts "
                   "after two rounds."))
        self.chart = tip(LineChart(tr("Villages in the network (estimated)"), ("villages",),
                                   waiting),
                         tr("The network's estimated size, one point per telemetry round"),
                         tr("Network size chart"))
        self.contributing = tip(LineChart(tr("Villages lending compute"), ("% contributing",),
                                          waiting, ceiling=100, unit=" %"),
                                tr("The share of villages lending compute, one point per "
                                "telemetry round"), tr("Contributing chart"))
        self.aggregates = tip(QTableWidget(len(SHOWN_FIELDS), 3), tr("This village, its region "
                              "and the whole network, averaged without a central server"),
                              tr("Aggregates"))
        self.aggregates.setHorizontalHeaderLabels([tr("This village"), tr("Region"), tr("Network")])
        self.aggregates.setVerticalHeaderLabels([tr(FIELD_LABELS[f]) for f in SHOWN_FIELDS])
        self.aggregates.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.aggregates.horizontalHeader().setStretchLastSection(True)
        self.aggregates.setMinimumHeight(200)
        self.villages = tip(QTableWidget(0, len(VILLAGE_COLUMNS)), tr("Villages whose signed "
                            "records this village holds, nearest first"), tr("Nearby villages"))
        self.villages.setHorizontalHeaderLabels([tr(c) for c in VILLAGE_COLUMNS])
        self.villages.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.villages.horizontalHeader().setStretchLastSection(True)
        charts = QHBoxLayout()
        charts.addWidget(self.tiers, 1)
        charts.addWidget(self.chart, 1)
        charts.addWidget(self.contributing, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Village health")))
        layout.addWidget(self.summary)
        layout.addLayout(charts, 2)
        layout.addWidget(self.aggregates)
        layout.addWidget(note(tr("Nearby villages")))
        layout.addWidget(self.villages, 2)

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        now = time.time()
        villages = live_villages(snap.villages, now)
        t = snap.telemetry
        net = t.network or t.regional
        size = (tr("The network holds {0} (counted {1})").format(
                hz.estimate(net.villages, net.uncertainty, 'village'),
                    hz.ago(now - net.at)) if net and net.villages else
                tr("The network's size is not measured yet (the first count comes after a "
                "telemetry round)"))
        self.summary.setText(tr("{0}. This village is connected to {1} and holds the signed "
                                "records of {2}.").format(
                                 size, hz.plural(len(snap.peers), "village"),
                                 hz.plural(len(villages), "village"))
                             + (tr(" Last round: {0}").format(t.error) if t.error else ""))
        counts = Counter(v.tier for v in villages if v.peer_id != snap.peer_id)
        if snap.tier:
            counts[snap.tier] += 1
        self.tiers.set_bars([(tr(TIER_LABELS[tier]), counts.get(tier, 0)) for tier in TIERS])
        self.chart.set_points([(at, v) for at, v, _ in self.history.points])
        self.contributing.set_points([(at, c) for at, _, c in self.history.points])
        local = dict(t.local)
        for row, f in enumerate(SHOWN_FIELDS):
            cells = [local.get(f), t.regional.mean(f) if t.regional else None,
                     t.network.mean(f) if t.network else None]
            for col, value in enumerate(cells):
                text = "-" if value is None else _fmt(f, value)
                self.aggregates.setItem(row, col, QTableWidgetItem(text))
        rtt = {p.peer_id: p.rtt_ms for p in snap.peers}
        ordered = sorted((v for v in villages if v.peer_id != snap.peer_id),
                         key=lambda v: (v.peer_id not in rtt, rtt.get(v.peer_id) or 0,
                                        v.peer_id))
        self.villages.setRowCount(len(ordered))
        checked = {p: (a, b) for p, a, b in snap.credits.checks}
        for row, v in enumerate(ordered):
            conn = (f"{rtt[v.peer_id]:.1f} ms" if rtt.get(v.peer_id) is not None else tr("yes")) \
                if v.peer_id in rtt else tr("no")
            memory = tr(hz.NOT_MEASURED) if v.agent_memory_mb is None else \
                hz.nbytes(v.agent_memory_mb * 2**20)
            for col, text in enumerate((v.name, tr(TIER_WORDS.get(v.tier, v.tier)),
                                        v.region or "-",
                                        v.reachability, v.bandwidth.replace("-", " "), memory,
                                        ", ".join(v.personas) or "-",
                                        checks_words(*checked.get(v.peer_id, (0, 0))), conn)):
                item = QTableWidgetItem(text)
                item.setToolTip(tr("{0}\nVillage id: {1}").format(v.name, v.peer_id))
                self.villages.setItem(row, col, item)
        self.villages.resizeColumnsToContents()


def _fmt(field: str, value: float) -> str:
    if field in ("contributing", "allowance_in_use", "direct", "relay_only"):
        return hz.percent(value)
    if field == "median_latency_ms":
        return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
    return f"{max(0.0, value):.1f}"


def checks_words(passed: int, failed: int) -> str:
    """A village's reputation here: how this village's checks of its work came out."""
    if not passed and not failed:
        return tr("not checked")
    return f"{passed:,} passed" + (tr(", {0:,} failed").format(failed) if failed else "")
