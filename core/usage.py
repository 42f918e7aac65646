"""What the network's work uses right now, against the gardener's limits (for the dashboard).

The node process's CPU (as a share of the whole machine, the unit of the `cpu_share` limit),
its memory, and the stream traffic through the bandwidth caps. Sampled at most once a second;
cheap enough to run inside snapshot().
"""

from __future__ import annotations

import time

import psutil

from core.memory import MIB, MemoryBudget
from core.net.bandwidth import Bandwidth
from core.snapshot import UsageView

MIN_INTERVAL = 1.0  # s between samples


class UsageMeter:
    def __init__(self, bandwidth: Bandwidth, memory: MemoryBudget | None = None) -> None:
        self.bandwidth = bandwidth
        self.memory = memory
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # primes the counter
        self._cores = psutil.cpu_count() or 1
        self._last = UsageView()  # at 0: not measured until the first sample
        self._bytes = (bandwidth.sent, bandwidth.received)
        self._mono = time.monotonic()

    def sample(self) -> UsageView:
        now = time.monotonic()
        dt = now - self._mono
        if dt < MIN_INTERVAL:
            return self._last
        sent, received = self.bandwidth.sent, self.bandwidth.received
        self._last = UsageView(
            cpu_percent=round(self._proc.cpu_percent(None) / self._cores, 1),
            rss_mb=round(self._proc.memory_info().rss / 2**20, 1),
            upload_kbps=round((sent - self._bytes[0]) / 1000 / dt, 1),
            download_kbps=round((received - self._bytes[1]) / 1000 / dt, 1),
            reserved_mb=round(self.memory.used / MIB, 1) if self.memory else 0.0,
            memory_refusal=self.memory.last_refusal if self.memory else "",
            at=time.time())
        self._bytes, self._mono = (sent, received), now
        return self._last
