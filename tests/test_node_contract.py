"""Contract tests against the real Node: real libp2p hosts on loopback, real files."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
import trio

from core.errors import GardenerError, SettingsError
from core.handle import NodeNotRunning
from core.snapshot import (
    NodeSnapshot,
    NodeState,
    ParticipationChanged,
    PeerConnected,
    ServiceFailed,
)
from tests.nodes import make_handle, wait_for


def _our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive()}


def _inet_sockets() -> int:
    return len(psutil.Process().net_connections(kind="inet"))


def test_twenty_start_stop_cycles_leave_nothing_behind(tmp_path: Path) -> None:
    threads_before = _our_threads()
    sockets_before = _inet_sockets()
    fds_before = psutil.Process().num_fds()
    peer = make_handle(tmp_path, "peer")
    peer.start()
    handle = make_handle(tmp_path, "cycles", bootstrap=(peer.snapshot().listen_addrs[0],))
    peer_ids = set()
    for _ in range(20):
        snap = handle.start()
        assert snap.state is NodeState.RUNNING
        peer_ids.add(snap.peer_id)
        wait_for(lambda: len(handle.snapshot().peers) == 1, what="the cycling node to connect")
        began = time.monotonic()
        assert handle.stop(timeout=5.0)
        assert time.monotonic() - began < 5.0
        assert handle.snapshot().state is NodeState.STOPPED
        assert handle.tasks.live == 0  # every trio task of that run exited
        # the peer sees it leave: its connection was really closed
        wait_for(lambda: not peer.snapshot().peers, 5, "the peer to see the node leave")
    assert len(peer_ids) == 1  # same identity every time
    assert peer.stop()
    # trio's idle worker threads exit ~10 s after their last job
    wait_for(lambda: _our_threads() <= threads_before, 20, "node threads to exit")
    assert _inet_sockets() == sockets_before
    assert psutil.Process().num_fds() <= fds_before + 2
    assert not handle.config.paths.runtime_file.exists()


def test_stop_is_clean_within_five_seconds_with_peers(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    b = make_handle(tmp_path, "b", bootstrap=(a.snapshot().listen_addrs[0],))
    b.start()
    try:
        wait_for(lambda: len(a.snapshot().peers) == 1 and len(b.snapshot().peers) == 1,
                 what="a and b to connect")
    finally:
        began = time.monotonic()
        assert a.stop() and b.stop()
        assert time.monotonic() - began < 5.0


def test_three_nodes_meet_through_one_bootstrap(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    boot = (a.snapshot().listen_addrs[0],)
    others = [make_handle(tmp_path, p, bootstrap=boot) for p in ("b", "c")]
    for h in others:
        h.start()
    handles = [a, *others]
    try:
        wait_for(lambda: all(len(h.snapshot().peers) == 2 for h in handles),
                 what="each node to see the other two")
        ids = {h.snapshot().peer_id for h in handles}
        for h in handles:
            assert {p.peer_id for p in h.snapshot().peers} == ids - {h.snapshot().peer_id}
    finally:
        for h in handles:
            h.stop()


def test_snapshots_and_events_reach_subscribers_at_most_twice_a_second(
        tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    snaps: list[NodeSnapshot] = []
    events: list[object] = []
    a.subscribe(snaps.append, events.append)
    a.start()
    b = make_handle(tmp_path, "b", bootstrap=(a.snapshot().listen_addrs[0],))
    b.start()
    try:
        wait_for(lambda: any(isinstance(e, PeerConnected) for e in events), what="event")
        assert a.set_participation(True).result(5) is True
        wait_for(lambda: snaps[-1].participating, what="snapshot with participation")
        assert any(isinstance(e, ParticipationChanged) and e.participating for e in events)
        count_before = len(snaps)
        time.sleep(3.0)  # measuring a rate: the rate is the behaviour under test
        assert len(snaps) - count_before <= 7
        seqs = [s.seq for s in snaps]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        a.stop()
        b.stop()


def test_participation_persists_across_restart(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    assert a.snapshot().participating is False  # off until the gardener says yes
    a.set_participation(True).result(5)
    a.stop()
    again = make_handle(tmp_path, "a")
    assert again.config.settings.participate is True
    again.start()
    try:
        assert again.snapshot().participating is True
    finally:
        again.stop()


def test_update_settings_validates_and_applies_live(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    try:
        with pytest.raises(SettingsError, match="max_connections"):
            a.update_settings(max_connections=0).result(5)
        assert a.update_settings(region="eu-west").result(5) == ("region",)
        assert a.update_settings(region="eu-west").result(5) == ()
        assert "region = \"eu-west\"" in a.config.paths.settings_file.read_text()
    finally:
        a.stop()


def test_pause_and_resume(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    a.start()
    try:
        until = time.time() + 3600
        a.pause(until).result(5)
        wait_for(lambda: a.snapshot().is_paused(), what="paused snapshot")
        a.resume().result(5)
        wait_for(lambda: not a.snapshot().is_paused(), what="resumed snapshot")
    finally:
        a.stop()


def test_a_crashing_service_restarts_with_backoff_and_shows_the_error(
        tmp_path: Path) -> None:
    runs: list[float] = []

    def factory(node: object):
        async def flaky() -> None:
            runs.append(trio.current_time())
            if len(runs) <= 3:
                raise RuntimeError(f"boom {len(runs)}")
            await trio.sleep_forever()
        return flaky

    events: list[object] = []
    a = make_handle(tmp_path, "a", extra_services={"flaky": factory})
    a.subscribe(None, events.append)
    a.start()
    try:
        wait_for(lambda: any("boom" in e for e in a.snapshot().errors),
                 what="the error in the snapshot")
        wait_for(lambda: len(runs) >= 4, what="three restarts")
        gaps = [b - a_ for a_, b in itertools.pairwise(runs)]
        assert gaps[1] > gaps[0] * 0.9  # backoff grows (jittered within [half, full])
        failures = [e for e in events if isinstance(e, ServiceFailed)]
        assert [f.service for f in failures] == ["flaky"] * 3
        wait_for(lambda: not a.snapshot().errors, what="the error to clear after recovery")
        status = {s.name: s for s in a.snapshot().services}["flaky"]
        assert status.restarts == 3 and status.state == "running"
        assert a.snapshot().state is NodeState.RUNNING
    finally:
        a.stop()


def test_port_in_use_is_a_plain_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        a = make_handle(tmp_path, "a", listen_port=port)
        with pytest.raises(GardenerError, match=f"Port {port} is already in use"):
            a.start()
        assert a.snapshot().state is NodeState.FAILED
        assert not a.running


def test_one_node_per_profile(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "same")
    a.start()
    try:
        b = make_handle(tmp_path, "same")
        with pytest.raises(GardenerError, match="already running for profile 'same'"):
            b.start()
    finally:
        a.stop()


def test_commands_to_a_stopped_node_fail_cleanly(tmp_path: Path) -> None:
    a = make_handle(tmp_path, "a")
    with pytest.raises(NodeNotRunning):
        a.set_participation(True).result(1)


def test_an_unanswering_bootstrap_does_not_stop_the_node(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    dead = f"/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWGTDV4DWDGVwBUNjyj6dXrtxduNZpGRtvCb6sCvAVdVZg"
    a = make_handle(tmp_path, "a", bootstrap=(dead,))
    a.start()
    try:
        time.sleep(1.5)  # let a dial fail: the node must still be up afterwards
        assert a.snapshot().state is NodeState.RUNNING and not a.snapshot().errors
    finally:
        a.stop()
