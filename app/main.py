"""The tray app's main loop: QApplication + qasync, the node in its own thread.

Order matters for a quick start: the tray icon is shown before the node starts (the node's
start runs in an executor, never on the GUI thread). Quitting finishes the main coroutine;
the node is stopped off the GUI thread. No nested Qt event loop runs inside a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import qasync
from PySide6.QtWidgets import QApplication

from app.bridge import NodeBridge
from app.tray import TrayController
from core.handle import NodeHandle

log = logging.getLogger(__name__)


def run_tray(handle: NodeHandle, demo_children: Any = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Grove Village")
    app.setQuitOnLastWindowClosed(False)
    bridge = NodeBridge(handle)
    tray = TrayController(bridge)
    tray.show()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        quit_event = asyncio.Event()
        tray.quit_requested.connect(quit_event.set)
        if not handle.running:
            try:
                await loop.run_in_executor(None, handle.start)
            except Exception as e:
                log.exception("the node could not start")
                tray.icon.showMessage("Grove Village", f"The node could not start: {e}")
        await quit_event.wait()
        tray.icon.hide()
        await loop.run_in_executor(None, handle.stop)
        return 0

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        code = runner.run(main())
    bridge.close()
    return code
