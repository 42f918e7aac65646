"""The consequences of misbehaviour, at the transport: `PeerGuard.penalise` is the context's
`penalise`; once a peer's score crosses the threshold (`core.peer_scores`) the village
disconnects it and refuses it (its streams are reset unread, dials to it fail at once) for a
period that doubles with each refusal.

Rules: the decisions are `PeerBook`'s; this module only applies them. Both transports (the
py-libp2p host and the simulated one) ask `is_refused` before serving a stream or dialling,
and report what their stream handlers caught through `penalise`, so misbehaviour a handler
detects counts as much as misbehaviour a client detects. Trio only (the node thread).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from core.peer_scores import PeerBook
from core.ports import Clock

log = logging.getLogger(__name__)

# Inbound streams one peer may hold open at once, per protocol: honest villages reuse DHT
# streams and send a few averaging parts or SWARM micro-batches at a time; more is a
# slow-read flood holding our handlers (each past the cap is an offence).
MAX_STREAMS_PER_PROTOCOL = 32


class PeerGuard:
    """One per village. `transport` is attached once the host exists (`attach`)."""

    def __init__(self, clock: Clock, book: PeerBook | None = None) -> None:
        self.clock = clock
        self.book = book or PeerBook()
        self.transport: Any = None
        self._send, self._recv = trio.open_memory_channel[str](256)
        self.first_offence: dict[str, float] = {}  # peer -> when (for the measurements)
        self.refused_at: dict[str, float] = {}     # peer -> when it was first refused
        self.inflight: dict[tuple[str, str], int] = {}  # (peer, protocol) -> open streams

    def attach(self, transport: Any) -> None:
        self.transport = transport
        transport.guard = self

    @property
    def counts(self) -> dict[str, int]:
        """Offences per peer (what the trust layer reads)."""
        return self.book.counts()

    def is_refused(self, peer: str) -> bool:
        return self.book.is_refused(peer, self.clock.mono())

    def admit_stream(self, peer: str, protocol: str) -> str:
        """Before serving an inbound stream: "" to serve it (call `stream_done` after), or
        why it is refused (reset it unread)."""
        if self.is_refused(peer):
            return "refused"
        key = (peer, protocol)
        open_now = self.inflight.get(key, 0)
        if open_now >= MAX_STREAMS_PER_PROTOCOL:
            self.penalise(peer, f"{protocol}: more than {MAX_STREAMS_PER_PROTOCOL} streams "
                                "open at once")
            return "too many streams"
        self.inflight[key] = open_now + 1
        return ""

    def stream_done(self, peer: str, protocol: str) -> None:
        key = (peer, protocol)
        left = self.inflight.get(key, 0) - 1
        if left > 0:
            self.inflight[key] = left
        else:
            self.inflight.pop(key, None)

    def penalise(self, peer: str, reason: str) -> None:
        now = self.clock.mono()
        for seen in (self.first_offence, self.refused_at):  # bounded like the book
            while len(seen) >= self.book.max_peers:
                del seen[next(iter(seen))]
        self.first_offence.setdefault(peer, now)
        until = self.book.penalise(peer, reason, now)
        if until is None:
            log.warning("peer %s misbehaved: %s", peer, reason)
            return
        self.refused_at.setdefault(peer, now)
        log.warning("peer %s refused for %.0f s: %s", peer, until - now, reason)
        try:
            self._send.send_nowait(peer)
        except trio.WouldBlock:  # a burst of refusals: the handler check still refuses it
            log.debug("disconnect of %s left to its next stream", peer)

    async def run(self) -> None:
        """Disconnects each peer as it is refused."""
        async for peer in self._recv:
            if self.transport is None:
                continue
            try:
                await self.transport.disconnect(peer)
            except Exception as e:  # already gone
                log.debug("disconnecting refused peer %s: %r", peer, e)
