"""Which blocks a server serves, and when it moves. Pure: throughputs in, decisions out.

A stage's throughput is the sum over the servers holding that block (a micro-batch goes through
one of them); the pipeline runs at its slowest stage. A joining server takes the span of the
length its memory allows where the swarm is weakest; a serving one periodically simulates
leaving its span and re-joining at the best place, and moves only when that serves blocks
nobody serves, or raises the swarm's minimum stage throughput enough (Petals' rule:
old_min / new_min < 0.75). The first condition matters while several blocks are unserved: no
single move lifts a minimum of zero, yet each one that fills a gap is progress.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

MOVE_RATIO = 0.75          # move only when old_min / new_min falls below this
REBALANCE_PERIOD = 60.0    # s, mean; each wait is drawn from 0.5..1.5 of it
MIN_SPAN_BYTES_HEADROOM = 0.9  # a span may use this much of the memory budget


@dataclass(frozen=True)
class ServerSpan:
    peer_id: str
    start: int
    end: int           # exclusive
    throughput: float  # samples/s the server pushes through its span (each block sees them all)

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"empty or negative span {self.start}..{self.end}")
        if not self.throughput >= 0:  # also refuses NaN
            raise ValueError(f"throughput {self.throughput!r} is not a non-negative number")


def span_length(budget_bytes: int, block_bytes: int, blocks: int) -> int:
    """How many blocks fit in the memory budget (0: not even one)."""
    if block_bytes <= 0:
        raise ValueError("a block takes some memory")
    return max(0, min(blocks, int(budget_bytes * MIN_SPAN_BYTES_HEADROOM) // block_bytes))


def stage_throughputs(servers: Iterable[ServerSpan], blocks: int,
                      exclude: str | None = None) -> list[float]:
    """Per block, the summed throughput of the servers holding it."""
    total = [0.0] * blocks
    for s in servers:
        if s.peer_id == exclude:
            continue
        for b in range(s.start, min(s.end, blocks)):
            total[b] += s.throughput
    return total


def choose_span(throughputs: list[float], length: int) -> int:
    """The start of the `length`-block window where the swarm is weakest: the lowest
    minimum throughput, then the lowest total (ties: the first)."""
    if not 0 < length <= len(throughputs):
        raise ValueError(f"a span of {length} does not fit {len(throughputs)} blocks")
    windows = [(min(throughputs[i:i + length]), sum(throughputs[i:i + length]), i)
               for i in range(len(throughputs) - length + 1)]
    return min(windows)[2]


@dataclass(frozen=True)
class MoveDecision:
    move: bool
    start: int          # where to go (the current start when not moving)
    old_min: float
    new_min: float
    why: str


def should_move(servers: list[ServerSpan], me: str, blocks: int) -> MoveDecision:
    """Simulate taking our span out and putting it where the swarm is weakest; move when
    that serves a block nobody serves (without leaving another unserved), or when the swarm's
    minimum stage throughput rises enough (old_min / new_min < MOVE_RATIO)."""
    mine = next((s for s in servers if s.peer_id == me), None)
    if mine is None:
        raise ValueError("we are not among the servers")
    length = mine.end - mine.start
    old = stage_throughputs(servers, blocks)
    old_min = min(old)
    without = stage_throughputs(servers, blocks, exclude=me)
    start = choose_span(without, length)
    if start == mine.start:
        return MoveDecision(False, mine.start, old_min, old_min, "already where it helps most")
    moved = list(without)
    for b in range(start, start + length):
        moved[b] += mine.throughput
    new_min = min(moved)
    gaps_before = sum(1 for t in old if t <= 0)
    gaps_after = sum(1 for t in moved if t <= 0)
    where = f"blocks {start}..{start + length - 1}"
    if gaps_after < gaps_before:
        return MoveDecision(True, start, old_min, new_min,
                            f"moving to {where} serves {gaps_before - gaps_after} block(s) "
                            "nobody serves")
    if gaps_after > gaps_before or new_min <= 0 or old_min / new_min >= MOVE_RATIO:
        return MoveDecision(False, mine.start, old_min, new_min,
                            f"moving to {where} would raise the weakest stage only from "
                            f"{old_min:.1f} to {new_min:.1f} samples/s")
    return MoveDecision(True, start, old_min, new_min,
                        f"moving to {where} raises the weakest stage from {old_min:.1f} to "
                        f"{new_min:.1f} samples/s")


def next_rebalance(rng: random.Random, period: float = REBALANCE_PERIOD) -> float:
    """Seconds to the next check (randomised, so servers do not all move at once)."""
    return period * rng.uniform(0.5, 1.5)


def swarm_min(servers: Iterable[ServerSpan], blocks: int) -> float:
    return min(stage_throughputs(servers, blocks))
