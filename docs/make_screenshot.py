"""Render the dashboard of a live local village (two real nodes on loopback) to a PNG.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshot.py docs/img/dashboard.png
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from app.bridge import NodeBridge
from app.dashboard import Dashboard
from core.handle import NodeHandle
from core.node import NodeConfig


def main(out: str) -> None:
    app = QApplication([])
    env = {"GROVE_HOME": tempfile.mkdtemp(), "GROVE_KEY_STORE": "file"}
    base = {"listen_host": "127.0.0.1", "use_default_bootstrap": False}
    village = NodeHandle(NodeConfig.load("village", env=env,
                                         overrides={**base, "participate": True}))
    village.start()
    neighbour = NodeHandle(NodeConfig.load("neighbour", env=env, overrides={
        **base, "bootstrap": (village.snapshot().listen_addrs[0],)}))
    neighbour.start()
    dashboard = Dashboard(NodeBridge(village))
    dashboard.show()
    deadline = time.time() + 30
    while time.time() < deadline and not (village.snapshot().villages and
                                          village.snapshot().peers[0].rtt_ms):
        app.processEvents()
        time.sleep(0.05)
    app.processEvents()
    dashboard.grab().save(out)
    village.stop()
    neighbour.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/dashboard.png")
