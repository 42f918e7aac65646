"""A dashboard on the contract-checked fake node (tests/app/fake_node.py), for the pages'
tests that need states the real node cannot produce on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.bridge import NodeBridge
from app.dashboard import Dashboard
from tests.app.fake_node import FakeHandle


@pytest.fixture
def fake(qtbot: Any, tmp_path: Path) -> Iterator[tuple[FakeHandle, Dashboard]]:
    handle = FakeHandle(tmp_path)
    handle.start()
    bridge = NodeBridge(handle)  # type: ignore[arg-type]
    dash = Dashboard(bridge)
    qtbot.addWidget(dash)
    dash.show()
    yield handle, dash
    bridge.close()


@contextmanager
def two_villages(qtbot: Any, tmp_path: Path, prefix: str, **overrides: Any
                 ) -> Iterator[tuple[Any, Any, Dashboard]]:
    """Two real villages on loopback (`<prefix>a`, and `<prefix>b` bootstrapped off it),
    the dashboard shown on the first; both stopped at the end."""
    from tests.nodes import make_handle

    a = make_handle(tmp_path, f"{prefix}a", **overrides)
    a.start()
    b = make_handle(tmp_path, f"{prefix}b", bootstrap=(a.snapshot().listen_addrs[0],))
    b.start()
    bridge = NodeBridge(a)
    dash = Dashboard(bridge)
    qtbot.addWidget(dash)
    dash.show()
    try:
        yield a, b, dash
    finally:
        bridge.close()
        b.stop()
        a.stop()
