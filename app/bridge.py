"""NodeBridge: snapshots and events from the node thread into Qt signals.

The node calls `_on_snapshot`/`_on_event` on its own thread; emitting a signal of an object that
lives in the GUI thread queues the delivery there. The GUI thread never waits on the node:
commands are submitted (non-blocking) and their futures awaited through qasync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from core.handle import CommandFuture, NodeHandle
from core.snapshot import NodeEvent, NodeSnapshot

log = logging.getLogger(__name__)


class NodeBridge(QObject):
    snapshot = Signal(object)  # NodeSnapshot
    event = Signal(object)  # NodeEvent
    command_failed = Signal(str)  # a plain sentence

    def __init__(self, handle: NodeHandle, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.handle = handle
        self._unsubscribe = handle.subscribe(self._on_snapshot, self._on_event)
        self._pending: set[asyncio.Future[Any]] = set()

    def latest(self) -> NodeSnapshot:
        return self.handle.snapshot()

    def _on_snapshot(self, snap: NodeSnapshot) -> None:  # node thread
        self.snapshot.emit(snap)

    def _on_event(self, event: NodeEvent) -> None:  # node thread
        self.event.emit(event)

    def run(self, future: CommandFuture, what: str) -> None:
        """Await a command's future on the asyncio (qasync) loop; report failures."""
        async def _await() -> Any:
            try:
                return await future
            except Exception as e:
                log.warning("%s failed: %s", what, e)
                self.command_failed.emit(f"{what} failed: {e}")
                return None

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no asyncio loop (plain Qt tests): report when done instead
            future.add_done_callback(
                lambda f: f.exception() and self.command_failed.emit(
                    f"{what} failed: {f.exception()}"))
            return
        task = asyncio.ensure_future(_await())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def restart(self) -> None:
        """Start the node again after it stopped or failed (off the GUI thread)."""
        def work() -> None:
            try:
                self.handle.start()
            except Exception as e:
                log.warning("restarting the node failed: %s", e)
                self.command_failed.emit(f"Restarting the node failed: {e}")

        threading.Thread(target=work, name="grove-restart", daemon=True).start()

    def close(self) -> None:
        self._unsubscribe()
