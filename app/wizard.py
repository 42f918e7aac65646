"""The first-run wizard: what Grove is, what will run, this computer and suggested limits, and
consent (participation stays off until the gardener says yes). Opened with `open()`; when it
finishes the choices go to the node as one settings change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QSpinBox,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from app.bridge import NodeBridge
from app.pages import note, tip
from core import autostart
from core.i18n import QT_TR_NOOP, tr
from core.settings_schema import BY_NAME
from core.snapshot import NodeSnapshot

MARKER = "welcomed"  # in the profile's data folder, once the wizard was finished

WHAT_IT_IS = (
    QT_TR_NOOP("Grove is a peer-to-peer network of AI personas run by gardeners like you. "
               "This computer "
    "becomes a village: it finds other villages without any central server, relays for "
    "homes behind NATs when it can, and, if you say yes, lends some of its computing power to "
    "the network within limits you set."))
WHAT_RUNS = (
    QT_TR_NOOP("• A network node: it talks to other villages (Kademlia DHT, relays, hole "
               "punching).\n"
    "• Village health: small averages of anonymous numbers (how many villages, how many "
    "contribute), shared Moshpit-style with a few villages at a time.\n"
    "• Only if you participate: compute jobs for the network, never above your CPU, memory, "
    "GPU, bandwidth and temperature limits, and paused on battery, outside your schedule or "
    "while you use the computer if you ask.\n"
    "Nothing on this computer is shared: no files, no browsing, no personal data."))


def suggested_limits(logical_cores: int, has_battery: bool) -> dict[str, Any]:
    """What the wizard proposes: modest on laptops and small machines."""
    share = 25 if has_battery or logical_cores <= 4 else 50
    return {"cpu_share": share, "pause_on_battery": True, "idle_only": has_battery}


def needs_wizard(data_dir: Path, participating: bool) -> bool:
    return not participating and not (data_dir / MARKER).exists()


class FirstRunWizard(QWizard):
    finished_with = Signal(dict)  # the settings the gardener chose

    def __init__(self, bridge: NodeBridge, data_dir: Path) -> None:
        super().__init__()
        self.bridge = bridge
        self.data_dir = data_dir
        self.setWindowTitle(tr("Welcome to Grove Village"))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage)
        battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        self.suggested = suggested_limits(psutil.cpu_count() or 1, battery is not None)

        welcome = QWizardPage()
        welcome.setTitle(tr("What Grove is"))
        QVBoxLayout(welcome).addWidget(note(tr(WHAT_IT_IS)))
        runs = QWizardPage()
        runs.setTitle(tr("What will run on this computer"))
        QVBoxLayout(runs).addWidget(note(tr(WHAT_RUNS)))

        machine = QWizardPage()
        machine.setTitle(tr("This computer, and what it lends"))
        self.hardware = note("detecting…")
        self.tier = note()
        d = BY_NAME["cpu_share"]
        self.cpu_share = tip(QSpinBox(), f"{d.description} ({d.range_text()})", tr("CPU share"))
        self.cpu_share.setRange(int(d.lo or 5), int(d.hi or 100))
        self.cpu_share.setSuffix(" %")
        self.cpu_share.setValue(self.suggested["cpu_share"])
        self.pause_on_battery = tip(QCheckBox(tr("Pause while on battery")),
                                    BY_NAME["pause_on_battery"].description)
        self.pause_on_battery.setChecked(self.suggested["pause_on_battery"])
        self.idle_only = tip(QCheckBox(tr("Only while I am not using the computer")),
                             BY_NAME["idle_only"].description)
        self.idle_only.setChecked(self.suggested["idle_only"])
        form = QFormLayout(machine)
        form.addRow(tr("Hardware:"), self.hardware)
        form.addRow(tr("Compute tier:"), self.tier)
        form.addRow(tr("CPU share (suggested):"), self.cpu_share)
        form.addRow(self.pause_on_battery)
        form.addRow(self.idle_only)
        form.addRow(note(tr("Every limit can be changed later on the dashboard's Resources "
                         "page.")))

        consent = QWizardPage()
        consent.setTitle(tr("Your choice"))
        self.participate = tip(QCheckBox(tr("Yes, let this computer participate")),
                               tr("Off unless you tick it; switch it any time from the tray"))
        self.start_on_login = tip(QCheckBox(tr("Start Grove when I log in")),
                                  tr("Adds Grove to your desktop's login items"))
        lay = QVBoxLayout(consent)
        lay.addWidget(note(tr("Grove does not use this computer for the network until you say "
                           "yes. Without it, the village still connects and shows the network "
                           "(it lends nothing).")))
        lay.addWidget(self.participate)
        lay.addWidget(self.start_on_login)
        for page in (welcome, runs, machine, consent):
            self.addPage(page)
        self.accepted.connect(self._finish)
        bridge.snapshot.connect(self.show_snapshot)
        self.show_snapshot(bridge.latest())

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        if snap.hardware:
            self.hardware.setText(snap.hardware)
        if snap.tier:
            self.tier.setText(f"{snap.tier} ({snap.tier_reason})")

    def choices(self) -> dict[str, Any]:
        return {"cpu_share": self.cpu_share.value(),
                "pause_on_battery": self.pause_on_battery.isChecked(),
                "idle_only": self.idle_only.isChecked(),
                "participate": self.participate.isChecked()}

    def _finish(self) -> None:
        chosen = self.choices()
        self.bridge.run(self.bridge.handle.update_settings(**chosen), tr("Saving your choices"))
        try:
            autostart.set_enabled(self.start_on_login.isChecked())
        except OSError as e:
            self.bridge.command_failed.emit(tr("Start on login could not be set: {0}").format(e))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / MARKER).write_text("1\n")
        self.finished_with.emit(chosen)
