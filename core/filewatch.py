"""Waiting for a file to change without polling it: Linux's inotify on the file's folder (a
file replaced atomically - written beside it, then renamed over it - is a new inode, so the
folder is what is watched), read through trio when the descriptor is readable. Elsewhere, or
where inotify cannot be had (no watches left), a look every `poll` seconds, as before.

`FileWatch(path, poll)`, `open()` (before the first read of the file, so no change falls
between), then `await watch.changed()` returns after the file was written, replaced,
created or removed - or after `poll` s without inotify, or SAFETY_POLL s with it (a folder
on a network file system may not report others' writes): the caller compares what it reads,
as it did when polling. `close()` when done. Trio, node thread. Every watch of a trio run
shares one inotify instance (`_Hub`).
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
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


class _Hub:
    """One inotify instance for every FileWatch of a trio run (a process has one per node
    thread): Linux allows 128 instances per user, and 50 villages of a benchmark, three
    watches each, ran out and fell back to polling. One watch per folder, counted; a system
    task reads the events and wakes the watches whose names they carry."""

    def __init__(self, libc: Any, fd: int) -> None:
        self.libc, self.fd = libc, fd
        self.wds: dict[bytes, int] = {}          # folder -> watch descriptor
        self.watchers: dict[int, set[FileWatch]] = {}

    def add(self, watch: FileWatch, folder: bytes) -> bool:
        wd = self.wds.get(folder)
        if wd is None:
            wd = self.libc.inotify_add_watch(self.fd, folder, MASK)
            if wd < 0:
                log.info("cannot watch %s (errno %d): polling it", folder, ctypes.get_errno())
                return False
            self.wds[folder] = wd
        self.watchers.setdefault(wd, set()).add(watch)
        watch.wd = wd
        return True

    def remove(self, watch: FileWatch) -> None:
        users = self.watchers.get(watch.wd, set())
        users.discard(watch)
        if not users and watch.wd in self.watchers:
            del self.watchers[watch.wd]
            folder = next((f for f, wd in self.wds.items() if wd == watch.wd), None)
            if folder is not None:
                del self.wds[folder]
                self.libc.inotify_rm_watch(self.fd, watch.wd)

    async def run(self) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(self.fd)
                try:
                    data = os.read(self.fd, 64 * 1024)
                except BlockingIOError:
                    continue
                for wd, name in _events(data):
                    targets = ([w for ws in self.watchers.values() for w in ws] if wd == -1
                               else self.watchers.get(wd, ()))
                    for w in list(targets):
                        if wd == -1 or name in w.names:
                            w.event.set()
        finally:
            os.close(self.fd)


_HUB: trio.lowlevel.RunVar[_Hub | None] = trio.lowlevel.RunVar("grove_inotify_hub")


def _hub() -> _Hub | None:
    """This trio run's hub, started on first use (None where inotify cannot be had)."""
    try:
        return _HUB.get()
    except LookupError:
        pass
    hub = None
    libc = _libc()
    if libc is not None:
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            log.info("inotify unavailable (errno %d): files are polled", ctypes.get_errno())
        else:
            hub = _Hub(libc, fd)
            trio.lowlevel.spawn_system_task(hub.run, name="grove-inotify")
    _HUB.set(hub)
    return hub


class FileWatch:
    def __init__(self, path: Path, poll: float, also: tuple[str, ...] = ()) -> None:
        """`also`: other names in the same folder that count as the file (a database's
        write-ahead log)."""
        self.path, self.poll = Path(path), poll
        self.names = {self.path.name.encode(), *(n.encode() for n in also)}
        self.watching = False  # inotify is in use (else: polling)
        self.event = trio.Event()  # set by the hub when the file changed
        self.wd = -1
        self._hub: _Hub | None = None
        self._tried = False

    def open(self) -> None:
        """Start watching (inside trio, before the caller's first read of the file)."""
        if self._tried:
            return
        self._tried = True
        hub = _hub()
        if hub is not None and hub.add(self, str(self.path.parent).encode()):
            self._hub, self.watching = hub, True

    async def changed(self) -> None:
        """Until the file changes (with inotify) or `poll` s pass (without)."""
        self.open()
        if not self.watching:
            await trio.sleep(self.poll)
            return
        with trio.move_on_after(SAFETY_POLL):
            await self.event.wait()
        await trio.sleep(SETTLE)
        self.event = trio.Event()  # what the settle gathered: the caller reads it now

    def close(self) -> None:
        if self._hub is not None:
            self._hub.remove(self)
            self._hub, self.watching = None, False


def _events(data: bytes) -> list[tuple[int, bytes]]:
    """(watch descriptor, file name) of each event in a read of inotify events; an overflow
    has descriptor -1 (every watch is woken)."""
    out, at = [], 0
    while at + _EVENT.size <= len(data):
        wd, _mask, _cookie, length = _EVENT.unpack_from(data, at)
        raw = data[at + _EVENT.size:at + _EVENT.size + length]
        out.append((wd, raw.rstrip(b"\0")))
        at += _EVENT.size + length
    return out
