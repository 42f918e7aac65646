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
from core.settings_schema import BY_NAME, Declaration
from core.snapshot import NodeSnapshot, NodeState

LIMITS = ("cpu_share", "max_threads", "ram_cap_mb", "use_gpu", "vram_cap_mb", "allowed_gpus",
          "upload_kbps", "download_kbps", "limit_lan", "bandwidth_schedule",
          "scheduled_upload_kbps", "scheduled_download_kbps", "idle_only", "idle_minutes",
          "pause_on_battery", "battery_resume_percent", "pause_for_programs",
          "pause_when_fullscreen", "pause_on_metered", "schedule", "gpu_temp_limit_c",
          "gpu_temp_hysteresis_c")
LABELS = {"cpu_share": "CPU share", "max_threads": "Max threads", "ram_cap_mb": "Memory cap",
          "use_gpu": "Use GPUs", "vram_cap_mb": "GPU memory cap", "allowed_gpus": "Which GPUs",
          "upload_kbps": "Upload cap", "download_kbps": "Download cap",
          "limit_lan": "Cap local network too", "bandwidth_schedule": "Other caps during",
          "scheduled_upload_kbps": "Upload cap then", "scheduled_download_kbps":
          "Download cap then",
          "idle_only": "Only when idle", "idle_minutes": "Idle after",
          "pause_on_battery": "Pause on battery", "battery_resume_percent": "Resume above",
          "pause_for_programs": "Pause while running", "pause_on_metered": "Pause on metered",
          "pause_when_fullscreen": "Pause when full screen",
          "schedule": "Weekly schedule", "gpu_temp_limit_c": "GPU temperature limit",
          "gpu_temp_hysteresis_c": "Cool down by"}
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
            label = QLabel(LABELS[name] + ":")
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

        usage = QGroupBox("Live usage against your limits")
        self.bars: dict[str, QProgressBar] = {}
        self.usage_text: dict[str, QLabel] = {}
        grid = QFormLayout(usage)
        for key, title in (("cpu", "CPU"), ("ram", "Memory"), ("up", "Upload"),
                           ("down", "Download")):
            bar = tip(QProgressBar(), f"{title} the network's work uses now, as a share of "
                      "your limit", f"{title} usage")
            bar.setRange(0, 100)
            text = QLabel()
            row = QHBoxLayout()
            row.addWidget(bar, 1)
            row.addWidget(text, 2)
            grid.addRow(title + ":", row)
            self.bars[key], self.usage_text[key] = bar, text
        self.compute = note()
        grid.addRow("Compute:", self.compute)
        self.test = tip(QPushButton("Test my limits"),
                        f"Run a synthetic job for {TEST_SECONDS:g} s through the governor and "
                        "see the usage it really gets")
        self.test.clicked.connect(self._run_test)
        self.test_result = note()
        grid.addRow(self.test, self.test_result)

        layout = QVBoxLayout(self)
        layout.addWidget(heading("Resources"))
        layout.addWidget(note("What this computer lends the network. Changes apply at once "
                              "and are kept in settings.toml."))
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(usage)
        layout.addStretch(1)

    # -- controls ------------------------------------------------------------------------------
    def _make(self, d: Declaration) -> QWidget:
        text = _tooltip(d)
        if d.type is bool:
            box = tip(QCheckBox(), text, LABELS[d.name])
            box.toggled.connect(lambda v, n=d.name: self._changed(n, bool(v)))
            return box
        if d.type is int and d.name == "cpu_share":
            slider = tip(QSlider(Qt.Orientation.Horizontal), text, LABELS[d.name])
            slider.setRange(int(d.lo or 0), int(d.hi or 100))
            slider.setSingleStep(5)
            slider.setPageStep(10)
            slider.valueChanged.connect(lambda v, n=d.name: self._changed(n, int(v)))
            slider.valueChanged.connect(lambda v: self.cpu_value.setText(f"{v}%"))
            return slider
        if d.type is int:
            spin = tip(QSpinBox(), text, LABELS[d.name])
            spin.setRange(int(d.lo or 0), int(d.hi if d.hi is not None else 2**31 - 1))
            if d.unit:
                spin.setSuffix(f" {d.unit}")
            if d.lo == 0:
                spin.setSpecialValueText({"max_threads": "auto",
                                          "battery_resume_percent": "only when plugged in",
                                          "vram_cap_mb": "all of it"}.get(d.name, "no cap"))
            spin.valueChanged.connect(lambda v, n=d.name: self._changed(n, int(v)))
            return spin
        edit = tip(QLineEdit(), text, LABELS[d.name])
        edit.setPlaceholderText({"schedule": "any time, e.g. mon-fri 18:00-08:00; sat-sun",
                                 "allowed_gpus": "all, or e.g. 0,1",
                                 "pause_for_programs": "none, or e.g. steam, zoom",
                                 "bandwidth_schedule": "never, e.g. mon-fri 09:00-18:00"
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
        self.test_result.setText(f"running for {TEST_SECONDS:g} s…")

        def done(f: Any) -> None:  # node thread
            e = f.exception()
            self._tested.emit(f"failed: {e}" if e else "")
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
        self._bar("cpu", u.cpu_percent, share, f"{u.cpu_percent:.1f}% of this computer "
                  f"(limit {share}%)")
        cap = s.ram_cap_mb if s else 0
        self._bar("ram", u.rss_mb, cap, f"{u.rss_mb:.0f} MB (limit {cap} MB; "
                  f"{u.reserved_mb:.0f} MB held for network work)" +
                  (f"\nrefused: {u.memory_refusal}" if u.memory_refusal else ""))
        for key, now, limit in (("up", u.upload_kbps, s.upload_kbps if s else 0),
                                ("down", u.download_kbps, s.download_kbps if s else 0)):
            self._bar(key, now, limit, f"{now:.1f} kB/s " +
                      (f"(limit {limit} kB/s)" if limit else "(no cap)"))
        g = snap.governor
        self.compute.setText(
            (f"may run {g.threads} thread(s) at {g.duty_cycle:.0%}" if g.may_compute
             else g.reason or "-") + (f"; {snap.compute.threads_running} running now"
                                      if snap.compute.threads_running else "")
            + "".join(f"\n{n[0].upper()}{n[1:]}." for n in g.notes))
        if not snap.compute.job_running:
            self.test.setEnabled(running)
            if snap.compute.last_test:
                self.test_result.setText(snap.compute.last_test)

    def _bar(self, key: str, value: float, limit: float, text: str) -> None:
        self.bars[key].setValue(int(min(100, 100 * value / limit)) if limit else 0)
        self.usage_text[key].setText(text)
