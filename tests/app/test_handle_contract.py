"""The handle contract the UI relies on, run against the real node and against the fake the
page tests use: same answers, same errors, same events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import SettingsError
from core.handle import NodeNotRunning
from core.snapshot import NodeState, NodeStopped, ParticipationChanged, SettingsChanged
from tests.app.fake_node import FakeHandle
from tests.nodes import make_handle, wait_for


@pytest.fixture(params=["real", "fake"])
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    h = make_handle(tmp_path, "contract") if request.param == "real" else FakeHandle(tmp_path)
    yield h
    h.stop()


def test_the_handle_contract(handle: Any) -> None:
    events: list[Any] = []
    handle.subscribe(None, events.append)
    with pytest.raises(NodeNotRunning):
        handle.set_participation(True).result(5)
    snap = handle.start()
    assert snap.state is NodeState.RUNNING and handle.snapshot().peer_id
    wait_for(lambda: handle.snapshot().settings is not None, 5, "settings in the snapshot")

    assert handle.set_participation(True).result(5) is True
    wait_for(lambda: handle.snapshot().participating, 2, "participation in the snapshot")
    assert any(isinstance(e, ParticipationChanged) and e.participating for e in events)

    with pytest.raises(SettingsError, match="cpu_share"):
        handle.update_settings(cpu_share=1000).result(5)
    assert handle.update_settings(cpu_share=30).result(5) == ("cpu_share",)
    wait_for(lambda: handle.snapshot().settings.cpu_share == 30, 2, "the new cpu share")
    assert any(isinstance(e, SettingsChanged) and "cpu_share" in e.fields for e in events)

    until = time.time() + 600
    handle.pause(until).result(5)
    wait_for(lambda: handle.snapshot().is_paused(), 2, "the pause")
    handle.resume().result(5)
    wait_for(lambda: not handle.snapshot().is_paused(), 2, "the resume")

    ada = handle.add_persona("Ada", description="answers in verse").result(5)
    assert (ada.name, ada.status, ada.availability, ada.seq) == ("Ada", "sleeping", "invitation", 1)
    with pytest.raises(SettingsError, match="name"):
        handle.add_persona("   ").result(5)
    with pytest.raises(SettingsError, match="availability"):
        handle.update_persona(ada.id, availability="sometimes").result(5)
    closed = handle.update_persona(ada.id, availability="closed").result(5)
    assert closed.seq == 2 and closed.availability == "closed"
    wait_for(lambda: [p.availability for p in handle.snapshot().personas] == ["closed"], 2,
             "the persona in the snapshot")
    handle.remove_persona(ada.id).result(5)
    with pytest.raises(SettingsError, match="no persona"):
        handle.remove_persona(ada.id).result(5)
    wait_for(lambda: handle.snapshot().personas == (), 2, "the persona gone")

    assert handle.stop()
    assert handle.snapshot().state is NodeState.STOPPED
    assert any(isinstance(e, NodeStopped) for e in events)
    with pytest.raises(NodeNotRunning):
        handle.resume().result(5)
