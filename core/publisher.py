"""Publishing snapshots: at most 2 a second, only when something changed (or as a
heartbeat), each with the next `seq`; peer arrivals and departures as events; the status
files the CLI reads kept in step. Node thread (trio) only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import trio

from core.paths import NodePaths
from core.snapshot import NodeEvent, NodeSnapshot, PeerConnected, PeerDisconnected
from core.snapshot_build import content
from core.status_files import StatusFiles

PERIOD = 0.5  # at most 2 snapshots a second
HEARTBEAT_PERIOD = 5.0  # publish at least this often even when nothing changed


class Publisher:
    def __init__(self, paths: NodePaths, snapshot: Callable[[], NodeSnapshot],
                 emit: Callable[[NodeEvent], None]) -> None:
        self.files = StatusFiles(paths)
        self.snapshot = snapshot
        self.emit = emit
        self.seq = 0
        self._known_peers: dict[str, str] = {}

    def first(self) -> NodeSnapshot:
        self.seq += 1
        return replace(self.snapshot(), seq=self.seq)

    async def run(self, publish: Callable[[NodeSnapshot], None]) -> None:
        last: NodeSnapshot | None = None
        last_at = -1e9
        while True:
            snap = self.snapshot()
            self._diff_peers(snap)
            now = trio.current_time()
            if last is None or content(snap) != content(last) or \
                    now - last_at >= HEARTBEAT_PERIOD:
                self.seq += 1
                snap = replace(snap, seq=self.seq)
                publish(snap)
                await self.files.update(snap)
                last, last_at = snap, now
            await trio.sleep(PERIOD)

    def _diff_peers(self, snap: NodeSnapshot) -> None:
        now = {p.peer_id: p.address for p in snap.peers}
        for pid, addr in now.items():
            if pid not in self._known_peers:
                self.emit(PeerConnected(peer_id=pid, address=addr, at=time.time()))
        for pid in self._known_peers.keys() - now.keys():
            self.emit(PeerDisconnected(peer_id=pid, at=time.time()))
        self._known_peers = now
