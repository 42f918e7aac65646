"""The Overview's four answers (core.glance), from snapshots: pure."""

from __future__ import annotations

from dataclasses import replace

from core.glance import glance
from core.names import village_name
from core.settings_schema import Settings
from core.snapshot import (
    ActivityView,
    CreditEvent,
    CreditsView,
    GovernorStatus,
    NodeSnapshot,
    NodeState,
    SwarmView,
    UsageView,
)

NOW = 1_800_000_000.0
BASE = NodeSnapshot(state=NodeState.RUNNING, peer_id="12D3KooWme", participating=True,
                    settings=Settings().with_changes(participate=True),
                    governor=GovernorStatus(may_compute=True, cpu_share=0.5))


def test_why_grove_is_or_is_not_using_the_computer() -> None:
    cases = [
        (replace(BASE, participating=False), "off", "You switched lending off"),
        (replace(BASE, paused_until=NOW + 600), "not-using", "Paused until "),
        (replace(BASE, governor=GovernorStatus(may_compute=False, rule="battery")),
         "not-using", "Paused while on battery."),
        (replace(BASE, governor=GovernorStatus(may_compute=False, reason="waiting: x")),
         "not-using", "Waiting: x"),
        (BASE, "ready", "It may use up to 50 % of the processor; no work needs it"),
        (replace(BASE, swarm=SwarmView(True, "online", "serving")), "using",
         "Serving a model, within your limits (up to 50 % of the processor)."),
        (replace(BASE, state=NodeState.FAILED, error="Port 1 is in use."), "error",
         "Port 1 is in use."),
        (replace(BASE, state=NodeState.STOPPED), "stopped", "Nothing is lent"),
    ]
    for snap, state, why in cases:
        g = glance(snap, NOW)
        assert g.state == state and g.why.startswith(why), (g.state, g.why)
        assert ("is using" in g.headline) == (state == "using")


def test_how_much_and_what_it_did_say_not_measured_until_measured() -> None:
    g = glance(BASE, NOW)
    assert dict(g.usage)["Processor"] == "not measured"
    assert g.today == "processor time not measured; credits not measured"
    assert g.worked_for == "not measured"
    snap = replace(BASE, usage=UsageView(cpu_percent=12.4, rss_mb=300, upload_kbps=2.5,
                                         download_kbps=0, at=NOW),
                   activity=ActivityView(True, cpu_seconds_today=5400, sent_today=4_200_000),
                   credits=CreditsView(running=True, today=4.096, events=(
                       CreditEvent("swarm", 1.0, "verified", "", NOW - 60, "12D3KooWa"),
                       CreditEvent("swarm", 1.0, "rejected", "bad", NOW - 60, "12D3KooWb"),
                       CreditEvent("swarm", 1.0, "verified", "", NOW - 9 * 86400,
                                   "12D3KooWc"))))
    g = glance(snap, NOW)
    assert dict(g.usage)["Processor"] == "12 % of this computer (your limit 50 %)"
    assert dict(g.usage)["Upload"] == "2.5 kB/s (no limit set)"
    assert g.today == "1.5 h of processor time, 4.2 MB sent, 0 B received; 4.1 credits earned"
    assert g.worked_for == f"1 village today: {village_name('12D3KooWa')}."  # not b, c
    assert g.all_well == "Nothing needs your attention."
    assert g.name == village_name("12D3KooWme")
