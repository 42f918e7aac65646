"""Upload/download caps on all of a village's traffic, spent where every byte passes: each
connection's Yamux writer (up) and reader (down), see core.net.yamux.

Trio, node thread. The governor sets the rates (`set_rates`). Two classes of traffic share
each cap: control (the DHT, identify, ping, peer exchange, receipts, probes, conversations,
Yamux's own flow-control frames, and every stream until its protocol is known) and bulk
(averaging tensors, training state downloads, SWARM activations, relayed circuits: streams
whose protocol starts with one of BULK_PREFIXES). Control goes first: it spends the bucket
without waiting (until it alone owes CONTROL_DEBT_S of the rate), bulk waits until the bucket
is back above zero - so a saturated upload delays the next tensor, not the next DHT answer.

Upload is paced by the writer itself. Download cannot be refused once it is on the wire, so
every byte read is counted, and a bulk stream's reader waits for the bucket before it hands
the bytes on - which holds back the window update the sender needs to send more (Yamux flow
control carries the cap to the sender; such a stream's window is kept at Yamux's default
256 KiB instead of growing). Connections with villages on the local network are not
capped unless `limit_lan` (Syncthing's "limit bandwidth in LAN"); relayed connections are not
counted here (their bytes cross the connection to the relay, counted as bulk there).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import trio

from core.ratelimit import TokenBucket

BURST_SECONDS = 0.25  # a bucket holds this many seconds of its rate
MIN_BURST = 64 * 1024  # bytes: at least one batch of frames
CONTROL_DEBT_S = 1.0  # control traffic waits only once it owes this many seconds of the rate
# A bulk stream's reader waits at most this long before it releases the sender's window:
# py-libp2p's Yamux writer gives up on a stream after 5 s without one. So a download cap holds
# while it is above about half a window (128 KiB) per GRANT_WAIT_MAX s per concurrent bulk
# stream (43 kB/s each); below that the senders are let through at that pace, not stalled.
GRANT_WAIT_MAX = 3.0
BULK_PREFIXES = ("/grove/avg/", "/grove/train/", "/grove/swarm/", "/libp2p/circuit/relay/")


def is_bulk(protocol: str | None) -> bool:
    return bool(protocol) and str(protocol).startswith(BULK_PREFIXES)


def is_lan(host: str | None) -> bool:
    """A loopback, private or link-local address (the traffic stays on this network)."""
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


class Bandwidth:
    def __init__(self) -> None:
        self.up = TokenBucket(None, MIN_BURST, 0.0)  # unlimited until the governor sets a rate
        self.down = TokenBucket(None, MIN_BURST, 0.0)
        self.limit_lan = False
        self.sent = 0      # bytes on every connection, since start (the dashboard's usage)
        self.received = 0
        self.sent_bulk = 0  # of which bulk

    def set_rates(self, upload_bps: int | None, download_bps: int | None, *,
                  limit_lan: bool = False) -> None:
        now = trio.current_time()
        self.limit_lan = limit_lan
        for bucket, rate in ((self.up, upload_bps), (self.down, download_bps)):
            bucket.burst = max(MIN_BURST, (rate or 0) * BURST_SECONDS)
            bucket.set_rate(rate, now)

    def capped(self, lan: bool) -> bool:
        return self.limit_lan or not lan

    # -- upload: the connection's writer asks how long to wait, then reports what it sent --
    def up_wait(self, lan: bool, control: bool) -> float:
        if not self.capped(lan):
            return 0.0
        return _wait(self.up, control)

    def sent_now(self, n: int, lan: bool, bulk: bool) -> None:
        self.sent += n
        if bulk:
            self.sent_bulk += n
        if self.capped(lan):
            self.up.take(n, trio.current_time())

    # -- download: the connection's reader counts, a bulk stream's reader waits ----------------
    def received_now(self, n: int, lan: bool) -> None:
        self.received += n
        if self.capped(lan):
            self.down.take(n, trio.current_time())

    async def bulk_read(self, lan: bool) -> None:
        """A bulk stream hands on what it read: wait while the download bucket is in debt
        (at most GRANT_WAIT_MAX s: the sender is waiting for the window this read releases)."""
        wait = self.down_wait(lan)  # bytes that came meanwhile are paid by the next read
        if wait > 0:
            await trio.sleep(min(wait, GRANT_WAIT_MAX))

    def down_wait(self, lan: bool) -> float:
        return _wait(self.down, False) if self.capped(lan) else 0.0


def pacing_allowance(stream: Any, nbytes: int) -> float:
    """Seconds the download cap needs to let `nbytes` through `stream` (0 for a control
    stream or an uncapped connection): a reader's timeout should not count them. (Read off
    the stream's Yamux connection without importing libp2p: the simulated network's streams
    have none, and take no time here.)"""
    muxed = getattr(stream, "muxed_stream", stream)
    conn = getattr(muxed, "conn", None)
    bw = getattr(conn, "bandwidth", None)
    if not getattr(muxed, "bulk", False) or not isinstance(bw, Bandwidth):
        return 0.0
    if bw.down.rate is None or not bw.capped(bool(getattr(conn, "lan", False))):
        return 0.0
    return nbytes / bw.down.rate


def _wait(bucket: TokenBucket, control: bool) -> float:
    if bucket.rate is None:
        return 0.0
    floor = -bucket.rate * CONTROL_DEBT_S if control else 0.0
    return bucket.wait_until(floor, trio.current_time())
