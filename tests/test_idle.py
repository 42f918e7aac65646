"""Input idle time on a real X server (Xvfb), moved by a real input event (xdotool)."""

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
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
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
