"""Reachability: learn whether others can dial us (AutoNAT against several peers), and when
they cannot, hold reservations on 2 relays and publish the circuit addresses in our record.

The decision (`plan`) is pure; `ReachabilityService` runs it against the live host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

WANT_RELAYS = 2
AUTONAT_SERVERS = 3
FAST_PERIOD = 3.0     # while we do not know yet, or hold fewer reservations than we want
SLOW_PERIOD = 60.0


@dataclass(frozen=True)
class Reachability:
    state: str    # "unknown", "direct", "relay-only", "unreachable", "offline"
    detail: str   # one plain sentence for the gardener


def describe(nat_status: str, connected: int, relays: int, listen_port: int) -> Reachability:
    """What the gardener reads in the dashboard and `grove node`."""
    if connected == 0:
        return Reachability("offline", "offline: no other village is connected")
    if nat_status == "public":
        return Reachability("direct", "direct: other villages can reach this one")
    if nat_status == "private":
        if relays:
            return Reachability(
                "relay-only", f"relay-only: slower; forward TCP port {listen_port} to this "
                f"computer in your router to fix ({relays} relay{'s' if relays > 1 else ''})")
        return Reachability(
            "unreachable", "unreachable: behind a NAT and no relay found yet; forward TCP port "
            f"{listen_port} to this computer in your router")
    return Reachability("unknown", "checking whether other villages can reach this one")


def pick_relays(candidates: list[str], reserved: set[str], want: int = WANT_RELAYS) -> list[str]:
    """Relays to reserve on now: candidates we hold no reservation with, up to `want` in all."""
    room = max(0, want - len(reserved))
    return [c for c in candidates if c not in reserved][:room]


class ReachabilityService:
    """Drives the transport's NAT client (`ctx.transport.nat`); `relay_records()` lists the
    relays the DHT knows of."""

    def __init__(self, ctx: ServiceContext,
                 relay_records: Callable[[], list[Any]] = list) -> None:
        self.ctx = ctx
        self.relay_records = relay_records
        self.nat_status = "unknown"
        self.current = Reachability("unknown", "checking whether other villages can reach this one")
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _set(self, new: Reachability) -> None:
        if new != self.current:
            log.info("reachability: %s", new.detail)
            self.current = new
            self._changed.set()
            self._changed = trio.Event()

    async def run(self) -> None:
        host = self.ctx.transport
        nat = host.nat
        if nat is None:  # a transport without NAT traversal: reachable as it listens
            self._set(Reachability("direct", "direct: other villages can reach this one"))
            await trio.sleep_forever()
        while True:
            direct = [p for p in host.connected_peers() if "/p2p-circuit" not in p.multiaddr]
            ids = [p.peer_id for p in direct]
            servers = [p for p in ids if nat.is_autonat_server(p)][:AUTONAT_SERVERS]
            forced = self.ctx.settings.reachability
            if forced != "auto":
                self.nat_status = forced
            elif servers:
                verdict = await nat.check_reachability(servers)
                if verdict.status != "unknown":
                    self.nat_status = verdict.status
            before = set(nat.reservations)
            for rid in list(nat.reservations):  # a relay that went away holds nothing for us
                if rid not in ids:
                    log.info("relay %s went away; its reservation is dropped", rid)
                    nat.drop_reservation(rid)
            if self.nat_status == "private":
                await self._find_relays(ids)
            circuits_changed = set(nat.reservations) != before
            self._set(describe(self.nat_status, len(ids), len(nat.reservations),
                               self.ctx.settings.listen_port or _port(host.listen_addrs())))
            if circuits_changed:
                self._changed.set()
                self._changed = trio.Event()
            settled = self.nat_status == "public" or (
                self.nat_status == "private" and len(nat.reservations) >= WANT_RELAYS)
            await trio.sleep(SLOW_PERIOD if settled else FAST_PERIOD)

    async def _find_relays(self, connected: list[str]) -> None:
        host = self.ctx.transport
        nat = host.nat
        candidates = [p for p in connected if nat.is_relay(p)]
        self.ctx.rng.shuffle(candidates)  # spread the homes over the relays they know
        if len(candidates) + len(nat.reservations) < WANT_RELAYS:
            # relays other villages told the DHT about: dial them so they can be asked
            for found in self.relay_records():
                r = found.record
                if r.peer_id in connected or r.peer_id == host.peer_id:
                    continue
                for addr in r.addrs:
                    if "/p2p-circuit" in addr:
                        continue
                    try:
                        await host.connect(f"{addr}/p2p/{r.peer_id}", timeout=5)
                    except Exception as e:
                        log.debug("relay %s not reachable at %s: %s", r.peer_id, addr, e)
                        continue
                    candidates.append(r.peer_id)
                    break
        addr_of = {p.peer_id: p.multiaddr for p in host.connected_peers()}
        for rid in pick_relays(candidates, set(nat.reservations)):
            if rid in addr_of:
                await nat.reserve(rid, addr_of[rid])


def _port(addrs: list[str]) -> int:
    for a in addrs:
        parts = a.split("/")
        if "tcp" in parts:
            try:
                return int(parts[parts.index("tcp") + 1])
            except (ValueError, IndexError):
                continue
    return 0
