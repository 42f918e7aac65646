"""Yamux whose reader never waits on the socket's writer, and whose flow control is not
starved by its own bulk data.

py-libp2p 0.8.1's `Yamux.handle_incoming` writes control frames (the ACK of a new stream, a ping
reply) inline, and a stream's writer fails after waiting 5 s for a window update. When both
peers send bulk data (averaging parts cross in both directions) and a new stream opens, each
side's reader can block writing an ACK into a socket whose send buffer is full - the buffer the
other side would drain if its reader were not blocked the same way. We saw a 16-village
all-reduce of 10 MB stall with 19 of 240 parts in flight until its deadline.

`GroveYamux` sends every frame through one writer task per connection. Flow-control frames
(window updates, pings, SYN/ACK: a bare header without FIN or RST) go first and are queued
without waiting, so the reader keeps reading and a window update is never stuck behind
megabytes of our own data. Data frames, FIN/RST and GO_AWAY keep their order and wait until
written, so a stream's writer still feels backpressure (bounded by its send window).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_FIN,
    FLAG_RST,
    HEADER_SIZE,
    TYPE_GO_AWAY,
    YAMUX_HEADER_FORMAT,
    Yamux,
)
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL

log = logging.getLogger(__name__)

_Item = tuple[bytes, trio.Event | None]


def _is_flow_control(data: bytes) -> bool:
    if len(data) != HEADER_SIZE:
        return False
    _, typ, flags, _, _ = struct.unpack(YAMUX_HEADER_FORMAT, data)
    return typ != TYPE_GO_AWAY and not flags & (FLAG_FIN | FLAG_RST)


class GroveYamux(Yamux):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._urgent: list[bytes] = []
        self._ordered: list[_Item] = []
        self._wake = trio.Event()
        self._writer_running = False
        self._write_error: BaseException | None = None

    async def start(self) -> None:
        async with trio.open_nursery() as nursery:
            self._writer_running = True
            nursery.start_soon(self._writer)
            try:
                await super().start()
            finally:
                self._writer_running = False
                self._wake.set()
                nursery.cancel_scope.cancel()

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self.secured_conn.write(data)

    async def _writer(self) -> None:
        try:
            while True:
                if self._urgent:
                    batch, self._urgent = b"".join(self._urgent), []
                    await self._send(batch)
                elif self._ordered:
                    data, done = self._ordered.pop(0)
                    await self._send(data)
                    if done is not None:
                        done.set()
                else:
                    self._wake = trio.Event()
                    await self._wake.wait()
        finally:  # nobody may wait forever on a frame that will not be written
            self._writer_running = False
            if self._ordered and self._write_error is None:
                self._write_error = trio.ClosedResourceError("the connection is closing")
            for _, done in self._ordered:
                if done is not None:
                    done.set()
            self._ordered.clear()

    async def _send(self, data: bytes) -> None:
        if self._write_error is not None:
            return
        try:
            await self._write(data)
        except Exception as e:  # the connection broke: every later write fails too
            self._write_error = e
            log.debug("yamux writer for %s stopped: %r", self.peer_id, e)

    async def _write_frame(self, data: bytes) -> None:
        if not self._writer_running:  # before start() or after it ended: write inline
            await super()._write_frame(data)
            return
        if self._write_error is not None:
            raise self._write_error
        if _is_flow_control(data):
            self._urgent.append(bytes(data))
            self._wake.set()
            await trio.lowlevel.checkpoint()
            return
        done = trio.Event()
        self._ordered.append((bytes(data), done))
        self._wake.set()
        await done.wait()
        if self._write_error is not None:
            raise self._write_error


class GroveMuxerMultistream(MuxerMultistream):
    """py-libp2p 0.8.1 builds a plain `Yamux` for /yamux/1.0.0 whatever class the muxer
    options name; this negotiates the same way and builds `GroveYamux`."""

    async def new_conn(self, conn: Any, peer_id: Any) -> Any:
        protocol, transport_class = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout)
        if protocol == YAMUX_PROTOCOL:
            async def on_close() -> None:
                pass

            muxed: Any = GroveYamux(conn, peer_id, is_initiator=conn.is_initiator,
                                    on_close=on_close)
        else:
            muxed = transport_class(conn, peer_id)
        return self._annotate_connection(muxed, conn, protocol)


def install_grove_yamux(host: Any) -> None:
    """Make every new connection of `host` use GroveYamux."""
    upgrader = host.get_network().upgrader
    old = upgrader.muxer_multistream
    upgrader.muxer_multistream = GroveMuxerMultistream(
        {TProtocol(YAMUX_PROTOCOL): GroveYamux}, old.negotiate_timeout)
