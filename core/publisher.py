"""Publishing snapshots: at most 2 a second, only when something changed (or as a
heartbeat), each with the next `seq`; peer arrivals and departures as events; the status
files the CLI reads kept in step. Node thread (trio) only.

Idle means idle: while nothing changes, the snapshot is looked at every QUIET_PERIOD s
instead of every PERIOD (building one was the largest part of an idle node's CPU), and a
poke - a command done, an event, the governor's decision or the settings changing - looks at
once, so the gardener's own actions still show within a moment.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import trio

from core.paths import NodePaths
from core.snapshot import NodeEvent, NodeSnapshot, PeerConnected, PeerDisconnected
from core.snapshot_build import content
from core.status_files import StatusFiles

PERIOD = 0.5  # at most 2 snapshots a second
QUIET_PERIOD = 5.0  # s between looks once QUIET_AFTER looks in a row found no change
QUIET_AFTER = 4
HEARTBEAT_PERIOD = 5.0  # publish at least this often even when nothing changed


class Publisher:
    def __init__(self, paths: NodePaths, snapshot: Callable[[], NodeSnapshot],
                 emit: Callable[[NodeEvent], None]) -> None:
        self.files = StatusFiles(paths)
        self.snapshot = snapshot
        self.emit = emit
        self.seq = 0
        self._known_peers: dict[str, str] = {}
        self._poked = trio.Event()

    def poke(self) -> None:
        """Something changed: look at the snapshot now (PERIOD apart at most)."""
        self._poked.set()

    def first(self) -> NodeSnapshot:
        self.seq += 1
        return replace(self.snapshot(), seq=self.seq)

    async def run(self, publish: Callable[[NodeSnapshot], None],
                  *changes: Callable[[], Awaitable[Any]]) -> None:
        """`changes`: awaitables that return when something the snapshot shows changed."""
        last: NodeSnapshot | None = None
        last_at = -1e9
        quiet = 0
        async with trio.open_nursery() as nursery:
            for change in changes:
                nursery.start_soon(self._poke_on, change)
            while True:
                snap = self.snapshot()
                self._diff_peers(snap)
                now = trio.current_time()
                changed = last is None or content(snap) != content(last)
                quiet = 0 if changed else quiet + 1
                if changed or now - last_at >= HEARTBEAT_PERIOD:
                    self.seq += 1
                    snap = replace(snap, seq=self.seq)
                    publish(snap)
                    await self.files.update(snap)
                    last, last_at = snap, now
                self._poked = trio.Event()
                await trio.sleep(PERIOD)  # at most 2 a second, poked or not
                if quiet >= QUIET_AFTER:
                    with trio.move_on_after(QUIET_PERIOD - PERIOD):
                        await self._poked.wait()

    async def _poke_on(self, change: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await change()
            self.poke()

    def _diff_peers(self, snap: NodeSnapshot) -> None:
        now = {p.peer_id: p.address for p in snap.peers}
        for pid, addr in now.items():
            if pid not in self._known_peers:
                self.emit(PeerConnected(peer_id=pid, address=addr, at=time.time()))
        for pid in self._known_peers.keys() - now.keys():
            self.emit(PeerDisconnected(peer_id=pid, at=time.time()))
        self._known_peers = now
