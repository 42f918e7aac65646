"""Waiting for a file to change without polling it: Linux's inotify on the file's folder (a
file replaced atomically - written beside it, then renamed over it - is a new inode, so the
folder is what is watched), read through trio when the descriptor is readable. Elsewhere, or
where inotify cannot be had (no watches left), a look every `poll` seconds, as before.

`FileWatch(path, poll)`, `open()` (before the first read of the file, so no change falls
between), then `await watch.changed()` returns after the file was written, replaced,
created or removed - or after `poll` s without inotify, or SAFETY_POLL s with it (a folder
on a network file system may not report others' writes): the caller compares what it reads,
as it did when polling. `close()` when done. Trio, node thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
import sys
from functools import cache
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM = 0x2, 0x8, 0x40
IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x80, 0x100, 0x200
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name, NUL-padded)
SAFETY_POLL = 30.0  # s: a look even when inotify said nothing
# s a change is given to finish before `changed()` returns: SQLite writes its log frames
# (an event) before the shared-memory index that commits them (an mmap write: none), so a
# reader woken by the first write read the database before the commit, and nothing woke it
# again (`grove personas add` showed up 30 s late)
SETTLE = 0.2


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        return None
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


class FileWatch:
    def __init__(self, path: Path, poll: float, also: tuple[str, ...] = ()) -> None:
        """`also`: other names in the same folder that count as the file (a database's
        write-ahead log)."""
        self.path, self.poll = Path(path), poll
        self.names = {self.path.name.encode(), *(n.encode() for n in also), b"*"}
        self.fd: int | None = None
        self.watching = False  # inotify is in use (else: polling)
        self._tried = False

    def open(self) -> None:
        if self._tried:
            return
        self._tried = True
        libc = _libc()
        if libc is None:
            return
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            log.info("inotify unavailable (errno %d): %s is polled", ctypes.get_errno(),
                     self.path.name)
            return
        folder = str(self.path.parent).encode()
        if libc.inotify_add_watch(fd, folder, MASK) < 0:
            log.info("cannot watch %s (errno %d): polling it", folder, ctypes.get_errno())
            os.close(fd)
            return
        self.fd, self.watching = fd, True

    async def changed(self) -> None:
        """Until the file changes (with inotify) or `poll` s pass (without)."""
        self.open()
        if self.fd is None:
            await trio.sleep(self.poll)
            return
        with trio.move_on_after(SAFETY_POLL):
            while True:
                await trio.lowlevel.wait_readable(self.fd)
                try:
                    data = os.read(self.fd, 64 * 1024)
                except BlockingIOError:
                    continue
                if not data or any(n in self.names for n in _names(data)):
                    break
        await trio.sleep(SETTLE)
        self._drain()

    def _drain(self) -> None:
        """Drop the events the settle gathered: the caller reads what they changed."""
        assert self.fd is not None
        try:
            while os.read(self.fd, 64 * 1024):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd, self.watching = None, False


def _names(data: bytes) -> list[bytes]:
    """The file names in a read of inotify events (one folder is watched, so names alone
    say which file); an overflow (wd -1) counts as every name."""
    out, at = [], 0
    while at + _EVENT.size <= len(data):
        wd, _mask, _cookie, length = _EVENT.unpack_from(data, at)
        raw = data[at + _EVENT.size:at + _EVENT.size + length]
        out.append(b"*" if wd == -1 else raw.rstrip(b"\0"))
        at += _EVENT.size + length
    return out
