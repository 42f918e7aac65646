"""Token buckets: bandwidth caps, and request budgets per peer. Pure: the caller passes
`now`."""

from __future__ import annotations

import itertools


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

    def wait_until(self, level: float, now: float) -> float:
        """Seconds until the bucket holds at least `level` tokens (0 = now; unlimited: 0)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        short = level - self.tokens
        return short / self.rate if short >= 1.0 and self.rate > 0 else 0.0  # < 1 byte: now

    def take(self, n: float, now: float) -> float:
        """Spend `n` bytes; returns seconds to wait before sending them (0 = now)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class PeerRates:
    """A budget of `rate` requests a second (bursts up to `burst`) per peer, for at most
    `max_peers` peers. Past that the least recently used peer whose budget has refilled is
    forgotten (losing nothing), else the fullest of the least recent: a peer that keeps
    asking is never among them, so fresh ids cannot reset its budget (forgetting every
    budget at once let one sender with many ids reset everyone's)."""

    def __init__(self, rate: float, burst: float, max_peers: int = 10_000) -> None:
        self.rate, self.burst, self.max_peers = rate, burst, max_peers
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, peer: str, now: float, n: float = 1.0) -> bool:
        """Spend `n` from `peer`'s budget; False (and nothing spent) when it has not got it."""
        bucket = self._bucket(peer, now)
        if bucket.take(n, now) > 0:
            bucket.take(-n, now)
            return False
        return True

    def delay(self, peer: str, now: float, n: float = 1.0) -> float:
        """The sender's side: spend `n` from `peer`'s budget even when short, and return the
        seconds to wait before sending (0 = now), so that requests leave no faster than the
        budget refills."""
        return self._bucket(peer, now).take(n, now)

    def _bucket(self, peer: str, now: float) -> TokenBucket:
        bucket = self._buckets.pop(peer, None)  # re-inserted last: least recent first
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                self._forget_one(now)
            bucket = TokenBucket(self.rate, self.burst, now)
        self._buckets[peer] = bucket
        return bucket

    def _forget_one(self, now: float) -> None:
        oldest = list(itertools.islice(self._buckets.items(), 64))
        for _, b in oldest:
            b.take(0, now)  # refill to now
        del self._buckets[max(oldest, key=lambda kv: kv[1].tokens)[0]]
