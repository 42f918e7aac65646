"""The pure Moshpit core: grid coordinates, group keys, partitions and weighted reduction.

No I/O, no clocks: every function takes what it needs (a round number, a seeded RNG).

Peers sit in a virtual `dims`-dimensional grid of side `side`. In round t they group with the
peers that share every coordinate except dimension `t % dims`; after the round each member
takes its index in the group as its new coordinate along that dimension (the Moshpit paper's
rule; hivemind shifts group-key bits the same way). With side**dims peers and no failures the
result is exact after `dims` rounds; with failures and uneven groups it converges
exponentially.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Coords = tuple[int, ...]


def grid_shape(n_peers: int, group_size: int) -> tuple[int, int]:
    """(dims, side) for a network of about `n_peers` with groups of about `group_size`."""
    side = max(2, group_size)
    dims = max(1, math.ceil(math.log(max(n_peers, 2), side) - 1e-9))
    return dims, side


def random_coords(rng: random.Random, dims: int, side: int) -> Coords:
    return tuple(rng.randrange(side) for _ in range(dims))


def group_key(coords: Coords, round_no: int) -> tuple[int, Coords]:
    """Peers with equal keys average together in `round_no`: all coordinates but one."""
    dim = round_no % len(coords)
    return dim, (*coords[:dim], *coords[dim + 1:])


def next_coords(coords: Coords, round_no: int, index_in_group: int, side: int) -> Coords:
    dim = round_no % len(coords)
    return (*coords[:dim], index_in_group % side, *coords[dim + 1:])


def form_groups(coords: Mapping[Hashable, Coords], round_no: int, max_size: int,
                ) -> list[list[Hashable]]:
    """Groups for a round: members sharing a key, in a canonical order (sorted by id),
    split into consecutive chunks of at most `max_size` (balanced)."""
    by_key: dict[tuple[int, Coords], list[Hashable]] = {}
    for peer, c in coords.items():
        by_key.setdefault(group_key(c, round_no), []).append(peer)
    out = []
    for key in sorted(by_key):
        members = sorted(by_key[key], key=str)
        chunks = max(1, math.ceil(len(members) / max_size))
        for i in range(chunks):
            out.append(members[i::chunks])
    return out


@dataclass(frozen=True)
class Slice:
    owner: int   # index of the member that reduces it
    start: int
    stop: int


SHARE_CAP = 4.0  # a member's share is at most this many times the group's median bandwidth


def shares_of(bandwidths: Sequence[float], clients: Sequence[bool],
              cap: float = SHARE_CAP) -> list[float]:
    """Each member's share of the reduction from the upload bandwidth it announced (its own
    measurement, DeDLOC's load balancing): 0 for a client (relay-only: reduces nothing); the
    others' at least 1e-3 and at most `cap` times the median of theirs, so a member that
    claims a huge link cannot take most of the vector to reduce."""
    own = sorted(max(b, 1e-3) for b, c in zip(bandwidths, clients, strict=True)
                 if not c and math.isfinite(b))
    if not own:
        return [0.0] * len(bandwidths)
    mid = len(own) // 2
    median = own[mid] if len(own) % 2 else (own[mid - 1] + own[mid]) / 2
    return [0.0 if c else min(max(b, 1e-3) if math.isfinite(b) else median, cap * median)
            for b, c in zip(bandwidths, clients, strict=True)]


class UploadRate:
    """This village's upload rate in Mb/s, measured from its own averaging transfers: an
    exponential moving average of samples of at least MIN_BYTES (smaller ones time the
    latency, not the link), each held to [LOW, HIGH]. Before the first sample it says
    `DEFAULT` and `measured` is false."""

    DEFAULT, LOW, HIGH = 100.0, 0.1, 100_000.0
    MIN_BYTES = 256 * 1024
    ALPHA = 0.3

    def __init__(self) -> None:
        self.value: float | None = None
        self.samples = 0

    @property
    def measured(self) -> bool:
        return self.value is not None

    @property
    def mbps(self) -> float:
        return self.DEFAULT if self.value is None else self.value

    def add(self, nbytes: int, seconds: float, streams: int = 1) -> None:
        """`nbytes` written in `seconds` on one of `streams` transfers sharing the upload."""
        if nbytes < self.MIN_BYTES or not seconds > 0 or streams < 1:
            return
        rate = min(self.HIGH, max(self.LOW, nbytes * 8 / seconds / 1e6 * streams))
        self.value = rate if self.value is None else (
            (1 - self.ALPHA) * self.value + self.ALPHA * rate)
        self.samples += 1


def partition(length: int, shares: Sequence[float]) -> list[Slice]:
    """Split [0, length) into one contiguous slice per member, sized by `shares` (e.g. measured
    bandwidth; 0 for a client that reduces nothing). The slices cover the vector exactly, in
    order, with no overlap."""
    if length < 0:
        raise ValueError("length must be >= 0")
    if not shares or any(s < 0 or not math.isfinite(s) for s in shares):
        raise ValueError("shares must be finite and >= 0")
    total = float(sum(shares))
    if total <= 0:
        raise ValueError("at least one member must reduce a slice")
    out, start, acc = [], 0, 0.0
    for i, s in enumerate(shares):
        acc += s
        stop = length if i == len(shares) - 1 else round(length * acc / total)
        stop = max(start, stop)
        out.append(Slice(i, start, stop))
        start = stop
    return out


Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def weighted_mean(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of `stack` averaged with `weights` (float64 accumulation)."""
    w = np.asarray(weights, dtype=np.float64)
    if stack.shape[0] != w.shape[0] or stack.shape[0] == 0:
        raise ValueError("one weight per contribution, at least one contribution")
    if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be finite, >= 0, and not all zero")
    return (np.tensordot(w, stack.astype(np.float64), axes=1) / w.sum()).astype(stack.dtype)


RULES: dict[str, Rule] = {"mean": weighted_mean}


MEAN_CHUNK = 1 << 16  # values per step of the copy-free mean (a few hundred kB: in cache)


def mean_of_parts(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """`weighted_mean` of the parts without stacking them: float64 accumulation a chunk at
    a time (stacking a 9.5M-value slice of 4 members copied 151 MB, then 302 MB as float64,
    for each slice; this holds one chunk)."""
    w = np.asarray(weights, dtype=np.float64)
    if len(parts) != w.shape[0] or not parts:
        raise ValueError("one weight per contribution, at least one contribution")
    if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be finite, >= 0, and not all zero")
    n = parts[0].shape[0]
    if any(p.shape != parts[0].shape for p in parts):
        raise ValueError("contributions of different shapes")
    total = float(w.sum())
    out = np.empty(parts[0].shape, dtype=parts[0].dtype)
    acc = np.empty(min(n, MEAN_CHUNK), dtype=np.float64)
    for a in range(0, n, MEAN_CHUNK):
        b = min(n, a + MEAN_CHUNK)
        view = acc[:b - a]
        np.multiply(parts[0][a:b], w[0], out=view)
        for p, wi in zip(parts[1:], w[1:], strict=True):
            view += p[a:b] * wi
        view /= total
        out[a:b] = view
    return out


def reduce_slice(parts: Sequence[np.ndarray], weights: Sequence[float],
                 rule: str | Rule = "mean") -> np.ndarray:
    """Reduce the contributions to one slice (those that arrived) with a pluggable rule."""
    if rule == "mean" or rule is weighted_mean:
        return mean_of_parts(parts, weights)
    fn = RULES[rule] if isinstance(rule, str) else rule
    return fn(np.stack(parts), np.asarray(weights, dtype=np.float64))


@dataclass(frozen=True)
class RoundOutcome:
    """What one member ends a round with: the averaged vector and who made it."""

    members: tuple[str, ...]        # the members whose contributions are in every slice
    dropped: tuple[str, ...]        # members dropped from this round (late, failed, bad)
    weight: float                   # total weight of the members averaged


def complete_members(expected: Sequence[str], arrived_by_slice: Sequence[set[str]]) -> tuple[
        tuple[str, ...], tuple[str, ...]]:
    """Members whose contributions reached every slice's reducer (so the result is the mean of
    exactly these), and the rest, in `expected` order."""
    if not arrived_by_slice:
        return tuple(expected), ()
    ok = set.intersection(*arrived_by_slice) if arrived_by_slice else set()
    return tuple(m for m in expected if m in ok), tuple(m for m in expected if m not in ok)


# -- simulation (bench.moshpit_sim and the property tests) ------------------------------------
def simulate(values: np.ndarray, *, dims: int, side: int, rounds: int, fail_prob: float,
             rng: random.Random, mode: str = "grid", placement: str = "random",
             ) -> list[float]:
    """Run `rounds` of Moshpit averaging over `values` (one row per peer); return the spread
    (RMS distance to the true mean) after each round, relative to the initial spread.

    mode "grid": the Moshpit rule above; "random": every round a fresh random partition into
    groups of `side` (the regrouping the per-round factor (r-1)/(N-1) describes).
    placement "random": peers take random grid cells; "fill": cells in order (a full grid).
    A failed peer sits the round out with its value; its group averages without it."""
    n = values.shape[0]
    x = values.astype(np.float64).copy()
    truth = x.mean(axis=0)
    initial = float(np.sqrt(((x - truth) ** 2).sum(axis=1).mean())) or 1.0
    cells = list(range(side ** dims))
    if placement == "random":
        rng.shuffle(cells)
    coords: dict[int, Coords] = {}
    for i in range(n):
        c, cell = [], cells[i % len(cells)]
        for _ in range(dims):
            c.append(cell % side)
            cell //= side
        coords[i] = tuple(c)
    out = []
    for r in range(rounds):
        live = [i for i in range(n) if rng.random() >= fail_prob]
        if mode == "random":
            order = live[:]
            rng.shuffle(order)
            k = max(1, math.ceil(len(order) / side))
            groups: list[list[int]] = [order[j::k] for j in range(k)]
        else:
            groups = form_groups({i: coords[i] for i in live}, r, side)  # type: ignore[assignment]
        for g in groups:
            idx = np.asarray(g)
            x[idx] = x[idx].mean(axis=0)
            if mode == "grid":
                for j, peer in enumerate(g):
                    coords[peer] = next_coords(coords[peer], r, j, side)
        out.append(float(np.sqrt(((x - truth) ** 2).sum(axis=1).mean())) / initial)
    return out
