"""Reused DHT request streams: one idle `/grove/kad/1.0.0` stream kept per peer.

Opening a libp2p stream costs a Yamux open and a multistream-select negotiation; on loopback
that is ~5 ms of CPU per request against ~1.2 ms for a request on a stream that is already
open (measured with two nodes in one process). The Kademlia wire format allows several
requests on one stream, and our server answers them until the stream has been idle for
`SERVER_IDLE` s, so a client keeps at most one idle stream per peer and reuses it within
`REUSE_WITHIN` s (well inside the server's idle limit). A request that fails on a reused
stream (the server closed it just as we wrote) is retried once on a fresh stream; a stream that
failed or timed out is never reused.
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
        self._idle: dict[str, _Idle] = {}
        self._spare: list[Any] = []  # parked while another stream to the same peer was idle
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
        idle = self._idle.pop(peer, None)
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

    def _keep(self, peer: str, stream: Any, reader: kad.FrameReader) -> None:
        if peer in self._idle:  # a concurrent request already parked one: ours is spare
            self._spare.append(stream)
            return
        self._idle[peer] = _Idle(stream, reader, trio.current_time())

    async def sweep(self) -> None:
        """Close spare streams and idle ones too old to reuse (call about once a second)."""
        now = trio.current_time()
        stale = [p for p, i in self._idle.items() if now - i.last_used > REUSE_WITHIN]
        spare, self._spare = self._spare, []
        for p in [p for p, sem in self._slots.items() if sem.value == PER_PEER]:
            del self._slots[p]  # no request in flight (none waits either)
        for p in stale:
            spare.append(self._idle.pop(p).stream)
        for stream in spare:
            await close_stream(stream)

    async def close(self) -> None:
        spare = [i.stream for i in self._idle.values()] + self._spare
        self._idle.clear()
        self._spare = []
        for stream in spare:
            await close_stream(stream)

