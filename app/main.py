"""The tray app's main loop: QApplication + qasync, the node in its own thread.

Order matters for a quick start: `launch` shows the tray icon ("starting") before the heavy
imports (libp2p, the node) and before the node starts; the node's start runs in an executor,
never on the GUI thread. Quitting finishes the main coroutine; the node is stopped off the GUI
thread. No nested Qt event loop runs inside a coroutine (dialogs use `open()`).

This module imports only Qt at load time; everything heavy is imported inside functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from app import i18n
from core.i18n import tr

if TYPE_CHECKING:
    from core.handle import NodeHandle

log = logging.getLogger(__name__)
PROBE_ENV = "GROVE_STARTUP_PROBE"  # a file: startup milestones are appended (bench.app_start)


def startup_mark(event: str) -> None:
    path = os.environ.get(PROBE_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "t": time.time()}) + "\n")


def _app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Grove Village")
    app.setQuitOnLastWindowClosed(False)
    i18n.install(app)
    return app


def profile_key(profile: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return f"{env.get('GROVE_HOME', '')}:{profile}"


def launch(profile: str, overrides: dict[str, Any], page: str = "", *,
           window: bool = False) -> int:
    """`grove tray`: one instance per profile, the icon first, then the node. `window`: the
    desktop shows no tray; Grove lives as a normal window instead."""
    from app.icons import icon_for
    from app.single import SingleInstance

    app = _app()
    single = SingleInstance(profile_key(profile))
    if single.forward(f"show {page}".strip()):
        print("grove: Grove is already running for this profile; its dashboard was brought "
              "forward.", file=sys.stderr)
        return 0
    single.listen()
    icon = QSystemTrayIcon(icon_for("offline"))
    icon.setToolTip(tr("Grove: starting…"))
    if not window:
        icon.show()
    app.processEvents()
    startup_mark("tray_visible")
    from core.handle import NodeHandle
    from core.node import NodeConfig

    config = NodeConfig.load(profile, overrides=overrides)
    try:
        return run_tray(NodeHandle(config), single=single, icon=icon, page=page,
                        window=window)
    finally:
        single.close()


class _Teller(QObject):
    """Carries a crash sentence from any thread to the tray (a queued signal)."""

    said = Signal(str)


def run_tray(handle: NodeHandle, demo_children: Any = None, *, single: Any = None,
             icon: QSystemTrayIcon | None = None, page: str = "",
             wizard: bool = True, window: bool = False) -> int:
    from app import crash
    from app.bridge import NodeBridge
    from app.tray import TrayController
    from app.wizard import FirstRunWizard, needs_wizard

    app = _app()
    bridge = NodeBridge(handle)
    tray = TrayController(bridge, icon=icon, window=window)
    tray.show()
    teller = _Teller()
    teller.said.connect(lambda text: tray.say("Grove Village", text, error=True))
    paths = handle.config.paths
    unhook = crash.install(paths.log_dir / "crash", teller.said.emit)
    if single is not None:
        single.message.connect(lambda msg: tray.show_dashboard(msg.partition(" ")[2]))
    if page:
        tray.show_dashboard(page)
    first = FirstRunWizard(bridge, paths.data_dir) \
        if wizard and needs_wizard(paths.data_dir, handle.config.settings.participate) else None
    if first is not None:
        first.open()

    marked: list[bool] = []

    def first_snapshot(snap: Any) -> None:
        if not marked and snap.peer_id:
            marked.append(True)
            startup_mark("first_snapshot")
    bridge.snapshot.connect(first_snapshot)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        quit_event = asyncio.Event()
        tray.quit_requested.connect(quit_event.set)
        for sig in (signal.SIGTERM, signal.SIGINT):  # a logout, `kill`, Ctrl-C: stop cleanly
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, quit_event.set)
        if not handle.running:
            try:
                await loop.run_in_executor(None, handle.start)
            except Exception as e:
                log.exception("the node could not start")
                tray.say("Grove Village", f"The node could not start: {e}", error=True)
        await quit_event.wait()
        tray.icon.hide()
        await loop.run_in_executor(None, handle.stop)
        return 0

    try:
        with asyncio.Runner(loop_factory=lambda: _qasync_loop(app)) as runner:
            code = runner.run(main())
    finally:
        unhook()
        bridge.close()
    return code


def _qasync_loop(app: QApplication) -> asyncio.AbstractEventLoop:
    import qasync

    return qasync.QEventLoop(app)
