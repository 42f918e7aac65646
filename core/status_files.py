"""The status files a running node keeps for the CLI and tools: `runtime.json` (pid, peer
id, addresses), `villages.json` (`grove peers`; it filters expired records again on read),
`training.json` (`grove train`) and `swarm.json` (`grove swarm status`). Each is written
atomically; all are removed when the node stops.
"""

from __future__ import annotations

import json
import os
from typing import Any

import trio

from core.config import atomic_write
from core.paths import NodePaths
from core.peers_file import VILLAGES_FILE
from core.snapshot import NodeSnapshot, to_jsonable

TRAINING_FILE = "training.json"
SWARM_FILE = "swarm.json"


class StatusFiles:
    def __init__(self, paths: NodePaths) -> None:
        self.paths = paths
        self._written: dict[str, Any] = {}

    def write_runtime(self, peer_id: str, listen_addrs: list[str],
                      started_at: float | None) -> None:
        info = {"pid": os.getpid(), "peer_id": peer_id, "listen_addrs": listen_addrs,
                "started_at": started_at}
        atomic_write(self.paths.runtime_file, json.dumps(info).encode())

    async def update(self, snap: NodeSnapshot) -> None:
        """Rewrite each file whose part of the snapshot changed (in a worker thread)."""
        for name, items in ((VILLAGES_FILE, snap.villages), (TRAINING_FILE, snap.training),
                            (SWARM_FILE, (snap.swarm,))):
            if self._written.get(name) != items:
                self._written[name] = items
                await trio.to_thread.run_sync(self._write_json, name, items)

    def _write_json(self, name: str, items: tuple[Any, ...]) -> None:
        atomic_write(self.paths.data_dir / name,
                     json.dumps([to_jsonable(v) for v in items]).encode())

    def remove_all(self) -> None:
        for path in (self.paths.runtime_file, self.paths.data_dir / VILLAGES_FILE,
                     self.paths.data_dir / TRAINING_FILE, self.paths.data_dir / SWARM_FILE):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
