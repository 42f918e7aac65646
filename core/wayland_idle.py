"""Idle time on Wayland compositors that offer `ext-idle-notify-v1` (KDE Plasma 6, sway 1.8+,
Hyprland, COSMIC, …), spoken over the Wayland wire protocol directly: no libwayland binding
is in the stack, and the exchange is four requests and two events.

One connection, held by a daemon thread: bind `wl_seat` and `ext_idle_notifier_v1` from the
registry, ask for an idle notification with a THRESHOLD_MS timeout, and listen. The
compositor says `idled` once the seat has had no input for the threshold and `resumed` at the
next input, so the idle time is "now - (when idled came - threshold)", or 0 while active.

Wire format (wayland.freedesktop.org, "Wire Format"): every message is the object id (u32),
then the size in bytes (upper 16 bits) and the opcode (lower 16), then its arguments, each
32-bit aligned; a string is its length with the NUL, the bytes, the NUL, padding. Native
byte order.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

THRESHOLD_MS = 1000  # input idle for this long makes the compositor say `idled`
HANDSHAKE_TIMEOUT = 2.0  # s for the registry to list its globals
MAX_MESSAGE = 4096  # the Wayland limit on one message

# object ids this client creates, in order
DISPLAY, REGISTRY, SYNC, SEAT, NOTIFIER, NOTIFICATION = 1, 2, 3, 4, 5, 6


class IdleNotifyUnavailable(Exception):
    """The compositor cannot be asked (no socket, or no ext-idle-notify-v1)."""


def socket_path(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    display = env.get("WAYLAND_DISPLAY")
    if not display:
        return None
    if display.startswith("/"):
        return display
    runtime = env.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, display) if runtime else None


def encode(obj: int, opcode: int, *args: int | str) -> bytes:
    """One request: uint arguments as ints, strings as str."""
    body = b""
    for a in args:
        if isinstance(a, str):
            raw = a.encode() + b"\0"
            body += struct.pack("=I", len(raw)) + raw + b"\0" * (-len(raw) % 4)
        else:
            body += struct.pack("=I", a)
    return struct.pack("=II", obj, (8 + len(body)) << 16 | opcode) + body


def decode_string(body: bytes, at: int) -> tuple[str, int]:
    """A string argument at `at`: (the text, the offset after it)."""
    (length,) = struct.unpack_from("=I", body, at)
    end = at + 4 + length
    if length == 0 or end > len(body):
        raise ValueError("a string past the message")
    text = body[at + 4:end - 1].decode("utf-8", "replace")
    return text, end + (-length % 4)


class IdleMonitor:
    def __init__(self, path: str) -> None:
        self.idle_since: float | None = None  # monotonic; None: the seat is active
        self.error = ""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(HANDSHAKE_TIMEOUT)
        self._buf = b""
        try:
            self.sock.connect(path)
            self._handshake()
        except (OSError, ValueError) as e:
            self.sock.close()
            raise IdleNotifyUnavailable(f"the Wayland compositor did not answer ({e})") from None
        except IdleNotifyUnavailable:
            self.sock.close()
            raise
        self.sock.settimeout(None)
        threading.Thread(target=self._listen, name="wayland-idle", daemon=True).start()

    def seconds(self) -> tuple[float | None, str]:
        if self.error:
            return None, self.error
        since = self.idle_since
        return (0.0 if since is None else time.monotonic() - since), ""

    def _handshake(self) -> None:
        self.sock.sendall(encode(DISPLAY, 1, REGISTRY) + encode(DISPLAY, 0, SYNC))
        globals_: dict[str, tuple[int, int]] = {}  # interface -> (name, version)
        while True:
            obj, opcode, body = self._read()
            if obj == REGISTRY and opcode == 0:  # global(name, interface, version)
                (name,) = struct.unpack_from("=I", body, 0)
                interface, at = decode_string(body, 4)
                (version,) = struct.unpack_from("=I", body, at)
                globals_.setdefault(interface, (name, version))
            elif obj == DISPLAY and opcode == 0:
                raise IdleNotifyUnavailable("the Wayland compositor refused the connection")
            elif obj == SYNC and opcode == 0:  # done: every global has been listed
                break
        if "ext_idle_notifier_v1" not in globals_ or "wl_seat" not in globals_:
            raise IdleNotifyUnavailable("this Wayland compositor does not offer "
                                        "ext-idle-notify-v1")
        seat, notifier = globals_["wl_seat"], globals_["ext_idle_notifier_v1"]
        self.sock.sendall(
            encode(REGISTRY, 0, seat[0], "wl_seat", 1, SEAT)
            + encode(REGISTRY, 0, notifier[0], "ext_idle_notifier_v1", 1, NOTIFIER)
            + encode(NOTIFIER, 1, NOTIFICATION, THRESHOLD_MS, SEAT))

    def _read(self) -> tuple[int, int, bytes]:
        while True:
            if len(self._buf) >= 8:
                obj, word = struct.unpack_from("=II", self._buf)
                size, opcode = word >> 16, word & 0xFFFF
                if not 8 <= size <= MAX_MESSAGE:
                    raise ValueError(f"a message of {size} bytes")
                if len(self._buf) >= size:
                    body, self._buf = self._buf[8:size], self._buf[size:]
                    return obj, opcode, body
            data = self.sock.recv(MAX_MESSAGE)
            if not data:
                raise OSError("the compositor closed the connection")
            self._buf += data

    def _listen(self) -> None:
        try:
            while True:
                obj, opcode, _ = self._read()
                if obj == NOTIFICATION and opcode == 0:  # idled
                    self.idle_since = time.monotonic() - THRESHOLD_MS / 1000
                elif obj == NOTIFICATION and opcode == 1:  # resumed
                    self.idle_since = None
                elif obj == DISPLAY and opcode == 0:  # error: the protocol was broken
                    self.error = "the Wayland compositor reported a protocol error"
                    return
        except (OSError, ValueError) as e:
            self.error = f"the Wayland connection ended ({e})"
        finally:
            self.sock.close()


_monitor: IdleMonitor | None = None
_failed: tuple[float, str] | None = None  # when it last failed, and why
RETRY = 60.0  # s before trying a compositor that failed again


def idle_seconds() -> tuple[float | None, str]:
    """(seconds, "") or (None, why not), from one monitor kept for the process."""
    global _monitor, _failed
    if _monitor is not None and not _monitor.error:
        return _monitor.seconds()
    if _failed is not None and time.monotonic() - _failed[0] < RETRY:
        return None, _failed[1]
    path = socket_path()
    if path is None:
        return None, "no Wayland display"
    try:
        _monitor, _failed = IdleMonitor(path), None
    except IdleNotifyUnavailable as e:
        _monitor, _failed = None, (time.monotonic(), str(e))
        return None, str(e)
    return _monitor.seconds()


def reset() -> None:
    """Forget the monitor (tests; a new session)."""
    global _monitor, _failed
    _monitor, _failed = None, None
