"""Token bucket for bandwidth caps. Pure: the caller passes `now`."""

from __future__ import annotations


class TokenBucket:
    """`rate` bytes per second, bursts up to `burst` bytes. rate None = unlimited."""

    def __init__(self, rate: float | None, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def set_rate(self, rate: float | None, now: float) -> None:
        self._refill(now)
        self.rate = rate

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n: int, now: float) -> float:
        """Spend `n` bytes; returns seconds to wait before sending them (0 = now)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
