"""Overview: what the village is doing, in one sentence, and everything a gardener checks."""

from __future__ import annotations

import time

from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, note, tip
from core import autostart
from core.snapshot import (
    NodeSnapshot,
    NodeState,
    format_duration,
    live_villages,
    status_sentence,
)

CREDITS_NOTE = "-"


class OverviewPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.status = heading("")
        self.status.setWordWrap(True)
        self.restart = tip(QPushButton("Restart the village"),
                           "Start the node again (it stopped or failed)")
        self.restart.clicked.connect(self._restart)
        self.participate = tip(QCheckBox("Participate: lend this computer to the network"),
                               "On: the network may use this computer within your limits. "
                               "Takes effect at once; remembered across restarts.")
        self.participate.clicked.connect(
            lambda on: bridge.run(bridge.handle.set_participation(on), "Changing participation"))
        self.autostart = tip(QCheckBox("Start Grove when I log in"),
                             "Adds or removes Grove from your desktop's login items")
        self.autostart.setChecked(autostart.is_enabled())
        self.autostart.clicked.connect(self._autostart)
        self.peer_id = note(selectable=True)
        self.addresses = note(selectable=True)
        self.uptime = note()
        self.tier = note()
        self.hardware = note()
        self.compute = note()
        self.reachability = note()
        self.credits = note(CREDITS_NOTE)
        self.known = note()
        self.updates = tip(note(), "Off by default: turn on update_check and set update_url "
                           "(the signed release manifest) to hear about new releases; "
                           "nothing is ever installed without you")
        self.key_store = note()
        self.problems = note()
        self.problems.setStyleSheet("color: #c5221f;")
        self.peers = tip(QListWidget(), "Villages this one is connected to, with round-trip "
                         "time and whether the connection is direct or relayed")
        self.peers.setMaximumHeight(140)

        form = QFormLayout()
        form.addRow("Village id:", self.peer_id)
        form.addRow("Listening on:", self.addresses)
        form.addRow("Uptime:", self.uptime)
        form.addRow("Compute now:", self.compute)
        form.addRow("Compute tier:", self.tier)
        form.addRow("Hardware:", self.hardware)
        form.addRow("Reachability:", self.reachability)
        form.addRow("Credits:", self.credits)
        form.addRow("Villages known:", self.known)
        form.addRow("Village key:", self.key_store)
        form.addRow("Updates:", self.updates)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.restart)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.participate)
        layout.addWidget(self.autostart)
        layout.addLayout(form)
        self.peers_title = note()
        layout.addWidget(self.peers_title)
        layout.addWidget(self.peers)
        layout.addWidget(self.problems)
        layout.addStretch(1)

    def _restart(self) -> None:
        self.restart.setEnabled(False)
        self.status.setText("Restarting the village…")
        self.bridge.restart()

    def _autostart(self, on: bool) -> None:
        try:
            autostart.set_enabled(on)
        except OSError as e:
            self.bridge.command_failed.emit(f"Changing start-on-login failed: {e}")
        self.autostart.setChecked(autostart.is_enabled())

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        now = time.time()
        running = snap.state is NodeState.RUNNING
        self.status.setText(status_sentence(snap, now))
        down = snap.state in (NodeState.STOPPED, NodeState.FAILED)
        self.restart.setVisible(down)
        self.restart.setEnabled(down)
        self.participate.setEnabled(running)
        self.participate.setChecked(snap.participating)
        self.peer_id.setText(snap.peer_id or "-")
        self.addresses.setText("\n".join(snap.listen_addrs) or "-")
        self.uptime.setText(format_duration(snap.uptime(now)) if snap.started_at else "-")
        self.tier.setText(f"{snap.tier} ({snap.tier_reason})" if snap.tier else "-")
        c = snap.credits
        self.credits.setText(c.paused or (f"{c.balance:.4f} verified, {c.pending:.4f} pending "
                                          f"(today {c.today:.4f})" if c.running else "-"))
        self.hardware.setText(snap.hardware or "-")
        u = snap.update
        self.updates.setText(f"version {snap.version or '-'}; "
                             + ("the update check is off" if u.status == "off" else u.text))
        g = snap.governor
        if not running:
            self.compute.setText("-")
        elif g.may_compute:
            self.compute.setText(f"may run: up to {g.cpu_share:.0%} of this computer "
                                 f"({g.threads} thread(s) at {g.duty_cycle:.0%})")
        else:
            self.compute.setText(g.reason)
        if not running:
            self.reachability.setText("-")
        else:
            detail = snap.reachability_detail
            self.reachability.setText(detail if detail.startswith(snap.reachability)
                                      else f"{snap.reachability}: {detail}" if detail
                                      else snap.reachability)
        villages = live_villages(snap.villages, now)
        self.known.setText(f"{len(villages)} (from their signed records; "
                           f"{snap.dht_peers} in the routing table)")
        self.key_store.setText(snap.key_store or "-")
        self.peers_title.setText(f"Connected villages ({len(snap.peers)})")
        self.peers.clear()
        for p in snap.peers:
            rtt = f"  {p.rtt_ms:.1f} ms" if p.rtt_ms is not None else ""
            self.peers.addItem(f"{p.peer_id}   {p.address}{rtt}   {p.via}")
        problems = list(snap.errors) + list(snap.notices)
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))
