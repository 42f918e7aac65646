"""Input idle time on a real X server (Xvfb), moved by a real input event (xdotool); and a
full-screen window seen on it."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, have, need

PROBE = ("from core.idle import idle_seconds; s, why = idle_seconds(); "
         "print(s if s is not None else why)")


@pytest.fixture
def xvfb() -> Iterator[str]:
    need("xvfb", have("Xvfb", "xdotool") and bool(ctypes.util.find_library("Xss")),
         "needs Xvfb, xdotool and libXss (Debian: xvfb, xdotool, libxss1)")
    display = f":{90 + os.getpid() % 100}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp",
                             "-noreset"],  # keep what a client set after it leaves
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        yield display
    finally:
        proc.terminate()
        proc.wait(5)


def _idle(display: str) -> str:
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, text=True,
                          capture_output=True, cwd=ROOT, timeout=20).stdout.strip()


def test_idle_time_grows_and_input_resets_it(xvfb: str) -> None:
    subprocess.run(["xdotool", "mousemove", "10", "10"], env={**os.environ, "DISPLAY": xvfb},
                   check=True)
    time.sleep(1.2)  # idle time is what is measured: let some pass
    first = float(_idle(xvfb))
    assert first >= 1.0
    subprocess.run(["xdotool", "mousemove", "200", "200"],
                   env={**os.environ, "DISPLAY": xvfb}, check=True)
    assert float(_idle(xvfb)) < first


def test_no_display_is_said_not_guessed() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, text=True,
                         capture_output=True, cwd=ROOT, timeout=20).stdout.strip()
    assert out == "no X11 display"


def test_gnome_on_wayland_is_asked_over_d_bus_and_other_compositors_are_said() -> None:
    from core.idle import parse_mutter

    assert parse_mutter(0, "t 12345\n") == (12.345, "")
    for code, out in ((1, ""), (0, "garbage"), (0, "t -3")):
        seconds, why = parse_mutter(code, out)
        assert seconds is None and "idle-only cannot work here" in why


def test_a_wayland_session_without_x11_asks_gnome_not_x11() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["WAYLAND_DISPLAY"] = "wayland-0"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, text=True,
                         capture_output=True, cwd=ROOT, timeout=20).stdout.strip()
    assert "X11" not in out and out  # X11 is not asked where there is none
    if not out.replace(".", "", 1).isdigit():  # (a GNOME session answers with seconds)
        assert out.startswith("Wayland")


FULLSCREEN = ("from core.platform_state import fullscreen; v, why = fullscreen(); "
              "print(v if v is not None else why)")


def test_a_full_screen_window_is_seen_on_a_real_x_server(xvfb: str) -> None:
    """EWMH as a window manager sets it: the root's _NET_ACTIVE_WINDOW names the active
    window, whose _NET_WM_STATE holds _NET_WM_STATE_FULLSCREEN (set here with xprop on the
    root window itself: Xvfb runs no window manager)."""
    need("xprop", have("xprop", "xwininfo"), "needs xprop and xwininfo (Debian: x11-utils)")
    env = {**os.environ, "DISPLAY": xvfb}
    env.pop("WAYLAND_DISPLAY", None)

    def probe() -> str:
        return subprocess.run([sys.executable, "-c", FULLSCREEN], env=env, text=True,
                              capture_output=True, cwd=ROOT, timeout=20).stdout.strip()

    def xprop(*args: str) -> None:
        subprocess.run(["xprop", "-root", *args], env=env, check=True, timeout=10)

    assert "does not say which window is active" in probe()  # no window manager yet
    info = subprocess.run(["xwininfo", "-root"], env=env, text=True, capture_output=True,
                          check=True, timeout=10).stdout
    root = next(w for w in info.split() if w.startswith("0x"))
    xprop("-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", root)
    xprop("-f", "_NET_WM_STATE", "32a", "-set", "_NET_WM_STATE", "_NET_WM_STATE_ABOVE")
    assert probe() == "False"
    xprop("-f", "_NET_WM_STATE", "32a", "-set", "_NET_WM_STATE", "_NET_WM_STATE_FULLSCREEN")
    assert probe() == "True"
    xprop("-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", "0x0")
    assert probe() == "False"  # no active window
