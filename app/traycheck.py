"""Is there a system tray? Asked in a child process: a Qt platform that cannot start aborts
the process that tries, and `grove doctor` must survive to report it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from core.demo import grove_command

PROBE_ARG = "_probe-tray"


def probe_tray(timeout: float = 15.0) -> dict[str, Any]:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform == "offscreen":
        return {"available": False, "reason": "Qt runs offscreen here (QT_QPA_PLATFORM)"}
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return {"available": False, "reason": "no display (DISPLAY and WAYLAND_DISPLAY unset)"}
    try:
        out = subprocess.run([*grove_command(), PROBE_ARG], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"the tray check did not finish in {timeout:g} s"}
    try:
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"available": False, "reason": f"Qt could not start: {tail}"}


def probe_in_process() -> dict[str, Any]:
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon

    QApplication([])
    ok = QSystemTrayIcon.isSystemTrayAvailable()
    reason = "a system tray is running" if ok else "the desktop has no system tray running"
    return {"available": ok, "reason": reason}
