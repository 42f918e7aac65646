"""Length-prefixed frames over a libp2p stream, with size caps and timeouts.

Frame = 4-byte big-endian length + payload. Writes go out in ~32 KiB pieces (py-libp2p's
Yamux is an order of magnitude faster with them). Reads refuse a length above the caller's cap
before reading the payload, so a hostile peer cannot make us buffer more than we allow.
"""

from __future__ import annotations

import struct
from typing import Any

import trio

from core.errors import PeerMisbehaviour
from core.net.bandwidth import pacing_allowance

CHUNK = 32 * 1024
_HEADER = struct.Struct(">I")


class StreamClosed(Exception):
    """The peer closed the stream cleanly between frames."""


async def write_frame(stream: Any, payload: bytes) -> None:
    """Send one frame in CHUNK pieces (the caps are paid below, in core.net.yamux)."""
    data = _HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    for i in range(0, len(data), CHUNK):
        await stream.write(bytes(view[i : i + CHUNK]))


async def _read_exactly(stream: Any, n: int, peer: str) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            part = await stream.read(min(n - len(buf), 1 << 20))
        except EOFError:  # py-libp2p raises StreamEOF (an EOFError) at the end
            part = b""
        if not part:
            if not buf:
                raise StreamClosed
            raise PeerMisbehaviour(peer, f"stream ended inside a frame ({len(buf)}/{n} bytes)")
        buf += part
    return bytes(buf)


async def read_frame(stream: Any, *, max_size: int, timeout: float, peer: str = "?") -> bytes:
    """One frame's payload. Raises PeerMisbehaviour for an oversized frame or a peer that
    goes silent past `timeout`, StreamClosed at a clean end. The time our own download cap
    needs for the payload is added to `timeout` (it is not the peer's silence)."""
    with trio.move_on_after(timeout) as scope:
        header = await _read_exactly(stream, _HEADER.size, peer)
        (length,) = _HEADER.unpack(header)
        if length > max_size:
            raise PeerMisbehaviour(peer, f"frame of {length} bytes exceeds the cap of {max_size}")
        scope.deadline += pacing_allowance(stream, length)
        payload = await _read_exactly(stream, length, peer) if length else b""
    if not scope.cancelled_caught:
        return payload
    raise PeerMisbehaviour(peer, f"silent for {timeout:g} s")
