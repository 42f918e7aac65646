"""`NodeHandle`: the only way into a running node, from any thread.

- Commands return a `CommandFuture`: `.result(timeout)` from a plain thread, `await` from
  asyncio (qasync) without blocking the caller's loop. Submitting never blocks: it hands the
  command to trio with `TrioToken.run_sync_soon`.
- `snapshot()` returns the latest frozen `NodeSnapshot` (a plain attribute read).
- `subscribe(on_snapshot, on_event)` delivers new snapshots (≤ 2 Hz) and typed events. The
  callbacks run on the node thread and must not block (emit a Qt signal, put in a queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import trio

from core.commands import (
    AddPersona,
    Average,
    Command,
    Complete,
    Connect,
    Generate,
    Pause,
    Ping,
    Probe,
    RemovePersona,
    Resume,
    RunTestJob,
    SetParticipation,
    StartConversation,
    Stop,
    StopConversation,
    UpdatePersona,
    UpdateSettings,
)
from core.errors import GardenerError
from core.node import Node, NodeConfig
from core.snapshot import (
    ComputeStatus,
    GovernorStatus,
    NodeEvent,
    NodeSnapshot,
    NodeState,
    NodeStopped,
)

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


class NodeNotRunning(GardenerError):
    def __init__(self) -> None:
        super().__init__("The node is not running.", "Start it first.")


class CommandFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A concurrent future that asyncio code can `await` directly."""

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()


class _TaskCounter(trio.abc.Instrument):
    """Counts live trio tasks, so tests can prove a stopped node left none behind."""

    def __init__(self) -> None:
        self.live = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live += 1

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live -= 1


SnapshotCallback = Callable[[NodeSnapshot], None]
EventCallback = Callable[[NodeEvent], None]


class NodeHandle:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._snapshot = NodeSnapshot(profile=config.paths.profile,
                                      participating=config.settings.participate,
                                      key_store=config.key_info.note,
                                      key_store_fallback=config.key_info.is_fallback)
        self._subscribers: list[tuple[SnapshotCallback | None, EventCallback | None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._send: trio.MemorySendChannel[tuple[Command, Any]] | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.tasks = _TaskCounter()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> NodeSnapshot:
        """Start the node thread; returns once the host listens. Raises GardenerError when it
        cannot start (port in use, profile already running)."""
        if self._thread is not None and self._thread.is_alive():
            return self._snapshot
        self._started.clear()
        self._start_error = None
        if self._thread is not None:  # a restart: settings.toml may have changed since
            self.config = self.config.reloaded()
        self._publish(replace(self._snapshot, state=NodeState.STARTING, error=""))
        self._thread = threading.Thread(target=self._thread_main, name=(
            f"grove-node-{self.config.paths.profile}"), daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise GardenerError("The node did not start in time.", "See the log for details.")
        if self._start_error is not None:
            raise self._start_error
        return self._snapshot

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the node and join its thread; True when it stopped within `timeout`."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return True
        try:
            self.submit(Stop())
        except NodeNotRunning:
            pass
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._token is not None

    def _thread_main(self) -> None:
        error = ""
        try:
            node = Node(self.config)
            trio.run(self._main, node, instruments=[self.tasks])
        except BaseException as e:  # the node died: say so in the snapshot, keep the process
            if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
                e = e.exceptions[0]
            if isinstance(e, GardenerError):
                error = str(e)
            else:
                error = f"{type(e).__name__}: {e}"
                log.exception("the node stopped on an error", exc_info=e)
            if not self._started.is_set():
                self._start_error = e if isinstance(e, GardenerError) else GardenerError(
                    f"The node could not start ({error}).", "See the log for details.")
        finally:
            self._token = None
            self._send = None
            state = NodeState.FAILED if error else NodeState.STOPPED
            self._publish(replace(self._snapshot, seq=self._snapshot.seq + 1, state=state,
                                  error=error, peers=(), uptime_s=0.0, listen_addrs=(),
                                  services=(), governor=GovernorStatus(),
                                  compute=ComputeStatus()))
            self._deliver_event(NodeStopped(reason=error or "stopped", at=time.time()))
            self._started.set()

    async def _main(self, node: Node) -> None:
        send, receive = trio.open_memory_channel[tuple[Command, Any]](1000)
        self._token = trio.lowlevel.current_trio_token()
        self._send = send

        async with trio.open_nursery() as nursery:
            await nursery.start(node.run, self._publish_from_node, self._deliver_event,
                                receive)
            self._started.set()

    # -- commands ----------------------------------------------------------------------------
    def submit(self, command: Command) -> CommandFuture:
        """Hand `command` to the node; never blocks. Any thread."""
        future = CommandFuture()
        token, send = self._token, self._send
        if token is None or send is None:
            future.set_exception(NodeNotRunning())
            return future

        def reply(result: Any, error: BaseException | None) -> None:
            if future.set_running_or_notify_cancel():
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

        def enqueue() -> None:
            try:
                send.send_nowait((command, reply))
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                reply(None, NodeNotRunning())

        try:
            token.run_sync_soon(enqueue)
        except trio.RunFinishedError:
            future.set_exception(NodeNotRunning())
        return future

    def set_participation(self, on: bool) -> CommandFuture:
        return self.submit(SetParticipation(on))

    def pause(self, until: float) -> CommandFuture:
        """Pause lending until `until` (wall-clock seconds)."""
        return self.submit(Pause(until))

    def resume(self) -> CommandFuture:
        return self.submit(Resume())

    def update_settings(self, **changes: Any) -> CommandFuture:
        return self.submit(UpdateSettings(changes))

    def connect(self, address: str) -> CommandFuture:
        return self.submit(Connect(address))

    def ping(self, peer_id: str) -> CommandFuture:
        return self.submit(Ping(peer_id))

    def average(self, key: str, vector: Any, *, close_at: float, deadline_at: float,
                **kw: Any) -> CommandFuture:
        return self.submit(Average(key, vector, close_at, deadline_at, **kw))

    def probe(self, peer_id: str, size: int = 64 * 1024) -> CommandFuture:
        return self.submit(Probe(peer_id, size))

    # -- state out ---------------------------------------------------------------------------
    def add_persona(self, name: str, **fields: Any) -> CommandFuture:
        return self.submit(AddPersona(name, fields))

    def update_persona(self, persona_id: str, **changes: Any) -> CommandFuture:
        return self.submit(UpdatePersona(persona_id, changes))

    def remove_persona(self, persona_id: str) -> CommandFuture:
        return self.submit(RemovePersona(persona_id))

    def start_conversation(self, persona_id: str, partners: tuple[tuple[str, str], ...],
                           turns: int = 5) -> CommandFuture:
        """Resolves to the conversation's id (or the partner's refusal)."""
        return self.submit(StartConversation(persona_id, partners, turns))

    def stop_conversation(self, conversation: str) -> CommandFuture:
        """Our persona stops talking in `conversation` (kept across restarts)."""
        return self.submit(StopConversation(conversation))

    def generate(self, text: str, new_tokens: int = 8, on_text: Any = None) -> CommandFuture:
        """Continue `text` through the swarm (`on_text(chars)` on the node's thread as each
        character comes); resolves to the result dict of `SwarmTrainer.generate`."""
        return self.submit(Generate(text, new_tokens, on_text))

    def complete(self, prompt: str, max_tokens: int = 16, level: str = "basic"
                 ) -> CommandFuture:
        """Complete `prompt` through the swarm at a service level (the gateway's requests);
        resolves to the dict of `SwarmTrainer.complete`, with its receipt."""
        return self.submit(Complete(prompt, max_tokens, level))

    def run_test_job(self, seconds: float = 10.0) -> CommandFuture:
        return self.submit(RunTestJob(seconds))

    def snapshot(self) -> NodeSnapshot:
        return self._snapshot

    def subscribe(self, on_snapshot: SnapshotCallback | None = None,
                  on_event: EventCallback | None = None) -> Callable[[], None]:
        """Register callbacks; returns a function that unsubscribes them."""
        entry = (on_snapshot, on_event)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
        return unsubscribe

    def _publish_from_node(self, snap: NodeSnapshot) -> None:
        self._publish(replace(snap, seq=max(snap.seq, self._snapshot.seq + 1)))

    def _publish(self, snap: NodeSnapshot) -> None:
        self._snapshot = snap
        with self._lock:
            subs = list(self._subscribers)
        for on_snapshot, _ in subs:
            if on_snapshot is not None:
                _safely(on_snapshot, snap)

    def _deliver_event(self, event: NodeEvent) -> None:
        with self._lock:
            subs = list(self._subscribers)
        for _, on_event in subs:
            if on_event is not None:
                _safely(on_event, event)


def _safely(callback: Callable[[Any], None], arg: Any) -> None:
    try:
        callback(arg)
    except Exception:
        log.exception("a node subscriber failed")
