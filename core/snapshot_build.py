"""Snapshot assembly: a `NodeSnapshot` from what the services hold now.

Rules: reads only, changes nothing, does no I/O; the node thread calls it (at most twice a
second) and hands the frozen result to the app.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from core import __version__
from core.compose import Services
from core.snapshot import (
    ComputeStatus,
    HealthAggregate,
    NodeSnapshot,
    NodeState,
    PeerView,
    TelemetryView,
    UsageView,
    VillageView,
)


@dataclass(frozen=True)
class NodeFacts:
    """What the composition root itself knows of the run."""

    state: NodeState
    profile: str
    started_at: float | None
    uptime_s: float
    now: float          # wall clock
    mono_to_wall: float  # add to a time.monotonic() reading to get wall time
    key_store: str
    key_store_fallback: bool
    notices: tuple[str, ...]
    relay_hop: bool


def assemble(facts: NodeFacts, host: Any, services: Services, *, settings: Any,
             supervisor_status: dict[str, Any], personas: tuple[Any, ...],
             usage: UsageView) -> NodeSnapshot:
    sv = services
    peers: tuple[PeerView, ...] = ()
    if host is not None:
        rtts = sv.discovery.rtts
        peers = tuple(sorted(
            (PeerView(p.peer_id, p.multiaddr, _ms(p.rtt or rtts.get(p.peer_id)),
                      p.kind or "direct")
             for p in host.peer_links()), key=lambda p: p.peer_id))
    gov = sv.governor
    return NodeSnapshot(
        seq=0, state=facts.state, profile=facts.profile,
        peer_id=host.peer_id if host else "",
        listen_addrs=tuple(host.listen_addrs()) if host else (),
        peers=peers, started_at=facts.started_at, uptime_s=facts.uptime_s,
        participating=settings.participate, paused_until=gov.paused_now(),
        key_store=facts.key_store, key_store_fallback=facts.key_store_fallback,
        services=tuple(supervisor_status[k] for k in sorted(supervisor_status)),
        notices=facts.notices, version=__version__,
        tier=gov.tier.tier, tier_reason=gov.tier.reason, tier_allows=gov.tier.spec.services,
        hardware=hardware_line(gov.hardware), governor=gov.view(),
        compute=_compute_status(sv, facts.mono_to_wall),
        villages=villages(sv.dht, facts.now),
        dht_peers=len(sv.dht.table) if sv.dht.table is not None else 0,
        record_acks=sv.dht.put_acks, relay_hop=facts.relay_hop,
        reachability=sv.reachability.current.state,
        reachability_detail=sv.reachability.current.detail,
        relays=tuple(sorted(host.nat.reservations)) if host and host.nat else (),
        telemetry=telemetry_view(sv.telemetry.state), settings=settings, usage=usage,
        personas=personas, training=sv.training.views(settings), swarm=sv.swarm.view(),
        credits=sv.ledger.last_view, conversations=sv.conversations.views(),
        update=sv.updates.view, activity=sv.activity.view())


def telemetry_view(st: Any) -> TelemetryView:
    def agg(a: Any) -> HealthAggregate | None:
        if a is None:
            return None
        return HealthAggregate(tuple(sorted(a.means.items())), a.villages, a.uncertainty,
                               a.members_last_round, a.rounds, a.at)

    return TelemetryView(tuple(sorted(st.local.items())), agg(st.regional), agg(st.network),
                         st.last_error)


def villages(dht: Any, now: float) -> tuple[VillageView, ...]:
    out = []
    for v in dht.known_villages(now):
        r = v.record
        relay = any("/p2p-circuit" in a for a in r.addrs)
        out.append(VillageView(r.peer_id, r.tier, tuple(r.services), r.region,
                               tuple(p.name for p in r.personas), r.gardener_online,
                               "relay" if relay else "direct", r.issued_at, r.expires_at,
                               r.bandwidth, r.agent_memory_mb, r.name,
                               tuple((p.id, p.name) for p in r.personas
                                     if p.availability == "open" and p.status == "running")))
    return tuple(out)


def hardware_line(hw: Any) -> str:
    gpus = ", ".join(f"{g.name} ({g.vram_total / 1024**3:.0f} GiB)" for g in hw.nvml.gpus)
    return (f"{hw.cpu_model}, {hw.logical_cores} threads, "
            f"{hw.ram_total / 1024**3:.0f} GiB RAM; " + (gpus or "no GPU"))


def _compute_status(sv: Services, to_wall: float) -> ComputeStatus:
    st = sv.governor.gate.stats()
    return ComputeStatus(
        job_running=sv.test_jobs.running, threads_running=st.running_threads,
        progress=st.progress,
        last_progress_at=st.last_progress_at + to_wall if st.last_progress_at else None,
        parked_since=st.parked_since + to_wall if st.parked_since else None,
        last_test=sv.test_jobs.last_result)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def content(snap: NodeSnapshot) -> NodeSnapshot:
    """What a snapshot says, without what changes every time (seq, uptime, usage, RTTs): a
    new one is published only when this differs, or as a heartbeat."""
    return replace(snap, seq=0, uptime_s=0.0, usage=UsageView(),
                   peers=tuple(replace(p, rtt_ms=None) for p in snap.peers))
