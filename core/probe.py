"""`/grove/probe/1.0.0`: a connectivity check that moves real bytes.

The asker sends one frame of random bytes (at most MAX_PROBE); the answerer replies with one
frame holding their SHA-256. Used to prove a path works (direct or through a relay) and to time
it; answered by every village.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from core.errors import PeerMisbehaviour
from core.net.framing import read_frame, write_frame
from core.net.host import GroveHost, close_stream
from core.ratelimit import PeerRates

PROTOCOL = "/grove/probe/1.0.0"
MAX_PROBE = 1 << 20
TIMEOUT = 15.0


@dataclass(frozen=True)
class ProbeResult:
    peer_id: str
    bytes: int
    seconds: float
    via: str  # the connection kind it used: "direct", "relayed", "direct+relayed"


PROBE_BYTES_PER_SECOND = 64 * 1024  # one peer's probes: 1 MiB every 16 s after a burst
PROBE_BURST = 4 * MAX_PROBE


class ProbeServer:
    """Answers probes, at most PROBE_BYTES_PER_SECOND of them per peer (a small frame costs
    the answerer a hash of all of it): each past that is refused unanswered, an offence."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._rates = PeerRates(PROBE_BYTES_PER_SECOND, PROBE_BURST, 1000)

    async def __call__(self, stream: Any, peer: str) -> None:
        data = await read_frame(stream, max_size=MAX_PROBE, timeout=TIMEOUT, peer=peer)
        if not self._rates.take(peer, self._now(), max(1, len(data))):
            raise PeerMisbehaviour(peer, f"more than {PROBE_BYTES_PER_SECOND // 1024} KiB of "
                                         "probes a second")
        await write_frame(stream, hashlib.sha256(data).digest())


async def probe(host: GroveHost, peer_id: str, size: int) -> ProbeResult:
    if not 0 < size <= MAX_PROBE:
        raise ValueError(f"probe size must be 1..{MAX_PROBE} bytes, not {size}")
    payload = os.urandom(size)
    start = trio.current_time()
    stream = await host.open_stream(peer_id, PROTOCOL, TIMEOUT)
    try:
        await write_frame(stream, payload)
        digest = await read_frame(stream, max_size=64, timeout=TIMEOUT, peer=peer_id)
    finally:
        await close_stream(stream)
    if digest != hashlib.sha256(payload).digest():
        raise PeerMisbehaviour(peer_id, "probe answered with the wrong digest")
    return ProbeResult(peer_id, size, trio.current_time() - start,
                       host.connection_kind(peer_id) or "direct")
