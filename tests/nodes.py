"""Helpers to run real nodes (real libp2p hosts on loopback) inside a test process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
    async with trio.open_nursery() as outer:
        try:
            async with trio.open_nursery() as nursery:
                boot: tuple[str, ...] = ()
                for i in range(n):
                    over = {"listen_host": "127.0.0.1", "listen_port": 0,
                            "use_default_bootstrap": False, "bootstrap": boot, **overrides}
                    node = Node(NodeConfig.load(f"{prefix}{i}", env=env, overrides=over,
                                                seed=i))
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
                    outer.start_soon(_watchdog, 30.0)
        finally:
            outer.cancel_scope.cancel()  # the villages stopped: no watchdog needed


async def _watchdog(after: float) -> None:
    """If the villages have not stopped `after` s into a teardown, print every trio task
    still waiting, with where it waits (the test's timeout then says where it hung)."""
    await trio.sleep(after)
    _print_tasks(f"villages still stopping after {after:g} s")


def _print_tasks(why: str) -> None:
    """Every trio task of this run still waiting, with where it waits (on stderr)."""
    import sys

    print(f"{why}; tasks:", file=sys.stderr)
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        frames = [f"{fr.f_code.co_filename}:{ln} {fr.f_code.co_name}"
                  for fr, ln in task.iter_await_frames()]
        if frames:
            print(f"  {task.name}: " + " <- ".join(reversed(frames[-4:])), file=sys.stderr)
        for child in task.child_nurseries:
            stack.extend(child.child_tasks)


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


def run_villages(main: Callable[[], Awaitable[None]], timeout: float) -> None:
    """`trio.run(main)` in a worker thread (see `run_trio_test`): past `timeout` s, set below
    the test's own timeout, its waiting tasks are printed and the run is cancelled, so a hang
    says where it waits and leaves no villages running under the tests after it."""
    async def then_done(done: Callable[[], None]) -> None:
        await main()
        done()

    run_trio_test(then_done, timeout)


class ShutdownHang(UserWarning):
    """Villages did not stop after a test's checks passed (reported, with a task dump)."""


def run_trio_test(main: Callable[[Callable[[], None]], Awaitable[None]], timeout: float,
                  teardown: float = 60.0) -> None:
    """Run `main(checks_done)` with trio in a worker thread. An exception in `main` fails the
    test. `main` calls `checks_done()` once its assertions passed; if the villages then do
    not stop within `teardown` s, the tasks still waiting are printed (see `_watchdog`) and a
    ShutdownHang warning is raised instead of wedging this process's later trio tests. If
    the checks are not done within `timeout` s, the tasks are printed the same way and the
    run is cancelled, so its villages do not go on loading the machine under later tests."""
    import threading
    import warnings

    outcome: dict[str, Any] = {}
    checked = threading.Event()
    started = threading.Event()
    handles: dict[str, Any] = {}

    async def guarded(done: Callable[[], None]) -> None:
        with trio.CancelScope() as scope:
            handles["scope"], handles["token"] = scope, trio.lowlevel.current_trio_token()
            started.set()
            await main(done)

    def work() -> None:
        try:
            trio.run(guarded, checked.set)
        except BaseException as e:
            outcome["error"] = e
        outcome["done"] = True
        started.set()

    t = threading.Thread(target=work, name="trio-test", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and not checked.is_set() and time.monotonic() < deadline:
        t.join(0.2)
    timed_out = t.is_alive() and not checked.is_set()
    if timed_out:  # every thread's Python stack too: a trio thread blocked in a plain call
        import faulthandler  # (a lock, a future's result) cannot print its own tasks
        import sys

        print(f"checks not done after {timeout:g} s; every thread's stack:", file=sys.stderr)
        try:
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
        except (AttributeError, OSError, ValueError):  # a stderr with no file descriptor
            faulthandler.dump_traceback(sys.__stderr__, all_threads=True)
    if timed_out and started.wait(1) and "token" in handles:
        try:
            handles["token"].run_sync_soon(_print_tasks, f"checks not done after {timeout:g} s")
            handles["token"].run_sync_soon(handles["scope"].cancel)
        except trio.RunFinishedError:
            pass
        t.join(min(teardown, 20.0))
    elif checked.is_set():
        t.join(teardown)
    if "error" in outcome and not timed_out:
        raise outcome["error"]
    if not checked.is_set():
        raise AssertionError(f"the test did not finish its checks within {timeout:g} s "
                             "(its tasks are printed above; the run was cancelled)") \
            from outcome.get("error")
    if t.is_alive():
        warnings.warn(ShutdownHang(f"villages still stopping {teardown:g} s after the checks "
                                   "passed; the waiting tasks are printed above"),
                      stacklevel=2)
