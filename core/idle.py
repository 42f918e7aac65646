"""How long since the gardener last touched keyboard or mouse, per OS, behind one call.

`idle_seconds()` returns (seconds, "") or (None, why it cannot tell). Linux/X11 uses the
XScreenSaver extension (libXss); Wayland, ext-idle-notify-v1 where the compositor offers it
(core.wayland_idle), else GNOME's Mutter IdleMonitor over D-Bus; Windows
GetLastInputInfo; macOS IOKit's HIDIdleTime. Where none works (another Wayland compositor, a
server, no display) it says so: the governor then treats idle-only as unavailable instead of
guessing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from functools import cache
from typing import Any


class _XScreenSaverInfo(ctypes.Structure):
    _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int), ("kind", ctypes.c_int),
                ("til_or_since", ctypes.c_ulong), ("idle", ctypes.c_ulong),
                ("eventMask", ctypes.c_ulong)]


@cache
def _x11() -> tuple[Any, Any, Any] | str:
    if not os.environ.get("DISPLAY"):
        return "no X11 display"
    xlib_name = ctypes.util.find_library("X11")
    xss_name = ctypes.util.find_library("Xss")
    if not xlib_name or not xss_name:
        return "the X11 screensaver library (libXss) is not installed"
    xlib, xss = ctypes.CDLL(xlib_name), ctypes.CDLL(xss_name)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XDefaultRootWindow.restype = ctypes.c_ulong
    xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_XScreenSaverInfo)
    xss.XScreenSaverQueryInfo.argtypes = [ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.POINTER(_XScreenSaverInfo)]
    display = xlib.XOpenDisplay(None)
    if not display:
        return "the X11 display cannot be opened"
    return xlib, xss, display


def _mutter() -> tuple[float | None, str]:
    """GNOME on Wayland: Mutter's IdleMonitor on the session bus (`busctl`, part of systemd)."""
    import shutil

    busctl = shutil.which("busctl")
    if busctl is None:
        return None, ("Wayland: busctl (systemd) is not installed, so GNOME's idle monitor "
                      "cannot be asked")
    try:
        out = subprocess.run(
            [busctl, "--user", "call", "org.gnome.Mutter.IdleMonitor",
             "/org/gnome/Mutter/IdleMonitor/Core", "org.gnome.Mutter.IdleMonitor",
             "GetIdletime"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"Wayland: GNOME's idle monitor did not answer ({e})"
    return parse_mutter(out.returncode, out.stdout)


def parse_mutter(returncode: int, stdout: str) -> tuple[float | None, str]:
    """busctl's answer to GetIdletime ("t <milliseconds>") as seconds, or why not."""
    parts = stdout.split()
    if returncode == 0 and len(parts) == 2 and parts[0] == "t" and parts[1].isdigit():
        return int(parts[1]) / 1000.0, ""
    return None, ("Wayland without GNOME's idle monitor: this desktop does not tell "
                  "applications how long it has been idle, so idle-only cannot work here")


def _wayland() -> tuple[float | None, str]:
    """ext-idle-notify-v1 where the compositor offers it (core.wayland_idle), else GNOME's
    Mutter over D-Bus, else why neither can be asked."""
    from core import wayland_idle

    seconds, why_not = wayland_idle.idle_seconds()
    if seconds is not None:
        return seconds, ""
    seconds, _ = _mutter()
    if seconds is not None:
        return seconds, ""
    return None, (f"Wayland: {why_not}, and GNOME's idle monitor cannot be asked either "
                  "- this desktop does not tell applications how long it has been idle, "
                  "so idle-only cannot work here")


def _linux() -> tuple[float | None, str]:
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return _wayland()
    x = _x11()
    if isinstance(x, str):
        return None, x
    xlib, xss, display = x
    info = xss.XScreenSaverAllocInfo()
    if not xss.XScreenSaverQueryInfo(display, xlib.XDefaultRootWindow(display), info):
        return None, "the X server has no screensaver extension"
    idle_ms = info.contents.idle
    xlib.XFree(info)
    return idle_ms / 1000.0, ""


def _windows() -> tuple[float | None, str]:  # pragma: no cover - Windows only
    class LASTINPUTINFO(ctypes.Structure):
        _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

    lii = LASTINPUTINFO()
    lii.cbSize = ctypes.sizeof(lii)
    windll = ctypes.windll  # type: ignore[attr-defined]
    if not windll.user32.GetLastInputInfo(ctypes.byref(lii)):
        return None, "GetLastInputInfo failed"
    return (windll.kernel32.GetTickCount() - lii.dwTime) / 1000.0, ""


def _macos() -> tuple[float | None, str]:  # pragma: no cover - macOS only
    try:
        out = subprocess.run(["ioreg", "-c", "IOHIDSystem", "-d", "4"], capture_output=True,
                             text=True, timeout=2).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"ioreg failed ({e})"
    for line in out.splitlines():
        if "HIDIdleTime" in line:
            return int(line.rsplit("=", 1)[1].strip()) / 1e9, ""
    return None, "HIDIdleTime not reported"


def idle_seconds() -> tuple[float | None, str]:
    try:
        if sys.platform.startswith("linux"):
            return _linux()
        if sys.platform == "win32":
            return _windows()
        if sys.platform == "darwin":
            return _macos()
    except OSError as e:
        return None, f"idle time unavailable ({e})"
    return None, f"no idle-time source for {sys.platform}"
