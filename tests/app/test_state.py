"""The tray icon for every node state (pure mapping)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.state import tray_state
from core.snapshot import NodeSnapshot, NodeState, PeerView, ServiceStatus

NOW = 10_000.0
BASE = NodeSnapshot(state=NodeState.RUNNING, peer_id="me", started_at=NOW - 60,
                    participating=True, peers=(PeerView("p", "/ip4/x"),))


@pytest.mark.parametrize(("snap", "icon", "words"), [
    (BASE, "idle", "Participating with 1 peer"),
    (replace(BASE, participating=False), "off", "participation off"),
    (replace(BASE, paused_until=NOW + 600), "paused", "Paused until"),
    (replace(BASE, paused_until=NOW - 1), "idle", "Participating"),
    (replace(BASE, peers=()), "offline", "no peers"),
    (replace(BASE, state=NodeState.STOPPED), "offline", "offline"),
    (replace(BASE, state=NodeState.STARTING), "offline", "starting"),
    (replace(BASE, state=NodeState.FAILED, error="Port 1 is in use."), "error", "Port 1"),
    (replace(BASE, services=(ServiceStatus("discovery", "restarting", "boom"),)), "error",
     "discovery: boom"),
])
def test_tray_state(snap: NodeSnapshot, icon: str, words: str) -> None:
    st = tray_state(snap, NOW)
    assert st.icon == icon
    assert words in st.tooltip


def test_every_state_has_an_icon(qapp) -> None:
    from app.icons import STATES, icon_for

    for state in STATES:
        assert not icon_for(state).isNull()
        assert icon_for(state).pixmap(32, 32).width() == 32
