"""Input idle time on a real X server (Xvfb), moved by a real input event (xdotool); a
full-screen window seen on it; and idle time from a Wayland compositor's ext-idle-notify-v1."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


class Compositor:
    """A Wayland compositor's side of the idle exchange, per the protocol's XML (wl_display,
    wl_registry, wl_callback, ext-idle-notify-v1), on a real Unix socket: it lists its
    globals, answers the sync, records the binds and the notification asked for, and sends
    `idled`/`resumed` when the test says. The platform faked at its one seam."""

    def __init__(self, path: str, *, notifier: bool = True) -> None:
        import socket
        import threading

        self.globals = [(7, "wl_seat", 7), (8, "wl_output", 4)]
        if notifier:
            self.globals.append((9, "ext_idle_notifier_v1", 2))
        self.requests: list[tuple[int, int, bytes]] = []
        self.notification: int | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.conn: socket.socket | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def message(obj: int, opcode: int, body: bytes = b"") -> bytes:
        import struct

        return struct.pack("=II", obj, (8 + len(body)) << 16 | opcode) + body

    def _serve(self) -> None:
        import struct

        from core.wayland_idle import encode

        conn, _ = self.server.accept()
        self.conn = conn
        buf = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while len(buf) >= 8:
                obj, word = struct.unpack_from("=II", buf)
                size = word >> 16
                if len(buf) < size:
                    break
                body, buf = buf[8:size], buf[size:]
                self.requests.append((obj, word & 0xFFFF, body))
                if (obj, word & 0xFFFF) == (1, 1):  # wl_display.get_registry(new_id)
                    (registry,) = struct.unpack("=I", body)
                    for name, interface, version in self.globals:
                        raw = encode(registry, 0, name, interface, version)  # same layout
                        conn.sendall(raw)
                elif (obj, word & 0xFFFF) == (1, 0):  # wl_display.sync(new_id)
                    (callback,) = struct.unpack("=I", body)
                    conn.sendall(self.message(callback, 0, struct.pack("=I", 1)))  # done
                elif (obj, word & 0xFFFF) == (5, 1):  # notifier.get_idle_notification
                    self.notification = struct.unpack_from("=I", body)[0]

    def send(self, opcode: int) -> None:
        assert self.conn is not None and self.notification is not None
        self.conn.sendall(self.message(self.notification, opcode))


def test_ext_idle_notify_on_wayland_says_idle_and_active(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compositor offering ext-idle-notify-v1: the village binds the seat and the notifier,
    asks for a notification after 1 s without input, and reads its idle time from `idled`
    and `resumed`; one that does not offer it is said, not guessed."""
    import struct

    from core import idle, wayland_idle

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-9")
    wayland_idle.reset()
    compositor = Compositor(str(tmp_path / "wayland-9"))
    assert idle.idle_seconds() == (0.0, "")  # not idle until the compositor says so
    deadline = time.monotonic() + 5  # the binds follow the last roundtrip: the compositor's
    while not any((o, op) == (5, 1) for o, op, _ in compositor.requests):  # thread reads them
        assert time.monotonic() < deadline, compositor.requests
        time.sleep(0.02)
    binds = [r for r in compositor.requests if r[:2] == (2, 0)]
    assert [wayland_idle.decode_string(b, 4)[0] for _, _, b in binds] == [
        "wl_seat", "ext_idle_notifier_v1"]
    assert [struct.unpack_from("=I", b)[0] for _, _, b in binds] == [7, 9]  # their names
    ask = next(b for o, op, b in compositor.requests if (o, op) == (5, 1))
    assert struct.unpack("=III", ask) == (6, 1000, 4)  # id, timeout in ms, the seat

    compositor.send(0)  # idled: no input for the threshold
    deadline = time.monotonic() + 5
    while (idle.idle_seconds()[0] or 0) < 1.0:
        assert time.monotonic() < deadline, "idled was not read"
        time.sleep(0.02)
    time.sleep(0.3)
    assert idle.idle_seconds()[0] >= 1.3  # it grows while idle
    compositor.send(1)  # resumed: input
    while idle.idle_seconds()[0] != 0.0:
        assert time.monotonic() < deadline, "resumed was not read"
        time.sleep(0.02)

    wayland_idle.reset()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-8")
    Compositor(str(tmp_path / "wayland-8"), notifier=False)
    seconds, why = idle.idle_seconds()
    assert seconds is None and "does not offer ext-idle-notify-v1" in why, why
    assert "idle-only cannot work here" in why
    wayland_idle.reset()
