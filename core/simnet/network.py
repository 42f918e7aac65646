"""A simulated network: many villages in one trio loop, the second implementation of the
transport port (`core.ports.Transport`) beside the py-libp2p host.

Rules: nothing here touches a socket. Streams are in-memory and ordered per direction; each
write waits for its link's bandwidth and arrives one latency later (a lost segment costs a
retransmission: one more round trip). Every time is the trio clock, so under
`trio.testing.MockClock(autojump_threshold=0)` a simulated hour takes what its events cost,
and one seed gives one run. What a hostile or broken network does is a hook on a link:
partitions that come and heal, villages that crash without a goodbye (their peers hear
nothing, as with a cable pulled), homes behind NAT (no inbound connection except through a
relay village they hold a reservation on), truncated or duplicated frames.
"""

from __future__ import annotations

import logging
import math
import random
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.ports import Handler

log = logging.getLogger(__name__)

BUFFERED = 0.005  # s of sending a write may queue before the writer waits (a send buffer)
CONNECT_FAIL_AFTER = 1.0  # s a dial to a dead or unreachable village waits before it fails
KEEPALIVE = 15.0  # s a connection stays up while nothing gets through (a crash, a partition)
TICK = 0.001  # s: arrivals are rounded up to this grid, so the scheduler wakes once per tick
# for everything that lands in it (with each village's latency jittered, no two arrivals
# shared a time and every one cost a pass of trio's run loop of its own)


def _tick(t: float) -> float:
    """`t` rounded up to the next TICK (a time already on the grid stays)."""
    return math.ceil(t / TICK - 1e-6) * TICK


class StreamReset(Exception):
    """The stream was reset (the other side failed it, or its village crashed)."""


@dataclass
class LinkSpec:
    latency: float = 0.01       # s, one way (a path adds both ends' access lines)
    bandwidth: float = 12.5e6   # bytes/s each way (100 Mbit/s)
    loss: float = 0.0           # chance a write needs a retransmission (one more RTT)
    duplicate: float = 0.0      # chance a write arrives twice (a broken middlebox)
    truncate: float = 0.0       # chance a write arrives cut in half, then the stream resets


@dataclass
class Traffic:
    bytes: int = 0
    circuits: int = 0
    streams: int = 0


class _Half:
    """One direction of a stream: what was written, each chunk with the time it arrives."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.closed_at: float | None = None  # the writer closed (EOF arrives then)
        self.reset = False
        self.more = trio.Event()
        self.free_at = 0.0  # the link is busy sending until then

    def push(self, at: float, data: bytes) -> None:
        self.chunks.append((at, data))
        self.more.set()
        self.more = trio.Event()


class SimStream:
    """One end of a simulated stream (`read`, `write`, `close`, `reset`, like py-libp2p's)."""

    def __init__(self, net: SimNetwork, conn: SimConn, me: str, inbound: _Half,
                 outbound: _Half) -> None:
        self.net, self.conn, self.me = net, conn, me
        self._in, self._out = inbound, outbound
        self._buf = b""

    async def read(self, n: int = -1) -> bytes:
        while True:
            if self._in.reset or self.conn.broken:
                raise StreamReset("stream reset")
            if self._buf:
                part, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
                return part
            now = trio.current_time()
            if self._in.chunks:
                at, data = self._in.chunks[0]
                if at <= now:
                    self._in.chunks.popleft()
                    self._buf = data
                    continue
                await trio.sleep_until(at)
                continue
            if self._in.closed_at is not None:
                if self._in.closed_at > now:
                    await trio.sleep_until(self._in.closed_at)
                    continue
                return b""
            await self._in.more.wait()

    async def write(self, data: bytes) -> None:
        if self._out.reset or self.conn.broken or self._out.closed_at is not None:
            raise StreamReset("writing to a closed or reset stream")
        spec, rng = self.conn.spec, self.net.rng
        now = trio.current_time()
        send_done = max(now, self._out.free_at) + len(data) / spec.bandwidth
        self._out.free_at = send_done
        if send_done - now > BUFFERED:  # a send buffer's worth is taken at once
            await trio.sleep_until(send_done - BUFFERED)
        if not self.net.can_talk(self.conn):  # a partition: the bytes go nowhere
            return
        at = send_done + self.conn.latency
        if spec.loss and rng.random() < spec.loss:
            at += 2 * self.conn.latency
        at = _tick(at)
        self.conn.account(len(data))
        if spec.truncate and rng.random() < spec.truncate:
            self.net.count("writes truncated")
            self._out.push(at, bytes(data[: len(data) // 2]))
            self._out.reset = True
            return
        self._out.push(at, bytes(data))
        if spec.duplicate and rng.random() < spec.duplicate:
            self.net.count("writes duplicated")
            self._out.push(at, bytes(data))

    async def close(self) -> None:
        if self._out.closed_at is None:
            self._out.closed_at = _tick(trio.current_time() + self.conn.latency)
            self._out.more.set()

    async def reset(self) -> None:
        self.reset_now()

    def reset_now(self) -> None:
        """`reset` without a checkpoint (for code that may not wait)."""
        self._out.reset = self._in.reset = True
        self._out.more.set()
        self._in.more.set()


@dataclass
class SimConn:
    """A connection between two villages: direct, or relayed through `relay`."""

    a: str
    b: str
    spec: LinkSpec
    relay: str = ""
    broken: bool = False
    # its streams' halves, to wake their readers when it breaks: weak, so a finished stream
    # is freed (a list kept every stream a connection ever carried)
    streams: weakref.WeakSet[_Half] = field(default_factory=weakref.WeakSet)
    net: Any = None

    @property
    def kind(self) -> str:
        return "relayed" if self.relay else "direct"

    @property
    def latency(self) -> float:
        return self.spec.latency * (2 if self.relay else 1)

    def account(self, n: int) -> None:
        if self.relay:
            self.net.relay_traffic[self.relay].bytes += n

    def other(self, me: str) -> str:
        return self.b if me == self.a else self.a

    def break_(self) -> None:
        self.broken = True
        for h in list(self.streams):
            h.more.set()


class SimNetwork:
    """The world the simulated villages live in. `seed` fixes every random choice."""

    def __init__(self, seed: int = 0, link: LinkSpec | None = None) -> None:
        self.rng = random.Random(seed)
        self.default_link = link or LinkSpec()
        self.hosts: dict[str, Any] = {}       # peer id -> SimHost (alive or crashed)
        self.access: dict[str, LinkSpec] = {}  # each village's own line to the network
        self.side: dict[str, int] = {}        # partition side per village (absent: 0)
        self.split_at = 0.0                   # when the partition began
        self.relay_traffic: dict[str, Traffic] = {}
        self.counts: dict[str, int] = {}      # what happened, for the tests to read

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def link(self, a: str, b: str) -> LinkSpec:
        """The path between two villages: both access lines' latency, the slower bandwidth,
        either line's faults."""
        la, lb = self.access.get(a, self.default_link), self.access.get(b, self.default_link)
        return LinkSpec(la.latency + lb.latency, min(la.bandwidth, lb.bandwidth),
                        max(la.loss, lb.loss), max(la.duplicate, lb.duplicate),
                        max(la.truncate, lb.truncate))

    def set_access(self, peer: str, spec: LinkSpec | None) -> None:
        """`peer`'s access line is `spec` from now on (None: the default), for its open
        connections too (a home line that got busy, or quiet again)."""
        if spec is None:
            self.access.pop(peer, None)
        else:
            self.access[peer] = spec
        host = self.hosts.get(peer)
        for conn in (host.conns.values() if host is not None else ()):
            conn.spec = self.link(conn.a, conn.b)

    # -- faults --------------------------------------------------------------------------
    def partition(self, groups: list[set[str]]) -> None:
        """Split the villages: those in different groups cannot talk (streams go silent,
        dials fail); villages in no group stay in group 0."""
        self.side = {p: i for i, g in enumerate(groups) for p in g}
        self.split_at = trio.current_time()

    def heal(self) -> None:
        self.side = {}

    def reachable(self, a: str, b: str) -> bool:
        return self.side.get(a, 0) == self.side.get(b, 0)

    def up(self, conn: SimConn) -> bool:
        """Whether a connection still stands: one that carried nothing for KEEPALIVE s
        (its other end crashed, or a partition cut it) is closed on both sides then."""
        if conn.broken:
            return False
        if not self.side and not conn.relay and self.hosts[conn.a].alive and \
                self.hosts[conn.b].alive:  # the common case, asked on every request
            return True
        if self.can_talk(conn):
            return True
        if trio.current_time() - self._cut_since(conn) < KEEPALIVE:
            return True
        conn.break_()
        for end in (conn.a, conn.b):
            host = self.hosts[end]
            if host.conns.get(conn.other(end)) is conn:
                del host.conns[conn.other(end)]
        self.count("connections timed out")
        return False

    def _cut_since(self, conn: SimConn) -> float:
        ends = (conn.a, conn.b, conn.relay) if conn.relay else (conn.a, conn.b)
        crashed = [self.hosts[p].crashed_at for p in ends if not self.hosts[p].alive]
        return max([*crashed, self.split_at if self.side else -1e9])

    def can_talk(self, conn: SimConn) -> bool:
        ends = (conn.a, conn.b, conn.relay) if conn.relay else (conn.a, conn.b)
        alive = all(self.hosts[p].alive for p in ends)
        return alive and self.reachable(conn.a, conn.b) and (
            not conn.relay or (self.reachable(conn.a, conn.relay)
                               and self.reachable(conn.b, conn.relay)))

    def crash(self, peer: str) -> None:
        """The village stops at once, saying goodbye to no one: its connections go silent."""
        host = self.hosts[peer]
        host.alive = False
        host.crashed_at = trio.current_time()
        self.count("crashes")
        for conn in list(host.conns.values()):
            host.conns.pop(conn.other(peer), None)
        for other in self.hosts.values():  # circuits through it die with it
            for pid, conn in list(other.conns.items()):
                if conn.relay == peer:
                    conn.break_()
                    other.conns.pop(pid, None)

    # -- connections -----------------------------------------------------------------------
    async def dial(self, src: Any, target: str, via: str = "") -> SimConn:
        dst = self.hosts.get(target)
        spec = self.link(src.peer_id, target)
        if dst is None or not dst.alive or not self.reachable(src.peer_id, target):
            await trio.sleep(CONNECT_FAIL_AFTER)
            raise NetworkError(f"{target} did not answer", "")
        if via:
            relay = self.hosts.get(via)
            if relay is None or not relay.alive or not self.reachable(src.peer_id, via) \
                    or via not in dst.nat.reservations or not relay.relay_hop:
                await trio.sleep(CONNECT_FAIL_AFTER)
                raise NetworkError(f"no circuit to {target} through {via}", "")
            self.relay_traffic.setdefault(via, Traffic()).circuits += 1
        if dst.refuses(src.peer_id):  # its guard refuses us: the handshake is cut
            await trio.sleep(2 * spec.latency)
            self.count("dials refused")
            raise NetworkError(f"{target} refused the connection", "")
        if not via and dst.behind_nat:  # its NAT drops an unsolicited connection
            await trio.sleep(CONNECT_FAIL_AFTER)
            raise NetworkError(f"{target} is behind a NAT", "")
        conn = SimConn(src.peer_id, target, spec, relay=via, net=self)
        await trio.sleep_until(_tick(trio.current_time() + 2 * conn.latency))  # handshake
        src.conns[target] = conn
        dst.conns[src.peer_id] = conn
        self.count("connections")
        return conn

    def open(self, conn: SimConn, src: str, protocol: str) -> SimStream:
        """Both ends of a new stream; the far end is handed to its village's handler."""
        there, back = _Half(), _Half()
        conn.streams.add(there)
        conn.streams.add(back)
        ours = SimStream(self, conn, src, back, there)
        theirs = SimStream(self, conn, conn.other(src), there, back)
        self.hosts[conn.other(src)].accept(protocol, theirs, src)
        return ours

    def relays_of(self, candidates: list[str]) -> list[str]:
        return [p for p in candidates if self.hosts[p].relay_hop and self.hosts[p].alive]


def jittered(rng: random.Random, spec: LinkSpec, spread: float = 0.5) -> LinkSpec:
    """An access line like `spec` with its latency spread by up to ±`spread`."""
    return LinkSpec(spec.latency * rng.uniform(1 - spread, 1 + spread), spec.bandwidth,
                    spec.loss, spec.duplicate, spec.truncate)


__all__ = ["Handler", "LinkSpec", "PeerMisbehaviour", "SimConn", "SimNetwork", "SimStream",
           "StreamReset", "Traffic", "jittered"]
