"""What the desktop is doing, for the governor's rules the gardener may turn on: which programs
run (pause while a chosen one does), whether one fills the screen, and whether the network
connection is metered. One module, so a test fakes the platform at one seam.

`running_programs()` -> (lower-case program names, "") or (None, why it cannot tell);
`metered()` -> (True/False, "") or (None, why it cannot tell). Linux asks NetworkManager over
D-Bus (`busctl`, part of systemd) for its `Metered` property; elsewhere it cannot tell yet.
`fullscreen()` -> (True/False, "") or (None, why it cannot tell): X11 and Windows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from functools import cache
from typing import Any

import psutil

# NetworkManager's NMMetered: 1 yes, 3 guessed yes; 2 no, 4 guessed no; 0 unknown
_METERED = {1: True, 3: True, 2: False, 4: False}


def running_programs() -> tuple[frozenset[str] | None, str]:
    names: set[str] = set()
    try:
        for proc in psutil.process_iter(["name", "exe"]):
            info = proc.info
            if info.get("name"):
                names.add(str(info["name"]).lower())
            if info.get("exe"):
                names.add(os.path.basename(str(info["exe"])).lower())
    except (psutil.Error, OSError) as e:
        return None, f"the process list cannot be read ({e})"
    return frozenset(names), ""


def metered() -> tuple[bool | None, str]:
    if not sys.platform.startswith("linux"):
        return None, f"metered connections are not detected on {sys.platform} yet"
    busctl = shutil.which("busctl")
    if busctl is None:
        return None, "busctl (systemd) is not installed, so NetworkManager cannot be asked"
    try:
        out = subprocess.run(
            [busctl, "get-property", "org.freedesktop.NetworkManager",
             "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager", "Metered"],
            capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"NetworkManager did not answer ({e})"
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2 or not parts[1].isdigit():
        return None, "NetworkManager is not running (it is what says a connection is metered)"
    value = _METERED.get(int(parts[1]))
    return (value, "") if value is not None else (None, "NetworkManager does not know")


# -- a program filling the screen (a game, a film, a video call's presentation) -------------
def fullscreen() -> tuple[bool | None, str]:
    """(True/False, "") or (None, why it cannot tell). X11: the active window's
    `_NET_WM_STATE` holds `_NET_WM_STATE_FULLSCREEN` (EWMH, set by every window manager that
    does full screen); Windows: SHQueryUserNotificationState says busy, Direct3D full screen or
    presentation mode. Wayland does not show one program another's windows."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return _windows_fullscreen()
    if sys.platform == "darwin":  # pragma: no cover - macOS only
        return None, "full-screen programs are not detected on macOS yet"
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return None, "Wayland does not let one program see another's windows"
    x = _xlib()
    if isinstance(x, str):
        return None, x
    xlib, display = x
    root = xlib.XDefaultRootWindow(display)
    active = _x_longs(xlib, display, root, b"_NET_ACTIVE_WINDOW")
    if active is None:
        return None, "the window manager does not say which window is active"
    if not active or not active[0]:
        return False, ""
    state = _x_longs(xlib, display, active[0], b"_NET_WM_STATE") or []
    full = xlib.XInternAtom(display, b"_NET_WM_STATE_FULLSCREEN", True)
    return bool(full) and full in state, ""


@cache
def _xlib() -> tuple[Any, Any] | str:
    if not os.environ.get("DISPLAY"):
        return "no X11 display"
    name = ctypes.util.find_library("X11")
    if not name:
        return "the X11 library (libX11) is not installed"
    xlib = ctypes.CDLL(name)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultRootWindow.restype = ctypes.c_ulong
    xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XGetWindowProperty.restype = ctypes.c_int
    xlib.XGetWindowProperty.argtypes = [
        ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long,
        ctypes.c_int, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]
    xlib.XFree.argtypes = [ctypes.c_void_p]
    # Xlib's default error handler exits the process: a window that closed between two
    # calls (BadWindow) must be an empty answer instead
    xlib.XSetErrorHandler(_IGNORE_X_ERRORS)
    display = xlib.XOpenDisplay(None)
    if not display:
        return "the X11 display cannot be opened"
    return xlib, display


_IGNORE_X_ERRORS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(
    lambda display, event: 0)


def _x_longs(xlib: Any, display: Any, window: int, name: bytes) -> list[int] | None:
    """A window's 32-bit property as numbers; None when the property does not exist."""
    atom = xlib.XInternAtom(display, name, True)
    if not atom:
        return None
    kind, fmt = ctypes.c_ulong(), ctypes.c_int()
    count, after = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    if xlib.XGetWindowProperty(display, window, atom, 0, 64, False, 0, ctypes.byref(kind),
                               ctypes.byref(fmt), ctypes.byref(count), ctypes.byref(after),
                               ctypes.byref(data)) != 0:
        return None
    try:
        if not kind.value:  # no such property on this window
            return None
        if fmt.value != 32 or not data:
            return []
        longs = ctypes.cast(data, ctypes.POINTER(ctypes.c_ulong))  # Xlib hands format 32 as longs
        return [int(longs[i]) for i in range(count.value)]
    finally:
        if data:
            xlib.XFree(data)


def _windows_fullscreen() -> tuple[bool | None, str]:  # pragma: no cover - Windows only
    state = ctypes.c_int()
    shell32 = ctypes.windll.shell32  # type: ignore[attr-defined]
    if shell32.SHQueryUserNotificationState(ctypes.byref(state)) != 0:
        return None, "Windows did not say whether a program is full screen"
    # QUNS_BUSY (a full-screen program), QUNS_RUNNING_D3D_FULL_SCREEN, QUNS_PRESENTATION_MODE
    return state.value in (2, 3, 4), ""
