"""What a village is: the content of its own signed record and the directory keys it is
listed under. The DHT service publishes what this says; it knows nothing of tiers,
personas or limits itself.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from core.dht import records as rec
from core.names import sanitise
from core.ports import ServiceContext, Transport


class VillageRecordSource:
    """Builds this village's record from the ports that know each part of it.

    `tier()` gives the compute tier decision (`core.tiers.TierDecision`), `personas()` the
    current personas, `relay_hop()` whether this village serves circuits now;
    `changes` are waits whose end means the record should be republished."""

    def __init__(self, ctx: ServiceContext, *, tier: Callable[[], Any],
                 personas: Callable[[], tuple[Any, ...]] = tuple,
                 relay_hop: Callable[[], bool] = lambda: False,
                 presence: Callable[[], bool | None] = lambda: None,
                 upload_mbps: Callable[[], float | None] = lambda: None,
                 changes: tuple[Callable[[], Awaitable[Any]], ...] = ()) -> None:
        self.ctx = ctx
        self.upload_mbps = upload_mbps
        self.tier = tier
        self.personas = personas
        self.relay_hop = relay_hop
        self.presence = presence
        self.changes = (ctx.settings_port.wait_changed, *changes)

    @property
    def transport(self) -> Transport:
        return self.ctx.transport

    def own_addrs(self) -> list[str]:
        """Our listen addresses; behind a NAT, the circuit addresses through our relays first
        (a dialer tries them in order)."""
        t = self.transport
        direct = [a.split("/p2p/")[0] for a in t.listen_addrs() if "/ip4/0.0.0.0/" not in a]
        nat = t.nat
        if nat is None or not nat.reservations:
            return direct
        return list(nat.circuit_addrs(t.peer_id)) + direct

    def services(self) -> list[str]:
        services = list(self.tier().spec.services)
        if self.relay_hop():
            services.append("relay-hop")  # serving circuits now (the tier only allows it)
        return services

    def make(self, ttl: float) -> rec.ValidRecord:
        s = self.ctx.settings
        now = self.ctx.clock.wall()
        tier = self.tier()
        personas = [rec.PersonaSummary(p.id, p.name, p.status, p.availability, p.capacity,
                                       p.backend, p.seq, p.description)
                    for p in self.personas()[:32]]
        while True:
            record = rec.VillageRecord(
                v=rec.VILLAGE_VERSION, peer_id=self.ctx.peer_id, addrs=self.own_addrs()[:8],
                tier=tier.tier, services=self.services(),
                limits=rec.LimitsSummary(s.cpu_share, s.upload_kbps, s.download_kbps),
                personas=personas, gardener_online=self.presence(), software=software(),
                region=s.region[:64], seq=int(now * 1_000_000), issued_at=now,
                expires_at=now + ttl, bandwidth=rec.bandwidth_category(self.offered_mbps()),
                agent_memory_mb=self.agent_memory_mb(), name=sanitise(s.village_name))
            value = rec.sign_record(record, self.ctx.sign)
            told = [i for i, p in enumerate(personas) if p.description]
            if len(value) <= rec.MAX_RECORD_BYTES or not told:
                break
            # past the cap: the last descriptions are left out (32 personas with the
            # longest names and no description fit: tests/test_dht_pure.py)
            personas[told[-1]] = msgspec.structs.replace(personas[told[-1]], description="")
        return rec.ValidRecord(rec.village_key(record.peer_id), value, record)

    def offered_mbps(self) -> float | None:
        """The upload this village offers: what it measured on its own transfers (None
        before the first), no more than the gardener's upload cap."""
        measured = self.upload_mbps()
        cap = self.ctx.settings.upload_kbps
        if measured is None or not cap:
            return measured
        return min(measured, cap * 8 / 1000)

    def agent_memory_mb(self) -> int | None:
        """Memory free for agents' work now: the RAM cap less what the network's work holds,
        no more than the memory the system has available (measured)."""
        import psutil

        try:
            available = psutil.virtual_memory().available
        except (OSError, psutil.Error):
            return None
        room = self.ctx.memory.room()
        free = available if room is None else min(room, available)
        return min(rec.MAX_AGENT_MEMORY_MB, int(free // 2**20))

    def directory_keys(self) -> list[bytes]:
        tier = self.tier()
        keys = [b"/grove/dir/tier/" + tier.tier.encode()]
        keys += [b"/grove/dir/service/" + s.encode() for s in tier.spec.services]
        region = self.ctx.settings.region
        if region:
            keys.append(b"/grove/dir/region/" + region.encode()[:64])
        return keys


def software() -> str:
    from core import __version__

    return f"grove-village/{__version__} ({os.name})"


async def connect_village(transport: Transport, dht: Any, peer_id: str, now: float) -> str:
    """Dial a village by id, at the addresses its signed record gives (circuit addresses
    through its relays first when it is behind a NAT)."""
    from core.errors import NetworkError

    if transport.is_connected(peer_id):
        return peer_id
    found = dht.villages.get(peer_id) or await dht.get_village(peer_id, quorum=1)
    if found is None or found.expires_at <= now:
        raise NetworkError(f"No record of village {peer_id} in the village network.",
                           "It may be offline; records expire 5 minutes after it stops.")
    reasons = []
    for addr in found.record.addrs:
        try:
            return await transport.connect(f"{addr}/p2p/{peer_id}", timeout=10)
        except NetworkError as e:
            reasons.append(e.what)
    raise NetworkError(f"Village {peer_id} did not answer at any of its addresses.",
                       "; ".join(reasons))
