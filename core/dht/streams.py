"""Reused DHT request streams: one idle `/grove/kad/1.0.0` stream kept per peer.

Opening a libp2p stream costs a Yamux open and a multistream-select negotiation; on loopback
that is ~5 ms of CPU per request against ~1.2 ms for a request on a stream that is already
open (measured with two nodes in one process). The Kademlia wire format allows several
requests on one stream, and our server answers them until the stream has been idle for
`SERVER_IDLE` s, so a client keeps its finished streams idle and reuses them within
`REUSE_WITHIN` s (well inside the server's idle limit). A request opens a stream only when
none to that peer is idle, so streams open to one peer - in use and idle together - never
exceed PER_PEER (parking a concurrent request's stream as a spare until the next sweep let a
burst of requests to one peer keep dozens open, past its cap, and be refused as a flood). A
request that fails on a reused stream (the server closed it just as we wrote) is retried once
on a fresh stream; a stream that failed or timed out is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from core.errors import PeerMisbehaviour
from core.net import kad
from core.net.host import close_stream
from core.net.kad import KadMessage

SERVER_IDLE = 10.0  # s: the server closes a stream that long without a request
REUSE_WITHIN = 5.0  # s: a client reuses an idle stream no older than this
PER_PEER = 8        # requests in flight to one peer at once (its cap on open streams: 32)


@dataclass
class _Idle:
    stream: Any
    reader: kad.FrameReader
    last_used: float


class StreamPool:
    def __init__(self, host: Any) -> None:
        self.host = host
        self._idle: dict[str, list[_Idle]] = {}  # per peer, the most recently used last
        self._slots: dict[str, trio.Semaphore] = {}

    async def request(self, peer: str, msg: KadMessage, timeout: float) -> KadMessage:
        """One request/answer with `peer`; raises what `kad.request` and `open_stream` raise.
        At most PER_PEER at once to one peer (more wait): each needs a stream of its own,
        and a loaded peer still counting closed ones would take a burst past its cap on
        open streams for an offence."""
        slot = self._slots.setdefault(peer, trio.Semaphore(PER_PEER))
        async with slot:
            return await self._request(peer, msg, timeout)

    async def _request(self, peer: str, msg: KadMessage, timeout: float) -> KadMessage:
        idle = self._take_idle(peer)
        if idle is not None:
            if trio.current_time() - idle.last_used <= REUSE_WITHIN:
                try:
                    answer = await kad.request(idle.stream, msg, peer, timeout,
                                               reader=idle.reader)
                except PeerMisbehaviour:
                    await close_stream(idle.stream)
                    raise
                except Exception:  # closed under us, reset: try a fresh stream once
                    await close_stream(idle.stream)
                else:
                    self._keep(peer, idle.stream, idle.reader)
                    return answer
            else:
                await close_stream(idle.stream)
        stream = await self.host.open_stream(peer, kad.PROTOCOL, timeout=timeout)
        reader = kad.FrameReader(stream, peer)
        try:
            answer = await kad.request(stream, msg, peer, timeout, reader=reader)
        except BaseException:
            await close_stream(stream)
            raise
        self._keep(peer, stream, reader)
        return answer

    def _take_idle(self, peer: str) -> _Idle | None:
        held = self._idle.get(peer)
        if not held:
            return None
        idle = held.pop()  # the most recently used: the likeliest still open at the server
        if not held:
            del self._idle[peer]
        return idle

    def _keep(self, peer: str, stream: Any, reader: kad.FrameReader) -> None:
        self._idle.setdefault(peer, []).append(_Idle(stream, reader, trio.current_time()))

    async def sweep(self) -> None:
        """Close idle streams too old to reuse (call about once a second)."""
        now = trio.current_time()
        stale: list[Any] = []
        for p in list(self._idle):
            fresh = [i for i in self._idle[p] if now - i.last_used <= REUSE_WITHIN]
            stale += [i.stream for i in self._idle[p] if now - i.last_used > REUSE_WITHIN]
            if fresh:
                self._idle[p] = fresh
            else:
                del self._idle[p]
        for p in [p for p, sem in self._slots.items() if sem.value == PER_PEER]:
            del self._slots[p]  # no request in flight (none waits either)
        for stream in stale:
            await close_stream(stream)

    async def close(self) -> None:
        spare = [i.stream for held in self._idle.values() for i in held]
        self._idle.clear()
        for stream in spare:
            await close_stream(stream)
