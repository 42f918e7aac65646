"""Helpers to run real nodes (real libp2p hosts on loopback) inside a test process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from core.handle import NodeHandle
from core.node import Node, NodeConfig


def make_handle(home: Path, profile: str, **overrides: Any) -> NodeHandle:
    env = {"GROVE_HOME": str(home), "GROVE_KEY_STORE": "file"}
    over = {"listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
            **overrides}
    extra = over.pop("extra_services", {})
    return NodeHandle(NodeConfig.load(profile, overrides=over, env=env, extra_services=extra))


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition",
             ) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@asynccontextmanager
async def trio_villages(home: Path, n: int, prefix: str = "v", **overrides: Any
                        ) -> AsyncIterator[list[Node]]:
    """`n` real nodes in the current trio loop (one process, one thread: many nodes fit),
    the first one their bootstrap. Stopped on exit. `stop(node)` below stops one early."""
    env = {"GROVE_HOME": str(home), "GROVE_KEY_STORE": "file"}
    nodes: list[Node] = []
    async with trio.open_nursery() as nursery:
        boot: tuple[str, ...] = ()
        for i in range(n):
            over = {"listen_host": "127.0.0.1", "listen_port": 0,
                    "use_default_bootstrap": False, "bootstrap": boot, **overrides}
            node = Node(NodeConfig.load(f"{prefix}{i}", env=env, overrides=over, seed=i))
            scope = trio.CancelScope()
            _SCOPES[id(node)] = scope

            async def run(node: Node = node, scope: trio.CancelScope = scope,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                          ) -> None:
                with scope:
                    _send, receive = trio.open_memory_channel[Any](10)
                    await node.run(lambda s: None, lambda e: None, receive,
                                   task_status=task_status)

            await nursery.start(run)
            nodes.append(node)
            if i == 0:
                assert node.host is not None
                boot = (node.host.listen_addrs()[0],)
        try:
            yield nodes
        finally:
            nursery.cancel_scope.cancel()


_SCOPES: dict[int, trio.CancelScope] = {}


def stop(node: Node) -> None:
    """Stop one node started by `trio_villages` now: its host closes, like a crash."""
    node.dht.withdraw_on_stop = False
    _SCOPES[id(node)].cancel()


async def trio_wait_for(predicate: Callable[[], bool], timeout: float = 20.0,
                        what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
