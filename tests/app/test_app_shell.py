"""The app around the pages: the first-run wizard, one instance per profile, start on login,
the crash handler, and what is imported before the tray shows."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWizard

from app import crash
from app.bridge import NodeBridge
from app.single import SingleInstance
from app.wizard import MARKER, FirstRunWizard, needs_wizard, suggested_limits
from core import autostart
from tests.conftest import ROOT
from tests.nodes import make_handle, wait_for


def test_first_run_wizard_consent_is_off_until_ticked_and_choices_reach_the_node(
        qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    handle = make_handle(tmp_path, "first")
    data = handle.config.paths.data_dir
    assert needs_wizard(data, participating=False)
    handle.start()
    bridge = NodeBridge(handle)
    wizard = FirstRunWizard(bridge, data)
    qtbot.addWidget(wizard)
    try:
        wizard.open()
        qtbot.waitUntil(lambda: "threads" in wizard.hardware.text(), timeout=5000)
        assert wizard.tier.text().startswith("cpu (")
        assert not wizard.participate.isChecked()  # consent is off by default
        assert not wizard.start_on_login.isChecked()
        for _ in range(3):
            wizard.next()
        assert wizard.currentPage().title() == "Your choice"
        wizard.cpu_share.setValue(500)  # bounded: cannot exceed the setting's range
        assert wizard.cpu_share.value() == 100
        wizard.cpu_share.setValue(30)
        wizard.participate.setChecked(True)
        wizard.start_on_login.setChecked(True)
        with qtbot.waitSignal(wizard.finished_with, timeout=3000) as got:
            wizard.button(QWizard.WizardButton.FinishButton).click()
        assert got.args[0]["participate"] is True and got.args[0]["cpu_share"] == 30
        wait_for(lambda: handle.snapshot().participating, 3, "participation")
        assert handle.snapshot().settings.cpu_share == 30
        assert (data / MARKER).exists() and not needs_wizard(data, participating=False)
        entry = tmp_path / "xdg" / "autostart" / "grove-village.desktop"
        assert "Exec=" in entry.read_text() and "tray" in entry.read_text()
    finally:
        bridge.close()
        handle.stop()


def test_a_wizard_left_with_cancel_changes_nothing(qtbot: Any, tmp_path: Path) -> None:
    handle = make_handle(tmp_path, "cancel")
    handle.start()
    bridge = NodeBridge(handle)
    wizard = FirstRunWizard(bridge, handle.config.paths.data_dir)
    qtbot.addWidget(wizard)
    try:
        wizard.open()
        wizard.button(QWizard.WizardButton.CancelButton).click()
        assert not handle.snapshot().participating
        assert needs_wizard(handle.config.paths.data_dir, participating=False)
    finally:
        bridge.close()
        handle.stop()


def test_suggested_limits_are_modest_on_laptops() -> None:
    assert suggested_limits(16, has_battery=False) == {
        "cpu_share": 50, "pause_on_battery": True, "idle_only": False}
    assert suggested_limits(16, has_battery=True)["cpu_share"] == 25
    assert suggested_limits(4, has_battery=False)["cpu_share"] == 25


def test_a_second_instance_hands_its_request_to_the_first(qtbot: Any) -> None:
    first = SingleInstance("test-profile-single")
    assert not first.forward("show")  # nobody listening yet
    first.listen()
    try:
        second = SingleInstance("test-profile-single")
        with qtbot.waitSignal(first.message, timeout=3000) as got:
            assert second.forward("show health")
        assert got.args == ["show health"]
        assert not SingleInstance("another-profile").forward("show")
    finally:
        first.close()


def test_start_on_login_entries(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert not autostart.is_enabled("linux", env, tmp_path)
    path = autostart.set_enabled(True, "linux", env, tmp_path, ["/opt/grove/grove", "tray"])
    assert path == tmp_path / "cfg" / "autostart" / "grove-village.desktop"
    text = path.read_text()
    assert "Exec=/opt/grove/grove tray" in text and "Type=Application" in text
    assert autostart.is_enabled("linux", env, tmp_path)
    autostart.set_enabled(False, "linux", env, tmp_path)
    assert not autostart.is_enabled("linux", env, tmp_path)
    mac = autostart.set_enabled(True, "darwin", env, tmp_path, ["/Applications/Grove", "tray"])
    assert mac is not None and mac.name == "org.grove.village.plist"
    assert "<string>/Applications/Grove</string>" in mac.read_text()
    assert "RunAtLoad" in mac.read_text()


def test_the_crash_handler_writes_a_report_and_says_where(tmp_path: Path) -> None:
    told: list[str] = []
    unhook = crash.install(tmp_path / "crash", told.append)
    try:
        def slot() -> None:
            raise ValueError("a slot went wrong")
        try:
            slot()
        except ValueError:
            sys.excepthook(*sys.exc_info())  # as Qt does for an exception in a slot
        t = threading.Thread(target=lambda: 1 / 0, name="worker")
        t.start()
        t.join()
    finally:
        unhook()
    reports = sorted((tmp_path / "crash").glob("crash-*.txt"))
    assert len(reports) == 2
    texts = [r.read_text() for r in reports]
    assert any("ValueError: a slot went wrong" in t and "where: the app" in t for t in texts)
    assert any("ZeroDivisionError" in t and "where: thread worker" in t for t in texts)
    assert len(told) == 2 and all(str(tmp_path / "crash") in m for m in told)


def test_two_crash_reports_in_one_millisecond_are_both_kept(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A slot and a thread failing together once left one report: both named alike."""
    monkeypatch.setattr(crash.time, "time", lambda: 1_800_000_000.123)
    paths = [crash.write_report(tmp_path, RuntimeError, RuntimeError(what), None, "the app")
             for what in ("first", "second")]
    assert len(set(paths)) == 2
    assert ["RuntimeError: first" in p.read_text() for p in paths] == [True, False]
    assert "RuntimeError: second" in paths[1].read_text()


def test_the_tray_module_loads_without_the_node_torch_or_libp2p() -> None:
    code = ("import sys, json, app.main, app.icons, app.single; "
            "print(json.dumps(sorted(m for m in ('torch', 'libp2p', 'core.node', 'trio') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={"QT_QPA_PLATFORM": "offscreen",
                                                    "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
    # and the whole dashboard, with a node, still leaves torch for when compute starts
    code = "import sys, app.tray, core.node; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={"QT_QPA_PLATFORM": "offscreen",
                                                    "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "False", out.stderr
