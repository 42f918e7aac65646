"""A dashboard on the contract-checked fake node (tests/app/fake_node.py), for the pages'
tests that need states the real node cannot produce on demand."""

from __future__ import annotations

from collections.abc import Iterator
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
