"""Training: the projects this village may take part in. Checking one opts in (it trains while
participation is on and the limits allow), unchecking opts out (it stops within a second).
Each row says how it goes, in plain words: waiting for peers, training, averaging, paused by a
rule - and the rule its groups aggregate with. Below them, serving a SWARM model's blocks to
other villages: on or off, what it serves, how fast, and why not when it cannot."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, note, tip
from core.i18n import QT_TR_NOOP, tr
from core.snapshot import NodeSnapshot, TrainingView

COLUMNS = (QT_TR_NOOP("Project"), QT_TR_NOOP("Status"), QT_TR_NOOP("Step"),
    QT_TR_NOOP("Test accuracy"), QT_TR_NOOP("Samples"), QT_TR_NOOP("Villages"), QT_TR_NOOP("Rule"))
INTRO = (QT_TR_NOOP("Opt in to a project to let this computer train a shared model with "
                    "other villages, "
         "within the limits you set. Updates are combined with a Byzantine-robust rule, so a "
         "broken or malicious village cannot steer the model."))


def _rule_text(v: TrainingView) -> str:
    if v.rule_used and v.rule_used != v.rule:
        return tr("{0} (last step: {1} - {2})").format(v.rule, v.rule_used, v.rule_note)
    return v.rule


class TrainingPage(QWidget):
    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.intro = note(tr(INTRO))
        self.projects = tip(QTableWidget(0, len(COLUMNS)), tr("Training projects: check one to "
                            "opt in, uncheck it to opt out"), tr("Training projects"))
        self.projects.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.projects.verticalHeader().setVisible(False)
        self.projects.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.projects.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.projects.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.projects.itemChanged.connect(self._changed)
        self.samples = note("0")
        self.error = note()
        self.error.setStyleSheet("color: #b3261e;")
        self.device = tip(note("-"), tr("Where this computer's share of the training runs: the "
                          "GPU your limits allow, or the CPU and why"), tr("Runs on"))
        self.checks = tip(note("-"), tr("Other villages' updates this village trained again "
                          "from the same state to check them: an update that is not what "
                          "its training gives costs its sender the credit"), tr("Checks"))
        form = QFormLayout()
        form.addRow(tr("Samples contributed:"), self.samples)
        form.addRow(tr("Runs on:"), self.device)
        form.addRow(tr("Checks of others' work:"), self.checks)
        self.swarm_serve = tip(QCheckBox(tr("Serve model blocks to other villages (SWARM)")),
                               tr("Hold part of a shared model and compute it for other villages, "
                               "within your limits"), tr("Serve model blocks"))
        self.swarm_serve.toggled.connect(self._swarm_toggled)
        self.swarm_status = note("")
        self.swarm_numbers = note("")
        self.swarm_train = tip(QCheckBox(tr("Train the SWARM model with this computer's data")),
                               tr("Send this village's own data through the villages that serve "
                               "the model's blocks, and learn from it"), tr("Train through SWARM"))
        self.swarm_train.toggled.connect(self._swarm_train_toggled)
        self.swarm_train_status = note("")
        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Training")))
        layout.addWidget(self.intro)
        layout.addWidget(self.projects, 1)
        layout.addLayout(form)
        layout.addWidget(self.swarm_serve)
        layout.addWidget(self.swarm_status)
        layout.addWidget(self.swarm_numbers)
        layout.addWidget(self.swarm_train)
        layout.addWidget(self.swarm_train_status)
        layout.addWidget(self.error)
        self._views: tuple[TrainingView, ...] = ()
        self._opted: tuple[str, ...] = ()

    def show_snapshot(self, snap: NodeSnapshot) -> None:
        self._views = snap.training
        self._opted = snap.settings.training_projects if snap.settings else ()
        table = self.projects
        table.blockSignals(True)
        table.setRowCount(len(snap.training))
        for row, v in enumerate(snap.training):
            acc = f"{100 * v.accuracy:.1f}%" if v.accuracy is not None else "-"
            cells = (v.title, v.status, str(v.epoch) if v.running or v.epoch else "-", acc,
                     f"{v.samples_contributed:,}", str(v.peers + 1) if v.running else "-",
                     _rule_text(v))
            for col, text in enumerate(cells):
                item = table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    table.setItem(row, col, item)
                item.setText(text)
                item.setToolTip(text)
            first = table.item(row, 0)
            first.setFlags(first.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            first.setCheckState(Qt.CheckState.Checked if v.opted_in else Qt.CheckState.Unchecked)
            first.setData(Qt.ItemDataRole.UserRole, v.project)
        table.blockSignals(False)
        self.samples.setText(f"{sum(v.samples_contributed for v in snap.training):,}")
        running = [v for v in snap.training if v.running]
        self.device.setText(next((v.device[:1].upper() + v.device[1:] for v in running
                                  if v.device), "-" if not running else tr("not decided yet")))
        passed = max((v.checks_passed for v in snap.training), default=0)
        failed = max((v.checks_failed for v in snap.training), default=0)
        self.checks.setText(tr("{0} passed, {1} failed").format(passed, failed) if passed or failed
                            else tr("none yet"))
        sw = snap.swarm
        self.swarm_serve.blockSignals(True)
        self.swarm_serve.setChecked(bool(snap.settings and snap.settings.swarm_serve))
        self.swarm_serve.blockSignals(False)
        self.swarm_status.setText(tr("Block serving: {0}").format(sw.status) if sw.status else "")
        self.swarm_numbers.setText(
            tr("Blocks {0}..{1} of {2} · {3:g} samples/s · {4} requests in the last hour "
               "· {5} queued").format(
                       sw.start, sw.end - 1, sw.model, sw.throughput,
                           sw.requests_last_hour, sw.queue)
            if sw.end > sw.start else "")
        self.swarm_numbers.setVisible(sw.end > sw.start)
        self.swarm_train.blockSignals(True)
        self.swarm_train.setChecked(bool(snap.settings and snap.settings.swarm_train))
        self.swarm_train.blockSignals(False)
        text = tr("SWARM training: {0}").format(sw.train_status) if sw.train_status else ""
        if sw.train_loss is not None:
            held = (f"{sw.held_out_loss:.3f}" if sw.held_out_loss is not None
                    else tr("not measured yet"))
            chance = tr("; untrained: {0:.3f}").format(
                    sw.chance_loss) if sw.chance_loss is not None else ""
            text += (tr("\nLoss {0:.3f} · held-out {1}{2} · {3:,} micro-batches · {4:g} "
                        "samples/s").format(
                                sw.train_loss, held, chance, sw.train_micro_batches,
                                    sw.train_samples_per_s))
        self.swarm_train_status.setText(text)
        errors = [f"{v.project}: {v.error}" for v in snap.training if v.error]
        self.error.setText("\n".join(errors))
        self.error.setVisible(bool(errors))

    def set_opted_in(self, project: str, on: bool) -> None:
        chosen = tuple(p for p in self._opted if p != project) + ((project,) if on else ())
        self._opted = chosen
        self.bridge.run(self.bridge.handle.update_settings(training_projects=chosen),
                        (tr("Joining {0}") if on else tr("Leaving {0}")).format(project))

    def _swarm_toggled(self, on: bool) -> None:
        self.bridge.run(self.bridge.handle.update_settings(swarm_serve=on),
                        tr("Serving model blocks") if on else tr("Stopping block serving"))

    def _swarm_train_toggled(self, on: bool) -> None:
        self.bridge.run(self.bridge.handle.update_settings(swarm_train=on),
                        tr("Training through the swarm") if on else tr("Stopping SWARM training"))

    def _changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        project = item.data(Qt.ItemDataRole.UserRole)
        if project:
            self.set_opted_in(project, item.checkState() == Qt.CheckState.Checked)
