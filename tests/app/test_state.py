"""The tray icon for every node state, the notifications, the health history (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.state import HealthHistory, Notifier, tray_state
from core.names import village_name
from core.snapshot import (
    ComputeStatus,
    CreditsView,
    GovernorStatus,
    HealthAggregate,
    NodeSnapshot,
    NodeState,
    PeerView,
    ServiceStatus,
    TelemetryView,
)

NOW = 10_000.0
BASE = NodeSnapshot(state=NodeState.RUNNING, peer_id="me", started_at=NOW - 60,
                    participating=True, peers=(PeerView("p", "/ip4/x"),),
                    reachability="direct", governor=GovernorStatus(may_compute=True))
GPU = GovernorStatus(may_compute=True, uses_gpu=True, hot_gpus=(0,))


def rule(name: str) -> GovernorStatus:
    return GovernorStatus(may_compute=False, rule=name, reason=f"paused: {name}")


@pytest.mark.parametrize(("snap", "icon", "words"), [
    (BASE, "idle", "participating with 1 other village; no work right now"),
    (replace(BASE, compute=ComputeStatus(threads_running=2)), "contributing", "contributing"),
    (replace(BASE, compute=ComputeStatus(job_running=True)), "contributing", "contributing"),
    (replace(BASE, participating=False, governor=rule("participation")), "off",
     "participation off"),
    (replace(BASE, paused_until=NOW + 600, governor=rule("pause")), "paused", "Paused until"),
    (replace(BASE, paused_until=NOW - 1), "idle", "participating"),
    (replace(BASE, governor=rule("battery")), "paused", "by a rule: on battery"),
    (replace(BASE, governor=rule("schedule")), "paused", "outside your schedule"),
    (replace(BASE, governor=rule("idle")), "paused", "the computer is in use"),
    (replace(BASE, governor=GPU), "paused", "GPU 0 above your temperature limit"),
    (replace(BASE, governor=replace(GPU, uses_gpu=False)), "idle", "participating"),
    (replace(BASE, reachability="relay-only", reachability_detail="forward TCP port 4001"),
     "relay", "forward TCP port 4001"),
    (replace(BASE, peers=()), "offline", "no other village can be reached"),
    (replace(BASE, reachability="unreachable", reachability_detail="unreachable: behind a NAT"),
     "offline", "behind a NAT"),
    (replace(BASE, reachability="offline"), "idle", "participating"),  # peers say otherwise
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
    first, credits, peers = st.tooltip.split("\n")
    assert first.startswith("Grove: ") and credits.startswith("credits: ")
    assert peers.startswith(f"{village_name('me')}, connected to ")
    assert peers.endswith(("1 other village", "0 other villages"))


def test_the_tray_credits_line_is_the_ledgers_and_says_when_it_cannot() -> None:
    def line(snap: NodeSnapshot) -> str:
        return tray_state(snap, NOW).tooltip.split("\n")[1]

    assert line(BASE) == "credits: not measured (the ledger is not open)"
    assert line(replace(BASE, credits=CreditsView(paused="the ledger file is damaged"))) == (
        "credits: not measured (the ledger file is damaged)")
    ledger = CreditsView(running=True, today=1.5, pending=0.25, balance=12.0)
    assert line(replace(BASE, credits=ledger)) == (
        "credits: 1.5 credits earned today, 0.25 credits pending; balance 12 credits")
    assert line(replace(BASE, credits=replace(ledger, pending=0.0, paused="no trusted peer"))) \
        == ("credits: 1.5 credits earned today; balance 12 credits (crediting paused: no "
            "trusted peer)")


def test_a_broken_node_is_never_shown_as_fine() -> None:
    # errors win over every happy state, whatever else the snapshot says
    broken = replace(BASE, compute=ComputeStatus(threads_running=4),
                     services=(ServiceStatus("dht", "restarting", "crashed"),))
    assert tray_state(broken, NOW).icon == "error"


def test_every_state_has_an_icon(qapp) -> None:
    from app.icons import STATES, icon_for

    for state in STATES:
        assert not icon_for(state).isNull()
        assert icon_for(state).pixmap(32, 32).width() == 32


def test_notifications_on_entering_a_state_rate_limited_and_switchable() -> None:
    n = Notifier(per_kind_s=600, max_per_hour=3)
    assert n.observe(BASE, NOW) == []
    battery = replace(BASE, governor=rule("battery"))
    [notice] = n.observe(battery, NOW + 1)
    assert notice.kind == "paused" and "on battery" in notice.text
    assert n.observe(battery, NOW + 2) == []          # still paused: said once
    n.observe(BASE, NOW + 3)
    assert n.observe(battery, NOW + 4) == []          # again within 10 min: quiet
    n.observe(BASE, NOW + 5)
    assert [x.kind for x in n.observe(battery, NOW + 700)] == ["paused"]
    # a pause the gardener asked for is not news to them
    assert n.observe(replace(BASE, paused_until=NOW + 9000, governor=rule("pause")),
                     NOW + 701) == []
    relay = replace(BASE, reachability="relay-only", reachability_detail="forward port 1")
    [r] = n.observe(relay, NOW + 702)
    assert r.kind == "relay" and "forward port 1" in r.text
    broken = replace(BASE, error="disk full", state=NodeState.FAILED)
    assert n.observe(broken, NOW + 703) == []         # 3 in the last hour: the cap
    assert [x.kind for x in n.observe(replace(broken, error="disk gone"),
                                      NOW + 4000)] == ["error"]
    off = Notifier(enabled=False)
    assert off.observe(battery, NOW) == []


def test_health_history_keeps_one_point_per_round() -> None:
    h = HealthHistory(limit=3)
    for i in range(5):
        agg = HealthAggregate(means=(("contributing", 0.5),), villages=10 + i, at=NOW + i)
        snap = replace(BASE, telemetry=TelemetryView(network=agg))
        assert h.observe(snap)
        assert not h.observe(snap)  # the same round twice
    assert [p[1] for p in h.points] == [12, 13, 14]
    assert h.points[-1][2] == 50.0
