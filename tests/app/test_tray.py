"""The tray shell against the real node (offscreen Qt, real libp2p hosts)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from PySide6.QtCore import QTimer

from app.bridge import NodeBridge
from app.tray import TrayController
from core.snapshot import NodeState
from tests.nodes import make_handle, wait_for


def test_participate_from_the_menu_reaches_the_node_within_1s_and_persists(
        qtbot, tmp_path: Path) -> None:
    handle = make_handle(tmp_path, "tray")
    handle.start()
    bridge = NodeBridge(handle)
    tray = TrayController(bridge)
    try:
        assert not tray.participate.isChecked()
        began = time.monotonic()
        tray.participate.trigger()  # as a click on the menu item does
        qtbot.waitUntil(lambda: handle.snapshot().participating, timeout=1000)
        assert time.monotonic() - began < 1.0
        # participating but no peers yet: the icon says so, it does not turn green
        qtbot.waitUntil(lambda: tray.state == "offline", timeout=2000)
        assert tray.participate.isChecked()
        assert "participate = true" in handle.config.paths.settings_file.read_text()
        # the node stops under the tray: the icon says offline, the menu offers a restart
        assert not tray.restart.isVisible()
        handle.stop()
        qtbot.waitUntil(lambda: tray.state == "offline" and tray.restart.isVisible(),
                        timeout=5000)
        assert not tray.participate.isEnabled()
        tray.restart.trigger()
        qtbot.waitUntil(lambda: handle.snapshot().state is NodeState.RUNNING, timeout=15000)
        qtbot.waitUntil(lambda: not tray.restart.isVisible() and tray.participate.isChecked(),
                        timeout=5000)
    finally:
        bridge.close()
        handle.stop()
    restarted = make_handle(tmp_path, "tray")
    assert restarted.config.settings.participate is True


def test_a_hundred_commands_from_a_qt_timer_never_block_the_gui(qtbot, tmp_path: Path,
                                                                ) -> None:
    handle = make_handle(tmp_path, "busy")
    handle.start()
    ticks: list[float] = []
    futures = []
    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(lambda: ticks.append(time.monotonic()))
    sender = QTimer()
    sender.setInterval(2)

    def send() -> None:
        n = len(futures)
        if n >= 100:
            sender.stop()
            return
        # alternate commands that touch the disk (settings) and ones that do not
        if n % 2:
            futures.append(handle.set_participation(bool(n % 4 == 1)))
        else:
            futures.append(handle.pause(time.time() + 60 + n))
    sender.timeout.connect(send)
    try:
        ticker.start()
        sender.start()
        qtbot.waitUntil(lambda: len(futures) == 100 and all(f.done() for f in futures),
                        timeout=20000)
        ticker.stop()
        assert all(f.exception() is None for f in futures)
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) > 20
        # a blocked GUI waits out the node thread's settings writes (seconds under load);
        # scheduling noise beside another test worker on 2 cores reached 0.26 s
        assert max(gaps) < 0.5, f"the GUI loop stalled for {max(gaps):.3f} s"
    finally:
        handle.stop()


def test_run_tray_with_qasync_starts_and_quits_the_node(qapp, tmp_path: Path) -> None:
    from app import main as app_main

    handle = make_handle(tmp_path, "loop")
    seen = []

    def poll() -> None:
        snap = handle.snapshot()
        if snap.state is NodeState.RUNNING and not seen:
            seen.append(snap)
            handle_participation = handle.set_participation(True)
            seen.append(handle_participation)

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    quitter = QTimer()
    quitter.setSingleShot(True)

    from app import tray as app_tray

    original = app_tray.TrayController

    class QuittingTray(original):  # type: ignore[misc, valid-type]
        def __init__(self, bridge: NodeBridge, **kw: object) -> None:
            super().__init__(bridge, **kw)
            quitter.timeout.connect(self.quit.trigger)

    def arm() -> None:
        if len(seen) == 2 and seen[1].done():
            quitter.start(0)
    timer.timeout.connect(arm)
    app_tray.TrayController = QuittingTray  # type: ignore[misc]
    try:
        code = app_main.run_tray(handle)
    finally:
        app_tray.TrayController = original  # type: ignore[misc]
        timer.stop()
    assert code == 0
    assert seen and seen[0].state is NodeState.RUNNING
    assert seen[1].result() is True
    assert handle.snapshot().state is NodeState.STOPPED
    wait_for(lambda: not handle.running, 5, "node thread to end")


def test_without_a_tray_grove_lives_in_a_window_that_says_why_and_quits_on_close(
        qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A desktop with no tray (Qt's offscreen platform has none either): the dashboard is a
    normal top-level window, says why once at its top, shows notifications there, and
    closing it asks Grove to quit instead of hiding it where nobody can find it."""
    from PySide6.QtWidgets import QSystemTrayIcon

    from app.tray import NO_TRAY
    from tests.app.fake_node import FakeHandle

    assert not QSystemTrayIcon.isSystemTrayAvailable()
    handle = FakeHandle(tmp_path)
    handle.start()
    bridge = NodeBridge(handle)  # type: ignore[arg-type]
    try:
        tray = TrayController(bridge, window=True)
        quits: list[bool] = []
        tray.quit_requested.connect(lambda: quits.append(True))
        tray.show()
        d = tray.dashboard
        qtbot.waitUntil(d.isVisible, timeout=3000)
        assert d.isWindow() and not tray.icon.isVisible()
        assert d.banner.isVisible() and d.banner.text() == NO_TRAY
        tray.say("Grove paused", "on battery")
        assert d.banner.text() == "Grove paused: on battery"
        d.close()
        assert quits == [True]
    finally:
        bridge.close()
