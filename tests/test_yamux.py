"""GroveYamux's single writer over a real socket pair: a frame in flight when the connection
ends fails its writer instead of leaving it waiting, and a reset never waits behind data the
peer is not reading (py-libp2p resets a stream that failed to open under a shield)."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_RST,
    TYPE_DATA,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
)

from core.net.yamux import GroveYamux


class _Conn:
    """The secured-connection surface Yamux uses, over a plain socket stream."""

    is_initiator = True

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream

    async def read(self, n: int | None = None) -> bytes:
        try:
            return await self.stream.receive_some(n)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await self.stream.aclose()

    def get_remote_address(self) -> None:
        return None


def _pair() -> tuple[trio.SocketStream, trio.socket.SocketType]:
    a, b = trio.socket.socketpair()
    for s in (a, b):  # small buffers: a peer that does not read blocks our writer at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return trio.SocketStream(a), b


def _data(stream_id: int, size: int) -> bytes:
    return struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, stream_id, size) + bytes(size)


def _rst(stream_id: int) -> bytes:
    return struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)


def test_a_reset_does_not_wait_behind_data_the_peer_is_not_reading() -> None:
    async def main() -> None:
        ours, theirs = _pair()
        mux = GroveYamux(_Conn(ours), ID(b"\x00" * 34), is_initiator=True)
        failed = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mux.start)
            await mux.event_started.wait()

            async def send_data() -> None:
                with pytest.raises(Exception):
                    await mux._write_frame(_data(1, 200_000))
                failed.set()

            nursery.start_soon(send_data)
            await trio.sleep(0.5)  # the writer is now blocked: the peer reads nothing
            assert not failed.is_set()
            with trio.CancelScope(shield=True), trio.fail_after(2):  # as py-libp2p resets
                await mux._write_frame(_rst(1))
            theirs.close()  # the peer goes: the blocked data write fails
            with trio.fail_after(10):
                await failed.wait()
            nursery.cancel_scope.cancel()
    trio.run(main)


def test_frames_in_flight_when_the_connection_stops_fail_their_writers() -> None:
    """The connection's task is cancelled (the host closes it) while its writer is blocked
    mid-write on a peer that reads nothing. Whoever queued a frame, in that write or after
    it, wakes with an error - even in a shielded scope - instead of waiting for ever."""
    async def main() -> None:
        ours, theirs = _pair()
        mux = GroveYamux(_Conn(ours), ID(b"\x00" * 34), is_initiator=True)
        outcomes: list[str] = []

        async def send_data(i: int) -> None:
            with trio.CancelScope(shield=True), trio.move_on_after(8) as waited:
                try:
                    await mux._write_frame(_data(2 * i + 1, 30_000))
                    outcomes.append("written")
                except Exception as e:
                    outcomes.append(type(e).__name__)
            if waited.cancelled_caught:
                outcomes.append("still waiting after 8 s")

        async with trio.open_nursery() as senders, trio.open_nursery() as connection:
            connection.start_soon(mux.start)
            await mux.event_started.wait()
            for i in range(3):
                senders.start_soon(send_data, i)
            await trio.sleep(0.5)  # one batch is in the blocked write, more are queued
            assert mux._ordered and not outcomes
            connection.cancel_scope.cancel()
        theirs.close()
        assert outcomes == ["ClosedResourceError"] * 3, outcomes  # none reached the peer
    trio.run(main)
