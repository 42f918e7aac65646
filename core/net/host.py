"""`GroveHost`: a py-libp2p host (TCP + Noise + Yamux, identify, ping) behind plain types.

Peer ids and addresses cross this boundary as strings. Trio only: call from the node thread.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.rcmgr.manager import ResourceManager
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.noise.transport import Transport as NoiseTransport

from core.errors import NetworkError, PeerMisbehaviour
from core.net import limits
from core.net.bandwidth import Bandwidth
from core.net.framing import StreamClosed
from core.net.keys import key_pair_from_seed
from core.net.yamux import install_grove_yamux

limits.install()  # multistream-select reads capped (see core/net/limits.py)

log = logging.getLogger(__name__)
# Streams opened and served, and dials made, per protocol, by every host of this process:
# what the benchmarks report to explain where a fleet's CPU goes.
STREAM_COUNTS: collections.Counter[str] = collections.Counter()
ADDRS_TTL = 2.0

Handler = Callable[[Any, str], Awaitable[None]]
CONNECT_TIMEOUT = 10.0
PING_SIZE = 32
CLOSE_TIMEOUT = 3.0


@dataclass(frozen=True)
class PeerAddress:
    peer_id: str
    multiaddr: str  # without the /p2p/ part


@dataclass(frozen=True)
class PeerLink:
    peer_id: str
    multiaddr: str      # of its first connection, without the /p2p/ part
    kind: str           # "direct", "relayed" or "direct+relayed"
    rtt: float | None   # s, Yamux's own measurement on the connection; None until measured


def parse_peer_address(text: str) -> PeerAddress:
    """Parse `/ip4/…/tcp/…/p2p/<id>`; raise ValueError with a plain reason."""
    try:
        ma = multiaddr.Multiaddr(text.strip())
    except Exception as e:
        raise ValueError(f"'{text}' is not a multiaddr ({e})") from None
    try:
        info = info_from_p2p_addr(ma)
    except Exception:
        raise ValueError(f"'{text}' does not end in /p2p/<peer id>") from None
    if not info.addrs:
        raise ValueError(f"'{text}' names a peer but no address to reach it")
    return PeerAddress(info.peer_id.to_base58(), str(info.addrs[0]))


def check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise NetworkError(
                    f"Port {port} is already in use on {host}.",
                    "Stop the program using it, or choose another port "
                    "(settings: listen_port, 0 picks any free port).") from None
            raise NetworkError(f"Cannot listen on {host}:{port} ({os.strerror(e.errno or 0)}).",
                               "Check the listen_host and listen_port settings.") from None


class GroveHost:
    """A running libp2p host. Created by `open_host`; trio-only."""

    def __init__(self, host: Any) -> None:
        self._host = host
        self.nat: Any = None  # a core.net.nat.NatClient once the node opened one
        self._addrs: tuple[float, list[str]] = (-1e9, [])
        self._links: dict[Any, tuple[tuple[Any, ...], tuple[str, str, str]]] = {}
        self.guard: Any = None  # the village's core.peer_guard.PeerGuard, once attached

    def overrun(self, peer_id: str, by: int) -> None:
        """A connection's peer sent past a Yamux receive window (the connection closes)."""
        STREAM_COUNTS["yamux window overruns"] += 1
        if self.guard is not None:
            self.guard.penalise(peer_id, f"exceeds a Yamux receive window by {by} bytes")

    def _check_admitted(self, peer_id: str) -> None:
        if self.guard is not None and self.guard.is_refused(peer_id):
            STREAM_COUNTS["refused"] += 1
            raise NetworkError(f"{peer_id} is refused here (it misbehaved).", "")

    def connection_kind(self, peer_id: str) -> str:
        """"direct", "relayed", "direct+relayed" (a hole punch kept the relay as fallback),
        or "" when not connected."""
        try:
            conns = self._host.get_network().get_connections(ID.from_base58(peer_id))
        except Exception:
            conns = []
        return _describe(tuple(conns or ()))[1]

    @property
    def peer_id(self) -> str:
        return str(self._host.get_id().to_base58())

    def listen_addrs(self) -> list[str]:
        """Dialable addresses, each ending in /p2p/<our id> (read again at most every 2 s:
        every snapshot asks, and py-libp2p rebuilds them on each call)."""
        at, addrs = self._addrs
        now = time.monotonic()
        if now - at > ADDRS_TTL or not addrs:
            addrs = [str(a) for a in self._host.get_addrs()]
            self._addrs = (now, addrs)
        return list(addrs)

    def peer_links(self) -> list[PeerLink]:
        """Connected peers: id, address, kind and RTT. The strings are worked out once per
        connection (py-libp2p rebuilds multiaddr and id strings on every call, and snapshots,
        the DHT and discovery ask every second: a third of an idle node's CPU)."""
        fresh: dict[Any, tuple[tuple[Any, ...], tuple[str, str, str]]] = {}
        out = []
        for pid, conns in self._host.get_network().get_connections_map().items():
            if not conns:
                continue
            conns_t = tuple(conns)
            cached = self._links.get(pid)
            if cached is not None and len(cached[0]) == len(conns_t) and all(
                    a is b for a, b in zip(cached[0], conns_t, strict=True)):
                info = cached[1]
            else:
                info = (pid.to_base58(), *_describe(conns_t))
            fresh[pid] = (conns_t, info)
            rtts = [r for r in (_rtt(c) for c in conns_t) if r]
            out.append(PeerLink(*info, rtt=min(rtts) if rtts else None))
        self._links = fresh
        return out

    def connected_peers(self) -> list[PeerAddress]:
        return [PeerAddress(p.peer_id, p.multiaddr) for p in self.peer_links()]

    def known_addrs(self, peer_id: str) -> list[str]:
        """Addresses the peer announced (identify) or we dialled; /p2p/ omitted."""
        try:
            return [str(a) for a in self._host.get_peerstore().addrs(ID.from_base58(peer_id))]
        except Exception:
            return []

    def remember(self, peer_id: str, addrs: tuple[str, ...] | list[str],
                 ttl: int = 600) -> None:
        """Put addresses for a peer in the peerstore so a stream to it can dial, first in
        its list: py-libp2p 0.8.1 dials one address per transport (the first TCP one), so the
        latest word on where a village is (its fresh record) must come before what an older
        one said. Addresses that come first anew also lift py-libp2p's 60 s refusal to dial a
        peer whose addresses all failed (its negative cache): a village that restarted on a
        new port is dialled now, not a minute later."""
        good: list[multiaddr.Multiaddr] = []
        for a in addrs:
            try:
                m = multiaddr.Multiaddr(a.split("/p2p/")[0])
            except Exception:
                continue
            if m not in good:
                good.append(m)
        if not good:
            return
        pid = ID.from_base58(peer_id)
        store = self._host.get_peerstore()
        try:
            known = list(store.addrs(pid))
        except Exception:  # py-libp2p raises for a peer it holds no addresses of
            known = []
        if known[:len(good)] == good:
            store.add_addrs(pid, good, ttl)  # nothing new: the ttl is renewed
            return
        store.clear_addrs(pid)  # the ttl is the peer's, not an address's: none is lost
        store.add_addrs(pid, good + [k for k in known if k not in good], ttl)
        unblock = getattr(self._host.get_network(), "unblock_peer", None)
        if unblock is not None:
            unblock(pid)

    def is_connected(self, peer_id: str) -> bool:
        """A dict lookup: every stream opening asks (encoding each connected peer's id to
        compare, as this did, cost a base58 encoding per connection per request)."""
        try:
            return ID.from_base58(peer_id) in self._host.get_network().connections
        except ValueError:  # not a peer id at all
            return False

    async def connect(self, address: str, timeout: float = CONNECT_TIMEOUT) -> str:
        """Dial `/…/p2p/<id>`; returns the peer id. Raises NetworkError with a plain reason."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(address))
        except Exception as e:
            raise NetworkError(f"The address '{address}' cannot be used ({e}).",
                               "Give a multiaddr ending in /p2p/<peer id>.") from None
        if info.peer_id == self._host.get_id():
            return self.peer_id
        self._check_admitted(info.peer_id.to_base58())
        if "/p2p-circuit" in address:
            if self.nat is None:
                raise NetworkError(f"Cannot dial {address}: relayed connections are off.",
                                   "Restart the node (its NAT traversal did not start).")
            if self.is_connected(info.peer_id.to_base58()):
                return str(info.peer_id.to_base58())
            return str(await self.nat.dial_circuit(address, timeout))
        # py-libp2p refuses, for 60 s, any dial of a peer whose addresses all failed once
        # (its "negative cache"), before it even looks for an open connection. A dial made
        # here is deliberate, and its caller keeps its own backoff: a bootstrap peer that
        # was busy once must not stay out of reach for a minute (a home behind NAT lost the
        # DHT that way: every retry of its only bootstrap peer was refused unattempted).
        unblock = getattr(self._host.get_network(), "unblock_peer", None)
        if unblock is not None:
            unblock(info.peer_id)
        with trio.move_on_after(timeout):
            try:
                await self._host.connect(info)
            except Exception as e:
                raise NetworkError(f"Could not reach {address} ({type(e).__name__}: {e}).",
                                   "Check that the peer is running and reachable.") from None
            return str(info.peer_id.to_base58())
        raise NetworkError(f"{address} did not answer within {timeout:g} s.",
                           "Check that the peer is running and reachable.")

    async def disconnect(self, peer_id: str) -> None:
        await self._host.disconnect(ID.from_base58(peer_id))

    def set_handler(self, protocol: str, handler: Handler) -> None:
        """Serve `protocol`; `handler(stream, peer_id)` runs per inbound stream. A handler that
        raises PeerMisbehaviour gets the stream reset and the peer logged; other errors too,
        but logged as bugs. Nothing a peer sends can escape into the node."""

        async def _wrapped(stream: Any) -> None:
            STREAM_COUNTS[f"in {protocol}"] += 1
            peer = stream.muxed_conn.peer_id.to_base58()
            guard = self.guard
            refused = guard.admit_stream(peer, protocol) if guard is not None else ""
            if refused:  # unread; a refused peer's connection goes too
                STREAM_COUNTS[f"{refused} {protocol}"] += 1
                await _reset(stream)
                if refused == "refused":
                    with trio.move_on_after(CLOSE_TIMEOUT):
                        await self.disconnect(peer)
                return
            try:
                await handler(stream, peer)
            except PeerMisbehaviour as e:
                log.warning("dropping a %s stream from %s: %s", protocol, peer, e.reason)
                if guard is not None:
                    guard.penalise(peer, f"{protocol}: {e.reason}")
                await _reset(stream)
            except (StreamClosed, EOFError, StreamError) as e:  # the peer left or reset
                log.debug("%s stream from %s ended early: %r", protocol, peer, e)
                await _reset(stream)
            except Exception:
                log.exception("handler for %s failed on a stream from %s", protocol, peer)
                await _reset(stream)
            else:
                await close_stream(stream)
            finally:
                if guard is not None:
                    guard.stream_done(peer, protocol)

        self._host.set_stream_handler(TProtocol(protocol), _wrapped)

    async def open_stream(self, peer_id: str, protocol: str, timeout: float = 10.0) -> Any:
        STREAM_COUNTS[f"out {protocol}"] += 1
        self._check_admitted(peer_id)
        if not self.is_connected(peer_id):
            STREAM_COUNTS["dial"] += 1
        with trio.move_on_after(timeout):
            try:
                return await self._host.new_stream(ID.from_base58(peer_id), [TProtocol(protocol)])
            except Exception as e:
                STREAM_COUNTS[f"failed {protocol}"] += 1
                raise NetworkError(f"Could not open {protocol} to {peer_id} "
                                   f"({type(e).__name__}: {e}).",
                                   "The village may have gone offline or lost its relay.") from None
        STREAM_COUNTS[f"timed out {protocol}"] += 1
        raise NetworkError(f"Opening {protocol} to {peer_id} timed out.", "")

    async def ping(self, peer_id: str, timeout: float = 5.0) -> float:
        """Round-trip time in seconds over libp2p's ping protocol."""
        payload = os.urandom(PING_SIZE)
        stream = await self.open_stream(peer_id, str(PING_PROTOCOL), timeout)
        try:
            with trio.fail_after(timeout):
                start = trio.current_time()
                await stream.write(payload)
                got = b""
                while len(got) < PING_SIZE:
                    part = await stream.read(PING_SIZE - len(got))
                    if not part:
                        break
                    got += part
                rtt = trio.current_time() - start
        finally:
            await close_stream(stream)
        if got != payload:
            raise PeerMisbehaviour(peer_id, "ping answered with the wrong bytes")
        return rtt


def _describe(conns: tuple[Any, ...]) -> tuple[str, str]:
    """(first address, kind) of one peer's connections."""
    first, kinds = "", set()
    for c in conns:
        try:
            addrs = [str(a) for a in c.get_transport_addresses()]
        except Exception:
            addrs = []
        first = first or (addrs[0] if addrs else "")
        kinds.add("relayed" if any("/p2p-circuit" in a for a in addrs) else "direct")
    return first, "+".join(sorted(kinds))


def _rtt(conn: Any) -> float:
    try:
        return float(conn.muxed_conn.rtt())
    except Exception:
        return 0.0


async def close_stream(stream: Any) -> None:
    """Close a stream, bounded to 1 s, ignoring a peer that already went away."""
    with trio.move_on_after(1):
        try:
            await stream.close()
        except Exception:
            pass


async def _reset(stream: Any) -> None:
    with trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception:
            pass


def _resource_manager() -> ResourceManager:
    """py-libp2p 0.8.1's default resource manager, without its "production features": a
    circuit breaker that, after five failed acquisitions, would refuse every connection for
    60 s, graceful degradation, process-memory limits, and metrics and connection tracking
    on every acquisition (work for each connection and stream). Connection counts are
    bounded by the ConnectionConfig below and per-peer connection rates by its limiter,
    which stays; our protocols cap their own requests. (Read from the code, not seen to
    trip in our benchmarks.)"""
    return ResourceManager(
        enable_metrics=False, enable_connection_tracking=False, enable_memory_limits=False,
        enable_memory_pooling=False, enable_circuit_breaker=False,
        enable_graceful_degradation=False, enable_rate_limiting=True)


@asynccontextmanager
async def open_host(seed: bytes, listen_host: str, listen_port: int,
                    max_connections: int = 64, bandwidth: Bandwidth | None = None
                    ) -> AsyncIterator[GroveHost]:
    """Start a host listening on TCP `listen_host:listen_port`, stop it on exit. Every
    connection's bytes are counted and capped by `bandwidth` when one is given.

    py-libp2p's own auto-connector (which redials every peer in the peerstore to keep 50
    connections) is turned off: whom to dial is decided by our discovery."""
    check_port_free(listen_host, listen_port)
    key_pair = key_pair_from_seed(seed)
    noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
    host = new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL: noise},
                    muxer_preference="YAMUX", resource_manager=_resource_manager(),
                    connection_config=ConnectionConfig(
                        max_connections=max_connections, high_watermark=max_connections,
                        min_connections=0, low_watermark=0, max_connections_per_peer=2,
                        # 0.8.1's default prefers the connection with the MOST streams, so
                        # one whose streams hang would draw every new stream
                        load_balancing_strategy="least_loaded"))
    # One dial attempt per address: py-libp2p retries 3 times with backoff by default, which
    # makes every lookup that meets a departed peer wait seconds. Our services retry themselves.
    host.get_network().retry_config = RetryConfig(max_retries=0)  # type: ignore[attr-defined]
    muxer = install_grove_yamux(host)  # core/net/yamux.py: bulk transfers stalled without it
    muxer.bandwidth = bandwidth
    listen = multiaddr.Multiaddr(f"/ip4/{listen_host}/tcp/{listen_port}")
    async with host.run([listen]):
        try:
            if not host.get_addrs():
                raise NetworkError(f"Could not listen on {listen_host}:{listen_port}.",
                                   "Choose another port (settings: listen_port).")
            grove = GroveHost(host)
            muxer.on_overrun = grove.overrun
            yield grove
        finally:
            # host.run()'s exit leaves established connections open (their sockets leak and
            # peers never see us leave): close them explicitly, bounded, even when cancelled.
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                await host.close()
