"""Resources: a bounded control for every governor limit, live usage against each limit, and
"test my limits". Widgets take their ranges from the settings declarations, so an out-of-range
value cannot be entered; free-text fields (schedule, GPUs) are checked by the node and refused
with the valid form."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.bridge import NodeBridge
from app.pages import heading, note, tip
from core.i18n import QT_TR_NOOP, tr
from core.settings_schema import BY_NAME, Declaration
from core.snapshot import NodeSnapshot, NodeState

LIMITS = ("cpu_share", "max_threads", "ram_cap_mb", "use_gpu", "vram_cap_mb", "allowed_gpus",
          "upload_kbps", "download_kbps", "limit_lan", "bandwidth_schedule",
          "scheduled_upload_kbps", "scheduled_download_kbps", "idle_only", "idle_minutes",
          "pause_on_battery", "battery_resume_percent", "pause_for_programs",
          "pause_when_fullscreen", "pause_on_metered", "schedule", "gpu_temp_limit_c",
          "gpu_temp_hysteresis_c")
LABELS = {"cpu_share": QT_TR_NOOP("CPU share"), "max_threads": QT_TR_NOOP("Max threads"),
    "ram_cap_mb": QT_TR_NOOP("Memory cap"),
          "use_gpu": QT_TR_NOOP("Use GPUs"), "vram_cap_mb": QT_TR_NOOP("GPU memory cap"),
              "allowed_gpus": QT_TR_NOOP("Which GPUs"),
          "upload_kbps": QT_TR_NOOP("Upload cap"), "download_kbps": QT_TR_NOOP("Download cap"),
          "limit_lan": QT_TR_NOOP("Cap local network too"),
              "bandwidth_schedule": QT_TR_NOOP("Other caps during"),
          "scheduled_upload_kbps": QT_TR_NOOP("Upload cap then"), "scheduled_download_kbps":
          QT_TR_NOOP("Download cap then"),
          "idle_only": QT_TR_NOOP("Only when idle"), "idle_minutes": QT_TR_NOOP("Idle after"),
          "pause_on_battery": QT_TR_NOOP("Pause on battery"),
              "battery_resume_percent": QT_TR_NOOP("Resume above"),
          "pause_for_programs": QT_TR_NOOP("Pause while running"),
              "pause_on_metered": QT_TR_NOOP("Pause on metered"),
          "pause_when_fullscreen": QT_TR_NOOP("Pause when full screen"),
          "schedule": QT_TR_NOOP("Weekly schedule"),
              "gpu_temp_limit_c": QT_TR_NOOP("GPU temperature limit"),
          "gpu_temp_hysteresis_c": QT_TR_NOOP("Cool down by")}
APPLY_DELAY_MS = 400  # a slider drag sends one change, not fifty
TEST_SECONDS = 10.0


def _tooltip(d: Declaration) -> str:
    return f"{d.description} ({d.range_text()})"


class ResourcesPage(QWidget):
    _applied = Signal(object, str)  # fields, error ("" when applied)
    _tested = Signal(str)

    def __init__(self, bridge: NodeBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.controls: dict[str, QWidget] = {}
        self.pending: dict[str, Any] = {}
        self.in_flight: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(APPLY_DELAY_MS)
        self._timer.timeout.connect(self._apply)
        self._applied.connect(self._on_applied)
        self._tested.connect(self._on_tested)

        self.cpu_value = QLabel()
        self.cpu_value.setMinimumWidth(40)
        form = QFormLayout()
        for name in LIMITS:
            d = BY_NAME[name]
            widget = self._make(d)
            self.controls[name] = widget
            label = QLabel(tr("{0}:").format(tr(LABELS[name])))
            label.setBuddy(widget)
            if name == "cpu_share":
                row = QHBoxLayout()
                row.addWidget(widget, 1)
                row.addWidget(self.cpu_value)
                form.addRow(label, row)
            else:
                form.addRow(label, widget)
        self.error = note()
        self.error.setStyleSheet("color: #c5221f;")
        self.error.hide()

        usage = QGroupBox(tr("Live usage against your limits"))
        self.bars: dict[str, QProgressBar] = {}
        self.usage_text: dict[str, QLabel] = {}
        grid = QFormLayout(usage)
        for key, title in (("cpu", tr("CPU")), ("ram", tr("Memory")), ("up", tr("Upload")),
                           ("down", tr("Download"))):
            bar = tip(QProgressBar(), tr("{0} the network's work uses now, as a share of "
                                         "your limit").format(title), tr("{0} usage").format(title))
            bar.setRange(0, 100)
            text = QLabel()
            row = QHBoxLayout()
            row.addWidget(bar, 1)
            row.addWidget(text, 2)
            grid.addRow(title + ":", row)
            self.bars[key], self.usage_text[key] = bar, text
        self.compute = note()
        grid.addRow(tr("Compute:"), self.compute)
        self.test = tip(QPushButton(tr("Test my limits")),
                        tr("Run a synthetic job for {0:g} s through the governor and see "
                           "the usage it really gets").format(TEST_SECONDS))
        self.test.clicked.connect(self._run_test)
        self.test_result = note()
        grid.addRow(self.test, self.test_result)

        layout = QVBoxLayout(self)
        layout.addWidget(heading(tr("Resources")))
        layout.addWidget(note(tr("What this computer lends the network. Changes apply at once "
                              "and are kept in settings.toml.")))
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(usage)
        layout.addStretch(1)

    # -- controls ------------------------------------------------------------------------------
    def _make(self, d: Declaration) -> QWidget:
        text = _tooltip(d)
        if d.type is bool:
            box = tip(QCheckBox(), text, tr(LABELS[d.name]))
            box.toggled.connect(lambda v, n=d.name: self._changed(n, bool(v)))
            return box
        if d.type is int and d.name == "cpu_share":
            slider = tip(QSlider(Qt.Orientation.Horizontal), text, tr(LABELS[d.name]))
            slider.setRange(int(d.lo or 0), int(d.hi or 100))
            slider.setSingleStep(5)
            slider.setPageStep(10)
            slider.valueChanged.connect(lambda v, n=d.name: self._changed(n, int(v)))
            slider.valueChanged.connect(lambda v: self.cpu_value.setText(f"{v}%"))
            return slider
        if d.type is int:
            spin = tip(QSpinBox(), text, tr(LABELS[d.name]))
            spin.setRange(int(d.lo or 0), int(d.hi if d.hi is not None else 2**31 - 1))
            if d.unit:
                spin.setSuffix(f" {d.unit}")
            if d.lo == 0:
                spin.setSpecialValueText({"max_threads": tr("auto"),
                                          "battery_resume_percent": tr("only when plugged in"),
                                          "vram_cap_mb": tr("all of it")}.get(d.name,
                                                                              tr("no cap")))
            spin.valueChanged.connect(lambda v, n=d.name: self._changed(n, int(v)))
            return spin
        edit = tip(QLineEdit(), text, tr(LABELS[d.name]))
        edit.setPlaceholderText({"schedule": tr("any time, e.g. mon-fri 18:00-08:00; sat-sun"),
                                 "allowed_gpus": tr("all, or e.g. 0,1"),
                                 "pause_for_programs": tr("none, or e.g. steam, zoom"),
                                 "bandwidth_schedule": tr("never, e.g. mon-fri 09:00-18:00")
                                 }.get(d.name, ""))
        edit.editingFinished.connect(lambda n=d.name, e=edit: self._changed(n, e.text()))
        return edit

    def _set(self, name: str, value: Any) -> None:
        w = self.controls[name]
        w.blockSignals(True)
        try:
            if isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QSlider | QSpinBox):
                w.setValue(int(value))
            elif isinstance(w, QLineEdit) and not w.hasFocus():
                w.setText(",".join(value) if isinstance(value, tuple) else str(value))
        finally:
            w.blockSignals(False)
        if name == "cpu_share":
            self.cpu_value.setText(f"{int(value)}%")

    def _changed(self, name: str, value: Any) -> None:
        if name in ("allowed_gpus", "pause_for_programs"):
            value = tuple(x.strip() for x in str(value).split(",") if x.strip())
        self.pending[name] = value
        self._timer.start()

    def _apply(self) -> None:
        changes, self.pending = self.pending, {}
        if not changes:
            return
        self.in_flight |= set(changes)
        future = self.bridge.handle.update_settings(**changes)
        fields = tuple(changes)

        def done(f: Any) -> None:  # node thread
            e = f.exception()
            self._applied.emit(fields, str(e) if e else "")
        future.add_done_callback(done)

    def _on_applied(self, fields: tuple[str, ...], error: str) -> None:
        self.in_flight -= set(fields)
        self.error.setText(error)
        self.error.setVisible(bool(error))
        if error:  # show what the node really has again
            self.show_snapshot(self.bridge.latest(), force=fields)

    def _run_test(self) -> None:
        self.test.setEnabled(False)
        self.test_result.setText(tr("running for {0:g} s…").format(TEST_SECONDS))

        def done(f: Any) -> None:  # node thread
            e = f.exception()
            self._tested.emit(tr("failed: {0}").format(e) if e else "")
        self.bridge.handle.run_test_job(TEST_SECONDS).add_done_callback(done)

    def _on_tested(self, error: str) -> None:
        self.test.setEnabled(self.bridge.latest().state is NodeState.RUNNING)
        if error:
            self.test_result.setText(error)
        else:
            self.show_snapshot(self.bridge.latest())

    # -- snapshot ------------------------------------------------------------------------------
    def show_snapshot(self, snap: NodeSnapshot, force: tuple[str, ...] = ()) -> None:
        s = snap.settings
        running = snap.state is NodeState.RUNNING
        for w in self.controls.values():
            w.setEnabled(running)
        if s is not None:
            for name in LIMITS:
                if name in force or (name not in self.pending and name not in self.in_flight):
                    self._set(name, getattr(s, name))
        u = snap.usage
        share = s.cpu_share if s else 100
        self._bar("cpu", u.cpu_percent, share,
                  tr("{0:.1f}% of this computer (limit {1}%)").format(u.cpu_percent, share))
        cap = s.ram_cap_mb if s else 0
        self._bar("ram", u.rss_mb, cap, tr("{0:.0f} MB (limit {1} MB; {2:.0f} MB held for "
                                           "network work)").format(u.rss_mb, cap, u.reserved_mb) +
                  ("\n" + tr("refused: {0}").format(u.memory_refusal) if u.memory_refusal else ""))
        for key, now, limit in (("up", u.upload_kbps, s.upload_kbps if s else 0),
                                ("down", u.download_kbps, s.download_kbps if s else 0)):
            self._bar(key, now, limit, f"{now:.1f} kB/s " +
                      (tr("(limit {0} kB/s)").format(limit) if limit else tr("(no cap)")))
        g = snap.governor
        self.compute.setText(
            (tr("may run {0} thread(s) at {1:.0%}").format(g.threads, g.duty_cycle) if g.may_compute
             else g.reason or "-") + (tr("; {0} running now").format(snap.compute.threads_running)
                                      if snap.compute.threads_running else "")
            + "".join(f"\n{n[0].upper()}{n[1:]}." for n in g.notes))
        if not snap.compute.job_running:
            self.test.setEnabled(running)
            if snap.compute.last_test:
                self.test_result.setText(snap.compute.last_test)

    def _bar(self, key: str, value: float, limit: float, text: str) -> None:
        self.bars[key].setValue(int(min(100, 100 * value / limit)) if limit else 0)
        self.usage_text[key].setText(text)
