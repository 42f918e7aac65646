"""Who serves which blocks: per-block DHT directory keys and the servers' signed records.

A server announces itself as a provider under `/grove/dir/swarm/<model>/<block>` for each block
of its span (so a client finds a stage's servers without a crawl), and publishes a signed
`SwarmServerRecord` under `/grove/swarm/<model>/<peer id>` (span, throughput, joining/online,
direct/relay; short TTL, re-signed every ANNOUNCE_EVERY s). Readers take the record from the
server itself first, so a fresh announcement counts at once; an expired one is never used.
No torch here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from core.dht import records as rec
from core.net.kad import KadPeer

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

RECORD_TTL = 60.0
ANNOUNCE_EVERY = 20.0
READ_PARALLEL = 4        # directory lookups a read has in flight at once
READ_TIMEOUT = 10.0


def block_key(model: str, block: int) -> bytes:
    return f"/grove/dir/swarm/{model}/{block}".encode()


@dataclass(frozen=True)
class ServerInfo:
    peer_id: str
    addrs: tuple[str, ...]
    record: rec.SwarmServerRecord

    @property
    def expires_at(self) -> float:
        return self.record.expires_at


async def read_servers(ctx: ServiceContext, dht: Any, model: str, blocks: int
                       ) -> list[ServerInfo]:
    """Every server of `model` the directory lists, with its current signed record (servers
    whose record cannot be read, or has expired, are left out)."""
    listed: dict[str, KadPeer] = {}
    # a few lookups at a time: all of a model's blocks and servers at once put dozens of
    # DHT streams on the same few peers, past the cap a loaded peer counts as an offence
    limit = trio.CapacityLimiter(READ_PARALLEL)

    async def providers(b: int) -> None:
        async with limit:
            try:
                await dht.find_providers(block_key(model, b), into=listed)
            except Exception as e:  # one unreadable key leaves a gap, not an error
                log.debug("swarm: block %d's directory not read: %s", b, e)

    with trio.move_on_after(READ_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for b in range(blocks):
                nursery.start_soon(providers, b)
    found: list[ServerInfo] = []

    async def record(p: KadPeer) -> None:
        async with limit:
            await _record(p)

    async def _record(p: KadPeer) -> None:
        if p.peer_id == ctx.peer_id:
            held = dht.held(rec.swarm_key(model, p.peer_id))
        else:
            if p.addrs:
                ctx.transport.remember(p.peer_id, p.addrs)
            try:
                held = await dht.get_record(rec.swarm_key(model, p.peer_id), 1,
                                                 owner=p.peer_id)
            except Exception as e:
                log.debug("swarm: record of %s not read: %s", p.peer_id, e)
                return
            if held is None:
                try:  # not in our routing table: ask it directly
                    held = await dht.get_record_from(p.peer_id, p.addrs,
                                                          rec.swarm_key(model, p.peer_id))
                except Exception as e:
                    log.debug("swarm: %s did not give its record: %s", p.peer_id, e)
                    return
        if held is not None and held.expires_at > ctx.clock.wall():
            found.append(ServerInfo(p.peer_id, tuple(p.addrs), held.record))

    with trio.move_on_after(READ_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for p in listed.values():
                nursery.start_soon(record, p)
    return sorted(found, key=lambda s: s.peer_id)
