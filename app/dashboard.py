"""The dashboard window: the live snapshot in plain words. Close hides it to the tray."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from core.snapshot import (
    NodeSnapshot,
    NodeState,
    format_duration,
    live_villages,
    status_sentence,
)


class Dashboard(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.setWindowTitle("Grove Village")
        self.resize(640, 420)
        self.bridge = bridge
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.peer_id = QLabel()
        self.peer_id.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.addresses = QLabel()
        self.addresses.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.uptime = QLabel()
        self.participation = QLabel()
        self.tier = QLabel()
        self.tier.setWordWrap(True)
        self.hardware = QLabel()
        self.hardware.setWordWrap(True)
        self.compute = QLabel()
        self.compute.setWordWrap(True)
        self.known = QLabel()
        self.key_store = QLabel()
        self.key_store.setWordWrap(True)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #c5221f;")
        self.peers = QListWidget()
        self.peers.setToolTip("Villages this one is connected to, with round-trip time")

        form = QFormLayout()
        form.addRow("Village id:", self.peer_id)
        form.addRow("Listening on:", self.addresses)
        form.addRow("Uptime:", self.uptime)
        form.addRow("Participation:", self.participation)
        form.addRow("Compute now:", self.compute)
        form.addRow("Compute tier:", self.tier)
        form.addRow("Hardware:", self.hardware)
        form.addRow("Villages known:", self.known)
        form.addRow("Village key:", self.key_store)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(form)
        self.peers_title = QLabel()
        layout.addWidget(self.peers_title)
        layout.addWidget(self.peers, 1)
        layout.addWidget(self.problems)
        bridge.snapshot.connect(self.show_snapshot)
        self.show_snapshot(bridge.latest())

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        self.status.setText(status_sentence(snap, time.time()))
        self.peer_id.setText(snap.peer_id or "-")
        self.addresses.setText("\n".join(snap.listen_addrs) or "-")
        self.uptime.setText(format_duration(snap.uptime()) if snap.started_at else "-")
        self.participation.setText("on: lending this computer" if snap.participating
                                   else "off: not lending this computer")
        self.key_store.setText(snap.key_store)
        self.tier.setText(f"{snap.tier} ({snap.tier_reason})" if snap.tier else "-")
        self.hardware.setText(snap.hardware or "-")
        g = snap.governor
        if snap.state is not NodeState.RUNNING:
            self.compute.setText("-")
        elif g.may_compute:
            self.compute.setText(f"may run: up to {g.cpu_share:.0%} of this computer "
                                 f"({g.threads} thread(s) at {g.duty_cycle:.0%})")
        else:
            self.compute.setText(g.reason)
        villages = live_villages(snap.villages, time.time())
        self.known.setText(f"{len(villages)} (from their signed records; "
                           f"{snap.dht_peers} in the routing table)")
        n = len(snap.peers)
        self.peers_title.setText(f"Connected villages ({n})")
        self.peers.clear()
        for p in snap.peers:
            rtt = f"  {p.rtt_ms:.1f} ms" if p.rtt_ms is not None else ""
            self.peers.addItem(f"{p.peer_id}   {p.address}{rtt}")
        problems = list(snap.errors) + list(snap.notices)
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))

    def closeEvent(self, event: QCloseEvent) -> None:  # close hides to the tray
        event.ignore()
        self.hide()
