"""What a simulated network is measured by: DHT lookups (found, hops), telemetry's village
count, Moshpit averaging rounds over the real averaging service, relay load, memory. Each
function runs inside the simulation's trio loop and reads only what the villages hold."""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from core.dht import records as rec
from core.simnet.world import World


@dataclass(frozen=True)
class Gets:
    asked: int
    found: int
    hops: tuple[int, ...]  # per lookup, the longest chain of answers it followed

    @property
    def success(self) -> float:
        return self.found / self.asked if self.asked else 0.0


async def dht_gets(world: World, n: int, rng: random.Random,
                   among: list[Any] | None = None) -> Gets:
    """`n` lookups of random live villages' records by other random live villages (through
    the DHT: the asker's own copy does not count); `among`: only these villages ask and are
    asked for."""
    alive = [v for v in (world.alive() if among is None else among) if v.dht.table is not None]
    found, hops = 0, []
    for _ in range(n):
        asker, owner = rng.sample(alive, 2)
        asker.dht.villages.pop(owner.peer_id, None)
        asker.dht.store.records.pop(rec.village_key(owner.peer_id), None)
        asker.dht.last_hops = 0
        got = await asker.dht.get_village(owner.peer_id, quorum=1)
        found += got is not None and got.record.peer_id == owner.peer_id
        hops.append(asker.dht.last_hops)
    return Gets(n, found, tuple(hops))


def percentile(values: list[float] | tuple[int, ...], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return float(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))])


def telemetry_counts(world: World) -> list[float]:
    """Each live village's estimate of how many villages there are (0: none yet)."""
    return [v.telemetry.state.network.villages if v.telemetry.state.network else 0.0
            for v in world.alive()]


def count_error(world: World) -> float:
    """The median relative error of the villages' count estimates against the truth."""
    truth = len(world.alive())
    errs = [abs(c - truth) / truth for c in telemetry_counts(world)]
    return statistics.median(errs) if errs else 1.0


async def moshpit(world: World, side: int, rounds: int, *, start: float, slot: float,
                  rng: random.Random) -> list[float]:
    """Moshpit averaging over the real averaging service: every live village holds a random
    value, sits in a cell of a `side`^d grid and averages along one dimension per round;
    returns, after each round, the largest distance of any village's value from the exact
    mean of the starting values, relative to their range (so 0 is the exact average
    everywhere, and one village left out of every group keeps it high)."""
    alive = world.alive()
    d = max(1, round(math.log(len(alive), side)))
    cells = _cells(len(alive), side, d, rng)
    values = {v.peer_id: np.array([rng.random()], dtype=np.float32) for v in alive}
    start_values = [float(x[0]) for x in values.values()]
    target = float(np.mean(np.array(start_values, dtype=np.float64)))
    first = max(start_values) - min(start_values)
    spreads = []
    for r in range(rounds):
        dim = r % d
        at = start + r * slot

        async def one(i: int, v: Any, r: int = r, dim: int = dim, at: float = at) -> None:
            rest = "-".join(str(c) for j, c in enumerate(cells[i]) if j != dim)
            key = f"sim/moshpit/{world.seed}/r{r}/d{dim}/{rest}"
            res = await v.averaging.average(key, values[v.peer_id], close_at=at + slot * 0.4,
                                            deadline_at=at + slot * 0.95, max_group=side)
            values[v.peer_id] = res.vector

        async with trio.open_nursery() as nursery:
            for i, v in enumerate(alive):
                nursery.start_soon(one, i, v)
        spreads.append(max(abs(float(x[0]) - target) for x in values.values()) / first
                       if first else 0.0)
    exact = sum(abs(float(x[0]) - target) <= 1e-6 * first for x in values.values())
    world.last_moshpit_exact = exact / len(values)
    return spreads


def _cells(n: int, side: int, d: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Distinct grid cells for `n` villages, in a shuffled order (the paper's assignment
    when n = side^d; cells left over when fewer)."""
    every = [tuple((k // side**j) % side for j in range(d)) for k in range(side**d)]
    rng.shuffle(every)
    return [every[i % len(every)] for i in range(n)]


def relay_load(world: World) -> tuple[float, dict[str, int]]:
    """(max / mean relay load, loads): circuits each relay village carried plus the homes
    holding a reservation on it, over the relays that carry any."""
    loads = {}
    for v in world.alive():
        if not v.host.relay_hop:
            continue
        t = world.net.relay_traffic.get(v.peer_id)
        load = len(v.host.nat.reserved_here) + (t.circuits if t else 0)
        if load:
            loads[v.peer_id] = load
    if not loads:
        return 0.0, loads
    mean = sum(loads.values()) / len(loads)
    return max(loads.values()) / mean, loads


def digest(obj: Any) -> str:
    """A short fingerprint of a run's results (two runs with one seed must match)."""
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]
