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
megabytes of our own data. Data frames, FIN and GO_AWAY keep their order and wait until
written, so a stream's writer still feels backpressure (bounded by its send window). An RST
keeps its order but is not waited for: py-libp2p resets a stream that failed to open under a
shield from cancellation, and that wait had no bound when the peer stopped reading. When the
connection ends, every frame still queued or in the write it cut short fails its writer.

Two costs cut at scale (one process hosting 30+ villages was CPU-bound on Yamux frames):
- 0.8.1 sends a WINDOW_UPDATE after every read that leaves the window short of its target (its
  "partial slack" path), so a one-message DHT answer costs an extra frame each way, each Noise-
  encrypted. `GroveYamuxStream` keeps go-yamux's hysteresis: the window is released only once
  half of it (128 KiB by default) has been consumed. A sender blocked on a zero window has sent
  a whole window, so the reader crosses the half before it waits: no deadlock.
- every connection pings each way every 30 s only to tune that window; `RTT_EVERY` = 60 s.
- each frame was its own write: its own Noise message, AEAD call and syscall. The writer now
  sends everything queued on a connection as one write (up to `BATCH_BYTES`); the busier
  the process, the more frames share a write.
And one thing added: `MISSES_TO_CLOSE` pings in a row unanswered for `PONG_TIMEOUT` close the
connection (one miss closed live links in a 100-village benchmark on 2 cores). 0.8.1 keeps a
connection whose peer vanished without a FIN (a computer unplugged, a process frozen) open
for ever, and every request to that peer then waits out its whole timeout.
"""

from __future__ import annotations

import collections
import logging
import struct
from typing import Any

import trio
from libp2p.abc import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.network.stream.net_stream import NetStream
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    HEADER_SIZE,
    TYPE_GO_AWAY,
    TYPE_PING,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL

from core.net.bandwidth import Bandwidth, is_bulk, is_lan

log = logging.getLogger(__name__)

_Item = tuple[bytes, trio.Event | None]
RTT_EVERY = 60.0  # s between a connection's pings (0.8.1: 30 s)
PONG_TIMEOUT = 15.0  # s a ping may wait for its answer
MISSES_TO_CLOSE = 3  # unanswered pings in a row that close the connection
MISS_RETRY = 5.0  # s before the next ping after an unanswered one
BATCH_BYTES = 60_000  # queued frames written together, up to about one Noise message
silent_closes = 0  # connections closed so in this process (benchmarks report it)


def _is_flow_control(data: bytes) -> bool:
    if len(data) != HEADER_SIZE:
        return False
    _, typ, flags, _, _ = struct.unpack(YAMUX_HEADER_FORMAT, data)
    return typ != TYPE_GO_AWAY and not flags & (FLAG_FIN | FLAG_RST)


def _is_reset(data: bytes) -> bool:
    if len(data) != HEADER_SIZE:
        return False
    _, typ, flags, _, _ = struct.unpack(YAMUX_HEADER_FORMAT, data)
    return typ != TYPE_GO_AWAY and bool(flags & FLAG_RST)


class GroveYamuxStream(YamuxStream):
    # 0.8.1 lets a peer send past the receive window it was given (it logs, sets the window
    # to 0 and keeps buffering): the window is a property here, and going below zero is
    # reported to the connection, which closes (see core.net.limits)
    @property
    def recv_window(self) -> int:
        return int(self.__dict__.get("recv_window", 0))

    @recv_window.setter
    def recv_window(self, value: int) -> None:
        if value < 0:
            conn = self.conn
            if isinstance(conn, GroveYamux):
                conn.overrun(-value)
        self.__dict__["recv_window"] = value

    bulk = False  # set once the stream's protocol is known (core.net.bandwidth.is_bulk)

    def _pacer(self) -> tuple[Bandwidth, bool] | None:
        """(the download cap, the connection is on the LAN) when it paces this stream."""
        conn = self.conn
        if not self.bulk or not isinstance(conn, GroveYamux) or conn.bandwidth is None:
            return None
        bw = conn.bandwidth
        return (bw, conn.lan) if bw.down.rate is not None and bw.capped(conn.lan) else None

    def _apply_autotune_epoch(self, buffered: int) -> int:
        if self._pacer() is not None:  # the download cap paces it: the window stays put
            return 0
        return int(super()._apply_autotune_epoch(buffered))

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        pacer = self._pacer() if bytes_read else None
        if pacer is not None:  # the download cap: the window waits (see core.net.bandwidth)
            await pacer[0].bulk_read(pacer[1])
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            owed = self.target_recv_window - (self.recv_window + buffered)
            if max(owed, self._pending_recv_release + bytes_read) < self._grow_threshold():
                self._pending_recv_release += bytes_read  # released with a later, bigger one
                return
        await super()._auto_tune_and_send_window_update(bytes_read=bytes_read)


class _Streams(dict[int, Any]):
    """0.8.1 builds `YamuxStream` by name in two long methods; every stream passes through
    this dict, where it becomes a `GroveYamuxStream` (same fields, one method changed)."""

    def __setitem__(self, key: int, stream: Any) -> None:
        if type(stream) is YamuxStream:
            stream.__class__ = GroveYamuxStream
        super().__setitem__(key, stream)


class GroveYamux(Yamux):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams = _Streams()
        self._urgent: list[bytes] = []
        self._ordered: collections.deque[_Item] = collections.deque()
        self._wake = trio.Event()
        self._writer_running = False
        self._write_error: BaseException | None = None
        self._bulk: collections.deque[_Item] = collections.deque()  # frames of bulk streams
        self.overran = 0  # bytes a peer sent past a window it was given (then we close)
        self.on_overrun: Any = None  # (peer id, bytes) -> None: the host's guard
        self.bandwidth: Bandwidth | None = None  # the host's caps (None: not counted)
        self.lan = False

    def count_with(self, bandwidth: Bandwidth) -> None:
        """Count (and cap) this connection's bytes with `bandwidth`: reads as they come off
        the secured connection, writes in the writer. A relayed connection is not counted:
        its bytes cross our connection to the relay, counted there."""
        try:
            relayed = self.secured_conn.get_connection_type() == ConnectionType.RELAYED
        except Exception:
            relayed = False
        if relayed:
            return
        try:
            remote = self.secured_conn.get_remote_address()
        except Exception:
            remote = None
        self.bandwidth, self.lan = bandwidth, is_lan(remote[0] if remote else None)
        read = self.secured_conn.read

        async def counted_read(n: int | None = None) -> bytes:
            data = await read(n)
            bandwidth.received_now(len(data), self.lan)
            return data

        setattr(self.secured_conn, "read", counted_read)  # noqa: B010 (handle_incoming reads it)

    def overrun(self, by: int) -> None:
        """The peer sent `by` bytes past a stream's receive window: report it, and close
        the connection (its writer does, from its task)."""
        first = not self.overran
        self.overran += by
        if first:
            log.warning("yamux: %s sent %d bytes past a receive window: closing",
                        self.peer_id, by)
            if self.on_overrun is not None:
                self.on_overrun(str(self.peer_id.to_base58()), by)
        self._wake.set()

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

    async def _measure_rtt_loop(self) -> None:
        with trio.move_on_after(0.5):
            await self.event_shutting_down.wait()
        misses = 0
        while not self.event_shutting_down.is_set():
            self._ping_id += 1
            self._ping_event = trio.Event()
            try:
                await self._write_frame(struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING,
                                                    FLAG_SYN, 0, self._ping_id))
            except Exception:  # the connection is closing
                return
            self._ping_sent_time = trio.current_time()
            with trio.move_on_after(PONG_TIMEOUT) as waited:
                await self._ping_event.wait()
            misses = misses + 1 if waited.cancelled_caught else 0
            if 0 < misses < MISSES_TO_CLOSE:  # a busy peer (or process) may answer late
                with trio.move_on_after(MISS_RETRY):
                    await self.event_shutting_down.wait()
                continue
            if misses and not self.event_shutting_down.is_set():
                global silent_closes
                silent_closes += 1
                log.info("closing the connection to %s: no answer to a ping in %g s",
                         self.peer_id, PONG_TIMEOUT)
                # not a polite GO_AWAY: it would queue behind whatever the silent peer
                # left unread. Closing the socket ends the reader, which cleans up.
                with trio.move_on_after(2):
                    await self.secured_conn.close()
                return
            with trio.move_on_after(RTT_EVERY):
                await self.event_shutting_down.wait()

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self.secured_conn.write(data)

    async def _writer(self) -> None:
        dones: list[trio.Event] = []
        try:
            while True:
                if self.overran:  # a peer past its window: it is cut off, not served
                    with trio.move_on_after(2):
                        await self.secured_conn.close()
                    return
                if not (self._urgent or self._ordered or self._bulk):
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                control = bool(self._urgent or self._ordered)
                bw = self.bandwidth
                if bw is not None and (wait := bw.up_wait(self.lan, control)) > 0:
                    self._wake = trio.Event()  # a control frame may go before the wait ends
                    with trio.move_on_after(wait):
                        await self._wake.wait()
                    continue
                # Everything queued goes out as one write (one Noise message up to 64 KiB,
                # one syscall): flow control first, then control streams' frames, then (in
                # a write of their own) bulk streams' frames; each stream's in its order.
                parts, self._urgent = self._urgent, []
                size = sum(len(p) for p in parts)
                queue = self._ordered if control else self._bulk
                while queue and size < BATCH_BYTES:
                    data, done = queue.popleft()
                    parts.append(data)
                    size += len(data)
                    if done is not None:
                        dones.append(done)
                if bw is not None:
                    bw.sent_now(size, self.lan, not control)
                await self._send(parts[0] if len(parts) == 1 else b"".join(parts))
                for done in dones:
                    done.set()
                dones = []
        finally:  # nobody may wait forever on a frame that will not be written: not on one
            # still queued, nor on one in a write the connection's end cancelled
            self._writer_running = False
            if (self._ordered or self._bulk or dones) and self._write_error is None:
                self._write_error = trio.ClosedResourceError("the connection is closing")
            dones.extend(done for q in (self._ordered, self._bulk) for _, done in q
                         if done is not None)
            self._ordered.clear()
            self._bulk.clear()
            for done in dones:
                done.set()

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
        queue = self._bulk if self._of_bulk_stream(data) else self._ordered
        if _is_reset(data):  # in order, but nobody waits: py-libp2p resets a stream that
            # failed to open under a shield, which must not wait behind a peer not reading
            queue.append((bytes(data), None))
            self._wake.set()
            await trio.lowlevel.checkpoint()
            return
        done = trio.Event()
        queue.append((bytes(data), done))
        self._wake.set()
        await done.wait()
        if self._write_error is not None:
            raise self._write_error

    def _of_bulk_stream(self, data: bytes) -> bool:
        if len(data) < HEADER_SIZE:
            return False
        stream_id = struct.unpack_from(">I", data, 4)[0]
        stream = self.streams.get(stream_id) if stream_id else None
        return bool(getattr(stream, "bulk", False))


def _tag_protocol(stream: NetStream, protocol_id: Any) -> None:
    """NetStream.set_protocol, which also marks the muxed stream bulk or control."""
    stream.protocol_id = protocol_id
    muxed = getattr(stream, "muxed_stream", None)
    if isinstance(muxed, GroveYamuxStream):
        muxed.bulk = is_bulk(protocol_id)


class GroveMuxerMultistream(MuxerMultistream):
    """py-libp2p 0.8.1 builds a plain `Yamux` for /yamux/1.0.0 whatever class the muxer
    options name; this negotiates the same way and builds `GroveYamux`. `on_overrun`
    (peer id, bytes) is given to every connection it builds."""

    on_overrun: Any = None
    bandwidth: Bandwidth | None = None

    async def new_conn(self, conn: Any, peer_id: Any) -> Any:
        protocol, transport_class = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout)
        if protocol == YAMUX_PROTOCOL:
            async def on_close() -> None:
                pass

            muxed: Any = GroveYamux(conn, peer_id, is_initiator=conn.is_initiator,
                                    on_close=on_close)
            muxed.on_overrun = self.on_overrun
            if self.bandwidth is not None:
                muxed.count_with(self.bandwidth)
        else:
            muxed = transport_class(conn, peer_id)
        return self._annotate_connection(muxed, conn, protocol)


def install_grove_yamux(host: Any) -> GroveMuxerMultistream:
    """Make every new connection of `host` use GroveYamux; the muxer, to set `on_overrun`
    and `bandwidth`. Streams learn their protocol's class (bulk or control) when py-libp2p
    names it (NetStream.set_protocol, for streams we open and streams we accept)."""
    setattr(NetStream, "set_protocol", _tag_protocol)  # noqa: B010 (mypy: a method)
    upgrader = host.get_network().upgrader
    old = upgrader.muxer_multistream
    upgrader.muxer_multistream = GroveMuxerMultistream(
        {TProtocol(YAMUX_PROTOCOL): GroveYamux}, old.negotiate_timeout)
    return upgrader.muxer_multistream
