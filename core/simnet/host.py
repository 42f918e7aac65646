"""`SimHost`: one village's end of the simulated network, implementing the transport port as
`core.net.host.GroveHost` does (peer ids and addresses as strings, handlers per protocol,
streams by peer id), and `SimNat`, its NAT client (AutoNAT verdicts, relay reservations,
circuit addresses) as `core.net.nat.NatClient` offers them to the reachability service.

Addresses are multiaddr strings in 127.0.0.0/8 - names only: no packet leaves the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed
from core.ports import Handler
from core.simnet.network import SimConn, SimNetwork, StreamReset

log = logging.getLogger(__name__)

RESERVATION_TTL = 3600.0


@dataclass(frozen=True)
class SimLink:
    peer_id: str
    multiaddr: str
    kind: str
    rtt: float | None


@dataclass(frozen=True)
class SimVerdict:
    status: str


class SimNat:
    """Reservations on relay villages, for a home behind a NAT (or none, for a public one)."""

    def __init__(self, host: SimHost, max_reservations: int) -> None:
        self.host = host
        self.max_reservations = max_reservations  # as a relay: homes it takes at most
        self.reservations: dict[str, tuple[str, float]] = {}  # relay -> (its addr, expiry)
        self.reserved_here: set[str] = set()  # as a relay: homes holding a slot here

    @property
    def net(self) -> SimNetwork:
        return self.host.net

    def is_autonat_server(self, peer_id: str) -> bool:
        other = self.net.hosts.get(peer_id)
        return other is not None and other.alive

    def is_relay(self, peer_id: str) -> bool:
        other = self.net.hosts.get(peer_id)
        return other is not None and other.alive and other.relay_hop

    async def check_reachability(self, peer_ids: list[str]) -> SimVerdict:
        """The servers try to dial us back on a fresh connection: a NAT drops those."""
        await trio.sleep(4 * self.net.default_link.latency)
        alive = [p for p in peer_ids if self.is_autonat_server(p)]
        if not alive:
            return SimVerdict("unknown")
        return SimVerdict("private" if self.host.behind_nat else "public")

    async def reserve(self, relay_id: str, relay_addr: str, timeout: float = 10.0) -> bool:
        relay = self.net.hosts.get(relay_id)
        await trio.sleep(2 * self.net.link(self.host.peer_id, relay_id).latency)
        if relay is None or not relay.alive or not relay.relay_hop or \
                relay_id not in self.host.conns:
            return False
        rn = relay.nat
        if len(rn.reserved_here) >= rn.max_reservations and \
                self.host.peer_id not in rn.reserved_here:
            self.net.count("reservations refused: relay full")
            return False
        rn.reserved_here.add(self.host.peer_id)
        self.reservations[relay_id] = (relay_addr, trio.current_time() + RESERVATION_TTL)
        return True

    def drop_reservation(self, relay_id: str) -> None:
        self.reservations.pop(relay_id, None)
        relay = self.net.hosts.get(relay_id)
        if relay is not None:
            relay.nat.reserved_here.discard(self.host.peer_id)

    def circuit_addrs(self, own_id: str) -> list[str]:
        now = trio.current_time()
        return [f"{addr}/p2p/{rid}/p2p-circuit" for rid, (addr, exp)
                in sorted(self.reservations.items()) if exp > now]

    async def dial_circuit(self, address: str, timeout: float = 15.0) -> str:
        parts = address.split("/p2p/")
        if len(parts) != 3 or not parts[1].endswith("/p2p-circuit"):
            raise NetworkError(f"The address '{address}' cannot be used.", "")
        relay, target = parts[1].removesuffix("/p2p-circuit"), parts[2]
        with trio.move_on_after(timeout):
            await self.net.dial(self.host, target, via=relay)
            return target
        raise NetworkError(f"{address} did not answer through its relay", "")


def _traffic() -> Any:
    from core.simnet.network import Traffic

    return Traffic()


class SimHost:
    """A village's transport on the simulated network. Trio-only, like GroveHost."""

    def __init__(self, net: SimNetwork, peer_id: str, address: str, *,
                 behind_nat: bool = False, relay_hop: bool = False,
                 max_reservations: int = 8) -> None:
        self.net = net
        self._peer_id = peer_id
        self.address = address  # /ip4/127.x.y.z/tcp/4001: a name, never a socket
        self.behind_nat = behind_nat
        self.relay_hop = relay_hop
        self.alive = True
        self.crashed_at = 0.0
        self.conns: dict[str, SimConn] = {}
        self._links: dict[str, tuple[SimConn, SimLink]] = {}  # built once per connection
        self.handlers: dict[str, Handler] = {}
        self.peerstore: dict[str, list[str]] = {}
        self.nat = SimNat(self, max_reservations)
        self.nursery: trio.Nursery | None = None  # where handlers run (set by the village)
        self.guard: Any = None  # the village's PeerGuard, once attached
        net.hosts[peer_id] = self
        if relay_hop:
            net.relay_traffic.setdefault(peer_id, _traffic())

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def listen_addrs(self) -> list[str]:
        return [f"{self.address}/p2p/{self._peer_id}"]

    def peer_links(self) -> list[SimLink]:
        up, links, out = self.net.up, self._links, []
        for pid, c in list(self.conns.items()):
            if up(c):
                link = links.get(pid)
                if link is None or link[0] is not c:
                    link = links[pid] = (c, SimLink(pid, self.net.hosts[pid].address, c.kind,
                                                    2 * c.latency))
                out.append(link[1])
        return out

    def connected_peers(self) -> list[SimLink]:
        return self.peer_links()

    def known_addrs(self, peer_id: str) -> list[str]:
        """What identify told us (its listen address: behind a NAT, one nobody can dial)."""
        if peer_id in self.conns:
            return [self.net.hosts[peer_id].address]
        return list(self.peerstore.get(peer_id, []))

    def remember(self, peer_id: str, addrs: tuple[str, ...] | list[str],
                 ttl: int = 600) -> None:
        known = self.peerstore.setdefault(peer_id, [])
        for full in addrs:
            a = full.split(f"/p2p/{peer_id}")[0] if "/p2p-circuit" not in full else full
            if a not in known:
                known.append(a)
        del known[:-8]

    def is_connected(self, peer_id: str) -> bool:
        c = self.conns.get(peer_id)
        return c is not None and self.net.up(c)

    def connection_kind(self, peer_id: str) -> str:
        c = self.conns.get(peer_id)
        return c.kind if c is not None else ""

    async def connect(self, address: str, timeout: float = 10.0) -> str:
        if "/p2p/" not in address:
            raise NetworkError(f"The address '{address}' cannot be used.",
                               "Give a multiaddr ending in /p2p/<peer id>.")
        target = address.rsplit("/p2p/", 1)[1]
        if target == self._peer_id or self.is_connected(target):
            return target
        self._check_admitted(target)
        if "/p2p-circuit" in address:
            return await self.nat.dial_circuit(address, timeout)
        with trio.move_on_after(timeout):
            await self.net.dial(self, target)
            return target
        raise NetworkError(f"{address} did not answer within {timeout:g} s.", "")

    async def disconnect(self, peer_id: str) -> None:
        c = self.conns.pop(peer_id, None)
        if c is not None:
            self.net.hosts[peer_id].conns.pop(self._peer_id, None)
            c.break_()

    def set_handler(self, protocol: str, handler: Handler) -> None:
        self.handlers[protocol] = handler

    async def open_stream(self, peer_id: str, protocol: str, timeout: float = 10.0) -> Any:
        self._check_alive()
        self._check_admitted(peer_id)
        with trio.move_on_after(timeout):
            if not self.is_connected(peer_id):
                await self._dial_known(peer_id)
            conn = self.conns[peer_id]
            await trio.sleep(2 * conn.latency)  # protocol negotiation: a round trip
            other = self.net.hosts[peer_id]
            if not other.alive or not self.net.can_talk(conn):
                await trio.sleep_forever()  # silence until the timeout
            if protocol not in other.handlers:
                raise NetworkError(f"{peer_id} does not speak {protocol}", "")
            return self.net.open(conn, self._peer_id, protocol)
        raise NetworkError(f"Opening {protocol} to {peer_id} timed out.", "")

    async def _dial_known(self, peer_id: str) -> None:
        reasons = []
        for addr in self.peerstore.get(peer_id, []):
            full = addr if "/p2p-circuit" in addr else f"{addr}/p2p/{peer_id}"
            if "/p2p-circuit" in addr and not addr.endswith(peer_id):
                full = f"{addr}/p2p/{peer_id}"
            try:
                await self.connect(full)
                return
            except NetworkError as e:
                reasons.append(e.what)
        raise NetworkError(f"Could not reach {peer_id} ({'; '.join(reasons) or 'no address'})",
                           "")

    def accept(self, protocol: str, stream: Any, peer: str) -> None:
        """An inbound stream: its handler runs in this village's nursery, and nothing it
        raises escapes into the village (as GroveHost's wrapper guarantees)."""
        handler = self.handlers.get(protocol)
        if handler is None or self.nursery is None or not self.alive:
            return
        refused = self.guard.admit_stream(peer, protocol) if self.guard is not None else ""
        if refused:  # reset unread; a refused peer's connection goes too
            self.net.count(f"streams refused: {refused}")
            stream.reset_now()
            if refused == "refused":
                self.nursery.start_soon(self.disconnect, peer)
            return
        self.nursery.start_soon(self._serve, handler, stream, peer, protocol)

    async def _serve(self, handler: Handler, stream: Any, peer: str, protocol: str) -> None:
        try:
            await self._handle(handler, stream, peer, protocol)
        finally:
            if self.guard is not None:
                self.guard.stream_done(peer, protocol)

    async def _handle(self, handler: Handler, stream: Any, peer: str, protocol: str) -> None:
        try:
            await handler(stream, peer)
        except PeerMisbehaviour as e:
            log.debug("dropping a %s stream from %s: %s", protocol, peer, e.reason)
            self.net.count("streams dropped for misbehaviour")
            if self.guard is not None:
                self.guard.penalise(peer, f"{protocol}: {e.reason}")
            await stream.reset()
        except (StreamClosed, EOFError, StreamReset, NetworkError):
            await stream.reset()
        except Exception:  # a bug in a service: loud, counted, and the village goes on
            log.exception("handler for %s failed on a stream from %s", protocol, peer)
            self.net.count("handler bugs")
            await stream.reset()
        else:
            await stream.close()

    async def ping(self, peer_id: str, timeout: float = 5.0) -> float:
        if not self.is_connected(peer_id):
            raise NetworkError(f"not connected to {peer_id}", "")
        rtt = 2 * self.conns[peer_id].latency
        await trio.sleep(rtt)
        return rtt

    def refuses(self, peer_id: str) -> bool:
        return self.guard is not None and self.guard.is_refused(peer_id)

    def _check_admitted(self, peer_id: str) -> None:
        if self.refuses(peer_id):
            raise NetworkError(f"{peer_id} is refused here (it misbehaved)", "")

    def _check_alive(self) -> None:
        if not self.alive:
            raise NetworkError("this village has crashed", "")
