"""Meeting other villages before the DHT exists: bootstrap dialling, mDNS, peer exchange, pings.

Service layer: trio tasks over `GroveHost`. Bootstrap peers are dialled in parallel and
re-dialled with backoff while not connected; villages on the same LAN are met through mDNS
(core.net.mdns); peer exchange (core.net.pex) asks connected peers whom they know and dials the
ones we do not; pings keep a round-trip time per peer.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from core.backoff import backoff_delay
from core.errors import NetworkError, PeerMisbehaviour
from core.net import mdns, pex
from core.net.framing import read_frame, write_frame
from core.net.host import close_stream, parse_peer_address
from core.resources import default_bootstrap

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

PEX_FAST_PERIOD = 1.0  # while the village is young
PEX_PERIOD = 15.0
PEX_FAST_FOR = 60.0
PING_PERIOD = 15.0
PING_FANOUT = 8  # peers pinged per period (RTTs for the dashboard, not a health check)
PEX_UNTIL_DHT_PEERS = 8  # once the DHT knows this many peers, it does the discovering
DIAL_RETRY_AFTER = 30.0
DIAL_TIMEOUT = 5.0


class DiscoveryService:
    """`dht_size()`: how many peers the DHT's routing table holds (peer exchange stops once
    the DHT does the discovering). `rtts` is what the pings measured, per peer."""

    def __init__(self, ctx: ServiceContext, dht_size: Callable[[], int]) -> None:
        self.ctx = ctx
        self.host = ctx.transport
        self.dht_size = dht_size
        self.rtts: dict[str, float] = {}
        self._dial_failed: dict[str, float] = {}
        self.bad_bootstrap: tuple[str, ...] = ()

    async def run(self) -> None:
        self.host.set_handler(pex.PROTOCOL, self._serve_pex)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._bootstrap_loop)
            nursery.start_soon(self._pex_loop)
            nursery.start_soon(self._ping_loop)
            nursery.start_soon(self._mdns_loop)

    # -- bootstrap ---------------------------------------------------------------------------
    def bootstrap_addresses(self) -> list[str]:
        s = self.ctx.settings
        addrs = list(s.bootstrap) + (list(default_bootstrap()) if s.use_default_bootstrap
                                     else [])
        good, bad = [], []
        for a in dict.fromkeys(addrs):
            try:
                parse_peer_address(a)
                good.append(a)
            except ValueError as e:
                bad.append(str(e))
        if tuple(bad) != self.bad_bootstrap:
            for b in bad:
                log.warning("bootstrap: %s; it is skipped", b)
            self.bad_bootstrap = tuple(bad)
        return good

    async def _bootstrap_loop(self) -> None:
        failures = 0
        while True:
            missing = [a for a in self.bootstrap_addresses()
                       if not self.host.is_connected(parse_peer_address(a).peer_id)]
            ok = True
            if missing:
                results: list[bool] = []
                async with trio.open_nursery() as n:
                    for a in missing:
                        n.start_soon(self._dial_bootstrap, a, results)
                ok = all(results)
            failures = 0 if ok else failures + 1
            delay = backoff_delay(failures, self.ctx.rng, base=1.0) if failures else 10.0
            with trio.move_on_after(delay):
                await self.ctx.settings_port.wait_changed()

    async def _dial_bootstrap(self, address: str, results: list[bool]) -> None:
        try:
            await self.host.connect(address, timeout=DIAL_TIMEOUT)
            log.info("connected to bootstrap peer %s", address)
            results.append(True)
        except NetworkError as e:
            log.warning("bootstrap: %s", e)
            results.append(False)

    # -- mDNS --------------------------------------------------------------------------------
    async def _mdns_loop(self) -> None:
        s = self.ctx.settings
        if not s.mdns or os.environ.get("GROVE_MDNS") == "0":
            return
        ips = mdns.interfaces_for(s.listen_host, _local_ipv4())
        if not ips:
            log.info("mDNS: off (listening on %s only)", s.listen_host)
            return
        port = _listen_port(self.host.listen_addrs())
        try:
            async with mdns.open_mdns(self.host.peer_id, ips, port) as found:
                async for peer in found:
                    await self._dial_lan(peer)
        except OSError as e:  # no multicast on these interfaces, port 5353 refused...
            log.warning("mDNS unavailable (%s): villages on this network are found through "
                        "the bootstrap peers only", e)

    async def _dial_lan(self, peer: mdns.LanPeer) -> None:
        now = trio.current_time()
        if self.host.is_connected(peer.peer_id) or \
                now - self._dial_failed.get(peer.peer_id, -1e9) < DIAL_RETRY_AFTER:
            return
        for addr in peer.addrs:
            try:
                await self.host.connect(f"{addr}/p2p/{peer.peer_id}", timeout=DIAL_TIMEOUT)
                log.info("met %s on the local network (mDNS)", peer.peer_id)
                return
            except NetworkError:
                continue
        self._dial_failed[peer.peer_id] = now

    # -- peer exchange -----------------------------------------------------------------------
    async def _serve_pex(self, stream: Any, peer: str) -> None:
        await read_frame(stream, max_size=64, timeout=pex.TIMEOUT, peer=peer)
        host = self.host
        peers = [pex.PexPeer(p.peer_id, _dialable(host.known_addrs(p.peer_id))[: pex.MAX_ADDRS])
                 for p in host.connected_peers() if p.peer_id != peer]
        await write_frame(stream, pex.encode_response(peers))

    async def ask(self, peer: str) -> pex.PexResponse:
        stream = await self.host.open_stream(peer, pex.PROTOCOL, timeout=pex.TIMEOUT)
        try:
            await write_frame(stream, b"")
            data = await read_frame(stream, max_size=pex.MAX_FRAME, timeout=pex.TIMEOUT,
                                    peer=peer)
        finally:
            await close_stream(stream)
        return pex.decode_response(data, peer)

    async def _pex_loop(self) -> None:
        started = trio.current_time()
        while True:
            if self.dht_size() >= PEX_UNTIL_DHT_PEERS:
                await trio.sleep(PEX_PERIOD)
                continue
            connected = [p.peer_id for p in self.host.connected_peers()]
            self.ctx.rng.shuffle(connected)
            for peer in connected[:8]:
                try:
                    answer = await self.ask(peer)
                except PeerMisbehaviour as e:
                    self.ctx.penalise(e.peer, e.reason)
                    continue
                except Exception as e:  # the peer left, or does not speak pex
                    log.debug("pex with %s failed: %s", peer, e)
                    continue
                await self._dial_learned(answer)
            young = trio.current_time() - started < PEX_FAST_FOR
            await trio.sleep(PEX_FAST_PERIOD if young else PEX_PERIOD)

    async def _dial_learned(self, answer: pex.PexResponse) -> None:
        host = self.host
        now = trio.current_time()
        limit = self.ctx.settings.max_connections
        for p in answer.peers:
            if p.peer_id == host.peer_id or host.is_connected(p.peer_id):
                continue
            if len(host.connected_peers()) >= limit:
                return
            if now - self._dial_failed.get(p.peer_id, -1e9) < DIAL_RETRY_AFTER:
                continue
            for addr in _dialable(p.addrs):
                try:
                    await host.connect(f"{addr}/p2p/{p.peer_id}", timeout=DIAL_TIMEOUT)
                    log.info("met %s through peer exchange", p.peer_id)
                    break
                except NetworkError:
                    continue
            else:
                self._dial_failed[p.peer_id] = now

    # -- pings -------------------------------------------------------------------------------
    async def _ping_loop(self) -> None:
        """RTTs for the dashboard and telemetry. Yamux measures one on every connection by
        itself; we ping (a stream each) only the peers it has not measured yet."""
        while True:
            links = self.host.peer_links()
            for gone in set(self.rtts) - {link.peer_id for link in links}:
                del self.rtts[gone]  # a departed peer's RTT says nothing any more
            for link in links:
                if link.rtt:
                    self.rtts[link.peer_id] = link.rtt
            peers = [link for link in links if not link.rtt]
            self.ctx.rng.shuffle(peers)
            for p in peers[:PING_FANOUT]:
                try:
                    self.rtts[p.peer_id] = await self.host.ping(p.peer_id)
                except PeerMisbehaviour as e:
                    self.ctx.penalise(e.peer, e.reason)
                except Exception as e:
                    log.debug("ping to %s failed: %s", p.peer_id, e)
            await trio.sleep(PING_PERIOD)


def _dialable(addrs: list[str]) -> list[str]:
    """Addresses worth dialling: TCP, not the unspecified address, no /p2p/ suffix."""
    out = []
    for full in addrs:
        a = full.split("/p2p/")[0]
        if "/tcp/" in a and "/ip4/0.0.0.0/" not in a and "/ip6/::/" not in a:
            out.append(a)
    return list(dict.fromkeys(out))


def _local_ipv4() -> list[str]:
    import psutil

    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET]


def _listen_port(addrs: list[str]) -> int:
    for a in addrs:
        parts = a.split("/")
        if "tcp" in parts:
            return int(parts[parts.index("tcp") + 1])
    raise NetworkError("the host listens on no TCP port", "")
