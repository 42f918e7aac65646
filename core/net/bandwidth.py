"""Upload/download caps on stream traffic: token buckets the framing layer spends from.

Trio, node thread. The governor sets the rates (`set_rates`); every framed write spends
upload tokens before sending and every framed read spends download tokens after receiving.
"""

from __future__ import annotations

import trio

from core.ratelimit import TokenBucket

BURST_SECONDS = 0.25  # a bucket holds this many seconds of its rate


class Bandwidth:
    def __init__(self) -> None:
        self.up = TokenBucket(None, 0, 0.0)  # unlimited until the governor sets a rate
        self.down = TokenBucket(None, 0, 0.0)
        self.sent = 0      # bytes, since start (for the dashboard's live usage)
        self.received = 0

    def set_rates(self, upload_bps: int | None, download_bps: int | None) -> None:
        now = trio.current_time()
        for bucket, rate in ((self.up, upload_bps), (self.down, download_bps)):
            bucket.burst = max(64 * 1024, (rate or 0) * BURST_SECONDS)
            bucket.set_rate(rate, now)

    async def spend_up(self, n: int) -> None:
        self.sent += n
        await trio.sleep(self.up.take(n, trio.current_time()))

    async def spend_down(self, n: int) -> None:
        self.received += n
        await trio.sleep(self.down.take(n, trio.current_time()))
