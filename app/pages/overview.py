"""Overview: the four questions a gardener asks, biggest first (core.glance) - is Grove using
this computer and why, how much, what it has done, is anything wrong - with one large switch;
the technical details (ids, addresses, key store) behind a "Details" disclosure."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.charts import BarChart
from app.pages import heading, note, tip
from core import autostart
from core import humanize as hz
from core.glance import glance
from core.i18n import QT_TR_NOOP, tr
from core.names import MAX_CHOSEN, display_name, sanitise, village_name
from core.snapshot import NodeSnapshot, NodeState, live_villages

SWITCH_STYLE = ("QCheckBox { font-size: 15px; font-weight: 600; padding: 6px; }"
                " QCheckBox::indicator { width: 28px; height: 28px; }")
WEEKDAYS = (QT_TR_NOOP("Mon"), QT_TR_NOOP("Tue"), QT_TR_NOOP("Wed"), QT_TR_NOOP("Thu"),
            QT_TR_NOOP("Fri"), QT_TR_NOOP("Sat"), QT_TR_NOOP("Sun"))  # strftime's %a, in C
STATE_COLOURS = {"using": "#1e8e3e", "ready": "#1a73e8", "not-using": "#e37400",
                 "off": "#80868b", "stopped": "#80868b", "error": "#c5221f"}


class OverviewPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.status = heading("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("font-size: 22px; font-weight: 600;")
        self.why = note()
        self.why.setStyleSheet("font-size: 14px;")
        self.restart = tip(QPushButton(tr("Restart the village")),
                           tr("Start the node again (it stopped or failed)"))
        self.restart.clicked.connect(self._restart)
        self.participate = tip(QCheckBox(tr("Lend this computer to the network")),
                               tr("On: the network may use this computer within your limits. "
                               "Takes effect at once; remembered across restarts."),
                               tr("Participation switch"))
        self.participate.setStyleSheet(SWITCH_STYLE)
        self.participate.clicked.connect(
            lambda on: bridge.run(bridge.handle.set_participation(on), tr("Changing "
                                                                          "participation")))
        self.autostart = tip(QCheckBox(tr("Start Grove when I log in")),
                             tr("Adds or removes Grove from your desktop's login items"))
        self.autostart.setChecked(autostart.is_enabled())
        self.autostart.clicked.connect(self._autostart)

        self.usage_box, self.usage_form = _box(tr("How much it uses now"))
        self.usage_labels: dict[str, QLabel] = {}
        for what in (tr("Processor"), tr("Graphics card"), tr("Upload"), tr("Download"),
            tr("Memory")):
            self.usage_labels[what] = note()
            self.usage_form.addRow(tr("{0}:").format(what), self.usage_labels[what])
        self.compute = self.usage_labels[tr("Processor")]
        self.done_box, done_form = _box(tr("What it has done"))
        self.today, self.week, self.worked_for = note(), note(), note()
        done_form.addRow(tr("Today:"), self.today)
        done_form.addRow(tr("Past week:"), self.week)
        done_form.addRow(tr("Work for:"), self.worked_for)
        self.daily = tip(BarChart(tr("Processor time lent, per day"), tr("Nothing measured yet."),
                                  fmt=lambda h: hz.hours(h * 3600), one_colour=True),
                         tr("Hours of processor time Grove used on this computer each of the "
                         "last 7 days (measured, all cores together)"), tr("Processor time chart"))
        self.daily.setMinimumHeight(120)
        done_form.addRow(self.daily)
        self.credits = self.today
        self.wrong_box, wrong_form = _box(tr("Anything wrong?"))
        self.problems = note()
        wrong_form.addRow(self.problems)
        self.network = note()

        self.details_toggle = tip(QToolButton(), tr("Show or hide the technical details: ids, "
                                  "addresses, hardware, key store"), tr("Details"))
        self.details_toggle.setText(tr("Details"))
        self.details_toggle.setCheckable(True)
        self.details_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.details_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_toggle.toggled.connect(self._toggle_details)
        self.details = QWidget()
        self.name = note()
        self.rename = tip(QLineEdit(), tr("A name other gardeners see beside this village's own "
                          "two-word name (at most 32 letters, digits and spaces); empty: only "
                          "the two-word name"), tr("Village name"))
        self.rename.setMaxLength(MAX_CHOSEN)
        self.save_name = tip(QPushButton(tr("Save name")), tr("Put this name in the village's "
                             "signed record"), tr("Save village name"))
        self.save_name.clicked.connect(self._save_name)
        self.peer_id = note(selectable=True)
        self.copy_id = tip(QPushButton(tr("Copy")), tr("Copy this village's id (what "
                                                       "identifies it; "
                           "its name is only a label)"), tr("Copy village id"))
        self.copy_id.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.bridge.latest().peer_id))
        self.addresses = note(selectable=True)
        self.uptime = note()
        self.tier = note()
        self.hardware = note()
        self.reachability = note()
        self.known = note()
        self.key_store = note()
        self.updates = tip(note(), tr("Off by default: turn on update_check and set update_url "
                           "(the signed release manifest) to hear about new releases; "
                           "nothing is ever installed without you"))
        self.peers = tip(QListWidget(), tr("Villages this one is connected to, with round-trip "
                         "time and whether the connection is direct or relayed; hover for "
                         "a village's id"))
        self.peers.setMaximumHeight(120)
        self.peers_title = note()
        id_row = QHBoxLayout()
        id_row.addWidget(self.peer_id, 1)
        id_row.addWidget(self.copy_id)
        name_row = QHBoxLayout()
        name_row.addWidget(self.name)
        name_row.addWidget(self.rename, 1)
        name_row.addWidget(self.save_name)
        form = QFormLayout()
        form.addRow(tr("Name:"), name_row)
        form.addRow(tr("Village id:"), id_row)
        form.addRow(tr("Listening on:"), self.addresses)
        form.addRow(tr("Running for:"), self.uptime)
        form.addRow(tr("Compute tier:"), self.tier)
        form.addRow(tr("Hardware:"), self.hardware)
        form.addRow(tr("Reachability:"), self.reachability)
        form.addRow(tr("Villages known:"), self.known)
        form.addRow(tr("Village key:"), self.key_store)
        form.addRow(tr("Updates:"), self.updates)
        details = QVBoxLayout(self.details)
        details.setContentsMargins(0, 0, 0, 0)
        details.addLayout(form)
        details.addWidget(self.peers_title)
        details.addWidget(self.peers)
        self.details.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.restart)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.why)
        layout.addWidget(self.participate)
        boxes = QHBoxLayout()
        boxes.addWidget(self.usage_box, 1)
        boxes.addWidget(self.done_box, 1)
        layout.addLayout(boxes)
        layout.addWidget(self.wrong_box)
        layout.addWidget(self.network)
        layout.addWidget(self.autostart)
        layout.addWidget(self.details_toggle)
        layout.addWidget(self.details)
        layout.addStretch(1)

    def _toggle_details(self, on: bool) -> None:
        self.details.setVisible(on)
        self.details_toggle.setArrowType(Qt.ArrowType.DownArrow if on
                                         else Qt.ArrowType.RightArrow)

    def _save_name(self) -> None:
        name = sanitise(self.rename.text())
        self.rename.setText(name)
        self.bridge.run(self.bridge.handle.update_settings(village_name=name),
                        tr("Saving the village's name"))

    def _restart(self) -> None:
        self.restart.setEnabled(False)
        self.status.setText(tr("Restarting the village…"))
        self.bridge.restart()

    def _autostart(self, on: bool) -> None:
        try:
            autostart.set_enabled(on)
        except OSError as e:
            self.bridge.command_failed.emit(
                tr("Changing start-on-login failed: {0}").format(e))
        self.autostart.setChecked(autostart.is_enabled())

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        now = time.time()
        running = snap.state is NodeState.RUNNING
        g = glance(snap, now)
        self.status.setText(g.headline)
        self.status.setStyleSheet("font-size: 22px; font-weight: 600; color: "
                                  f"{STATE_COLOURS.get(g.state, '')};")
        self.why.setText(g.why)
        down = snap.state in (NodeState.STOPPED, NodeState.FAILED)
        self.restart.setVisible(down)
        self.restart.setEnabled(down)
        self.participate.setEnabled(running)
        self.participate.setChecked(snap.participating)
        usage = dict(g.usage)
        for what, label in self.usage_labels.items():  # a GPU row only where one is used
            label.setText(usage.get(what, ""))
            self.usage_form.setRowVisible(label, what in usage)
        self.daily.set_bars(daily_hours(snap.activity.cpu_hours, now))
        self.today.setText(g.today)
        self.week.setText(g.week)
        self.worked_for.setText(g.worked_for)
        self.problems.setText("\n".join(g.problems) or g.all_well)
        self.problems.setStyleSheet("color: #c5221f;" if g.problems else "")
        self.network.setText(g.network)
        # the details
        self.name.setText(g.name or "-")
        derived = village_name(snap.peer_id)
        self.rename.setPlaceholderText(tr("a name of your own (beside {0})").format(derived)
                                       if derived else "")
        if not self.rename.hasFocus() and snap.settings is not None:
            self.rename.setText(snap.settings.village_name)
        self.save_name.setEnabled(running)
        self.peer_id.setText(snap.peer_id or "-")
        self.copy_id.setEnabled(bool(snap.peer_id))
        self.addresses.setText("\n".join(snap.listen_addrs) or "-")
        self.uptime.setText(hz.duration(snap.uptime(now)) if snap.started_at else "-")
        self.tier.setText(f"{snap.tier} ({snap.tier_reason})" if snap.tier else "-")
        self.hardware.setText(snap.hardware or "-")
        u = snap.update
        self.updates.setText(tr("version {0}; ").format(snap.version or '-')
                             + (tr("the update check is off") if u.status == "off" else u.text))
        if not running:
            self.reachability.setText("-")
        else:
            detail = snap.reachability_detail
            self.reachability.setText(detail if detail.startswith(snap.reachability)
                                      else f"{snap.reachability}: {detail}" if detail
                                      else snap.reachability)
        villages = live_villages(snap.villages, now)
        self.known.setText(tr("{0} from their signed records; {1} in the routing table").format(
                hz.plural(len(villages), 'village'), snap.dht_peers))
        self.key_store.setText(snap.key_store or "-")
        self.peers_title.setText(tr("Connected villages ({0})").format(len(snap.peers)))
        names = {v.peer_id: v.name for v in villages}
        self.peers.clear()
        for p in snap.peers:
            rtt = tr(", {0:.1f} ms").format(p.rtt_ms) if p.rtt_ms is not None else ""
            item = QListWidgetItem(f"{names.get(p.peer_id) or display_name(p.peer_id)}"
                                   f" ({p.via}{rtt})")
            item.setToolTip(tr("Village id: {0}\nAddress: {1}").format(p.peer_id, p.address))
            item.setData(Qt.ItemDataRole.UserRole, p.peer_id)
            self.peers.addItem(item)


def daily_hours(hourly: tuple[tuple[float, float], ...], now: float
                ) -> list[tuple[str, float]]:
    """(weekday, processor hours) for each of the last 7 local days, oldest first."""
    days = [hz.day_start(now - k * 86400) for k in range(6, -1, -1)]
    out = []
    for i, start in enumerate(days):
        end = days[i + 1] if i + 1 < len(days) else now + 1
        out.append((tr(time.strftime("%a", time.localtime(start))),
                    sum(h for at, h in hourly if start <= at < end)))
    return out if any(h for _, h in out) else []


def _box(title: str) -> tuple[QGroupBox, QFormLayout]:
    box = QGroupBox(title)
    form = QFormLayout(box)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return box, form
