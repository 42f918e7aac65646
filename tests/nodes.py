"""Helpers to run real nodes (real libp2p hosts on loopback) inside a test process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.handle import NodeHandle
from core.node import NodeConfig


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
