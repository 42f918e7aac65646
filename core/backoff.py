"""Restart delays for crashed services: exponential, capped, with jitter. Pure."""

from __future__ import annotations

import random


def backoff_delay(failures: int, rng: random.Random, *, base: float = 0.5,
                  cap: float = 30.0) -> float:
    """Seconds to wait before restart number `failures` (1 = first failure).

    Doubles from `base` up to `cap`, then draws uniformly in [half, full] of that so that
    many nodes that failed together do not restart together."""
    if failures < 1:
        return 0.0
    full = min(cap, base * (2 ** min(failures - 1, 30)))
    return rng.uniform(full / 2, full)
