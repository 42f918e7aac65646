"""Village health telemetry: a fixed, versioned health vector per village, averaged
network-wide with Moshpit rounds - first inside the village's region, then among all.

Pure parts (the vector, the schedule, the estimates, the privacy noise) take their inputs and a
seeded RNG; `TelemetryService` runs them against the averaging service.

Counting villages: every village measures the network's size itself, from how densely its own
routing table is filled (`RoutingTable.size_measure`), and adds log2 of it to a "size" field;
averaged, the field gives the network's agreed estimate. Each village then holds that average
to its own measurement: the count shown lies within the band its own table allows. A village
that lies about the size can move the average by at most its share of it (1/N of the field's
range) and cannot move any honest village's count outside that village's own band. (Counting
by averaging a single "seed" 1 - what this did before - let one village claiming to be the seed
halve every village's count.) The uncertainty shown is the larger of how much the estimate
still moved in the last round and the uncertainty of the village's own measurement.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

VERSION = 2  # 2: the "size" field replaced version 1's "seed"
FIELDS: tuple[str, ...] = (
    "online", "tier_cpu", "tier_consumer_gpu", "tier_prosumer_gpu", "cpu_util", "gpu_util",
    "allowance_in_use", "contributing", "direct", "relay_only", "personas_active",
    "credits_per_hour", "median_latency_ms", "size",
)
# scale of each field on the wire (values are divided by it, clipped to [0, 1]): bounded
# contributions keep one village from swamping an average, and fix the privacy sensitivity
SCALE = {"personas_active": 16.0, "credits_per_hour": 1000.0, "median_latency_ms": 2000.0,
         "size": 24.0}
SIZE = FIELDS.index("size")
SIZE_BITS = SCALE["size"]  # the size field is log2(villages) / 24: up to 16.7 million
SIZE_BAND = 1.0  # the count shown lies within own measurement x (1 + SIZE_BAND x uncertainty):
# at 50 simulated villages (seed 5) one liar moved the median count 1.38x with 2.0, 1.17x with 1.0
# What any member may send in a telemetry round (the reducers enforce it: one village that
# sends 1e30 no longer sets the network's figures): [0, 1] per field, widened by NOISE_RANGE
# for the fields local privacy adds noise to; the size field (about the network, not the
# village) is always exact.
NOISE_RANGE = 50.0
BOUNDS = (np.array([0.0 if f == "size" else -NOISE_RANGE for f in FIELDS], dtype=np.float32),
          np.array([1.0 if f == "size" else 1.0 + NOISE_RANGE for f in FIELDS],
                   dtype=np.float32))
DIMS = 2
MAX_SIDE = 32
ROUNDS_PER_LEVEL = DIMS + 1  # one more than the grid needs: a failed group is made up for
MAX_GATHER = 10.0            # s a round waits for its group (a busy machine announces late)


@dataclass(frozen=True)
class Health:
    """This village's own health, in plain units."""

    online: bool = True
    tier: str = "cpu"
    cpu_util: float = 0.0          # 0..1 of the machine
    gpu_util: float = 0.0          # 0..1
    allowance_in_use: float = 0.0  # 0..1 of what the gardener allows
    contributing: bool = False
    reachability: str = "unknown"
    personas_active: int = 0
    credits_per_hour: float = 0.0
    median_latency_ms: float = 0.0


def health_vector(h: Health, *, size: float) -> np.ndarray:
    """This village's vector; `size`: the network's size as this village measures it."""
    raw = {
        "online": float(h.online), "tier_cpu": float(h.tier == "cpu"),
        "tier_consumer_gpu": float(h.tier == "consumer-gpu"),
        "tier_prosumer_gpu": float(h.tier == "prosumer-gpu"),
        "cpu_util": h.cpu_util, "gpu_util": h.gpu_util,
        "allowance_in_use": h.allowance_in_use, "contributing": float(h.contributing),
        "direct": float(h.reachability == "direct"),
        "relay_only": float(h.reachability == "relay-only"),
        "personas_active": float(h.personas_active), "credits_per_hour": h.credits_per_hour,
        "median_latency_ms": h.median_latency_ms,
        "size": math.log2(size) if size >= 1 else 0.0,  # bits
    }
    return np.array([min(1.0, max(0.0, raw[f] / SCALE.get(f, 1.0))) for f in FIELDS],
                    dtype=np.float32)


def privatize(vec: np.ndarray, epsilon: float, rng: random.Random,
              delta: float = 1e-5) -> np.ndarray:
    """Local differential privacy for this village's own vector: Gaussian noise calibrated to
    (epsilon, delta) with sensitivity 1 per field (fields are clipped to [0, 1]); the size
    field is left exact (it measures the network, not the village). epsilon <= 0: no noise.
    The result is clipped to `BOUNDS`, what the other villages accept."""
    if epsilon <= 0:
        return vec
    sigma = math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    noisy = vec.astype(np.float64) + np.array([rng.gauss(0.0, sigma) for _ in vec])
    noisy[SIZE] = vec[SIZE]
    # within the round's bounds (more than 6 sigma above epsilon 0.6; below that the figures
    # are mostly noise anyway, and clipped symmetric noise keeps its mean near the value)
    return np.clip(noisy, BOUNDS[0], BOUNDS[1]).astype(np.float32)


def grid_side(villages_estimate: float) -> int:
    """Side of the 2-D Moshpit grid for about N villages: a power of two (so that villages
    whose estimates differ a little still agree), 2..32."""
    if villages_estimate <= 4:
        return 2
    side = 2 ** round(math.log2(math.sqrt(villages_estimate)))
    return max(2, min(MAX_SIDE, side))


def start_coords(peer_id: str, epoch: int, side: int) -> tuple[int, ...]:
    h = hashlib.sha256(f"{peer_id}|{epoch}".encode()).digest()
    return tuple(h[i] % side for i in range(DIMS))


def round_key(epoch: int, level: str, rnd: int, coords: tuple[int, ...], side: int) -> str:
    dim = rnd % DIMS
    rest = "-".join(str(c) for i, c in enumerate(coords) if i != dim)
    return f"telemetry/v{VERSION}/{epoch}/{level}/s{side}/r{rnd}/{rest}"


@dataclass(frozen=True)
class Aggregate:
    """Averaged health (plain units), the village count estimate and how it was made."""

    means: dict[str, float]
    villages: float             # estimated villages averaged (0: unknown)
    uncertainty: float          # relative, from the last round's change
    members_last_round: int
    rounds: int
    at: float                   # wall clock

    def total(self, name: str) -> float:
        return self.means.get(name, 0.0) * self.villages


def to_means(vec: np.ndarray) -> dict[str, float]:
    return {f: float(vec[i]) * SCALE.get(f, 1.0) for i, f in enumerate(FIELDS) if f != "size"}


def estimate_count(size_mean: float) -> float:
    """Villages, from the averaged size field (0: nothing measured)."""
    return 2.0 ** (size_mean * SIZE_BITS) if size_mean > 0 else 0.0


def held_to_own(averaged: float, own: float, uncertainty: float) -> tuple[float, str]:
    """The count to show: the network's average, held within the band this village's own
    measurement allows (own x (1 + SIZE_BAND x uncertainty), either way), and why it was
    held, if it was. No own measurement: the average as it is. Pure."""
    if own <= 0 or averaged <= 0:
        return averaged, ""
    band = 1.0 + SIZE_BAND * uncertainty
    lo, hi = own / band, own * band
    if lo <= averaged <= hi:
        return averaged, ""
    held = min(hi, max(lo, averaged))
    return held, (f"the averaged count ({averaged:.0f}) is outside what this village's own "
                  f"routing table measures ({own:.0f}, {lo:.0f}-{hi:.0f}); {held:.0f} is shown")


def settle(previous: Aggregate | None, fresh: Aggregate) -> tuple[Aggregate, str]:
    """The network aggregate to show after a period, and what went wrong if anything. A period
    whose averaging met no other village (count 0: its figures would be this village's own)
    keeps the last good aggregate - shown with its own age - rather than replacing it."""
    if fresh.villages or previous is None:
        return fresh, ("" if fresh.villages else "this village's averaging has not met another "
                       "village yet")
    return previous, ("this period's averaging met no other village; the network figures "
                      "shown are from an earlier period")


@dataclass
class TelemetryState:
    local: dict[str, float] = field(default_factory=dict)
    regional: Aggregate | None = None
    network: Aggregate | None = None
    villages_estimate: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class Work:
    """What this village did over one period, measured."""

    cpu_util: float     # 0..1 of the machine: the node process's CPU time over the period
    contributing: bool  # compute finished or credit earned during the period


class WorkMeter:
    """Turns running totals (the node process's CPU seconds, pieces of compute finished,
    credit-bearing receipts) into what the village did since the previous reading. Pure:
    the caller reads the totals and the clock."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, cores)
        self._last: tuple[float, float, int, int] | None = None

    def read(self, now: float, cpu_seconds: float, progress: int, receipts: int) -> Work:
        last, self._last = self._last, (now, cpu_seconds, progress, receipts)
        if last is None or now <= last[0]:  # the first reading: nothing to compare with
            return Work(0.0, False)
        used = max(0.0, cpu_seconds - last[1]) / ((now - last[0]) * self.cores)
        return Work(min(1.0, used), progress > last[2] or receipts > last[3])


def health_of(*, tier: str, governor: Any, reachability: str, personas: tuple[Any, ...],
              rtts: list[float], work: Work, gpu_util: float, credits_per_hour: float
              ) -> Health:
    """This village's health from measurements: `work` (the node process's CPU time and the
    work it finished over the period), the GPUs' utilisation NVML reports (0 with none),
    the ledger's verified credit of the last hour, the measured round-trip times; the
    governor's duty cycle says how much of the gardener's allowance is in use."""
    gov = governor
    return Health(
        online=True, tier=tier, cpu_util=work.cpu_util, gpu_util=min(1.0, max(0.0, gpu_util)),
        allowance_in_use=gov.duty_cycle if gov.may_compute else 0.0,
        contributing=work.contributing, reachability=reachability,
        median_latency_ms=1000 * statistics.median(rtts) if rtts else 0.0,
        personas_active=sum(p.status == "running" for p in personas),
        credits_per_hour=max(0.0, credits_per_hour))


class MeasuredHealth:
    """The telemetry service's `health()`: this village's health each period from what was
    measured (the node process's CPU time, the compute gate's finished work, the ledger's
    receipts and last hour's credit, NVML's GPU utilisation, the discovery's round trips)."""

    def __init__(self, ctx: ServiceContext, *, governor: Any, reach: Any, personas: Any,
                 discovery: Any, ledger: Any) -> None:
        import psutil

        self.ctx, self.governor, self.reach = ctx, governor, reach
        self.personas, self.discovery, self.ledger = personas, discovery, ledger
        self.meter = WorkMeter(psutil.cpu_count() or 1)
        self.process = psutil.Process()

    def __call__(self) -> Health:
        cpu = self.process.cpu_times()
        gov, credits = self.governor, self.ledger.last_view
        gpus = [g.utilization_pct for g in gov.hardware.nvml.gpus
                if g.utilization_pct is not None]
        return health_of(
            tier=gov.tier.tier, governor=gov.view(), reachability=self.reach.current.state,
            personas=self.personas.current,
            rtts=[v for v in self.discovery.rtts.values() if v is not None],
            work=self.meter.read(self.ctx.clock.mono(), cpu.user + cpu.system,
                                 gov.gate.stats().progress, credits.receipts),
            gpu_util=max(gpus, default=0.0) / 100, credits_per_hour=credits.last_hour)


class TelemetryService:
    """`directory.size_measure` is this village's own count; `averager.average` runs the
    rounds; `health()` is this village's own health each period."""

    def __init__(self, ctx: ServiceContext, directory: Any, averager: Any,
                 health: Callable[[], Health]) -> None:
        self.ctx = ctx
        self.directory = directory
        self.averager = averager
        self.health = health
        self.state = TelemetryState()

    def _own_size(self) -> tuple[float, float]:
        """The network's size as this village's routing table measures it, and how sure."""
        measure = getattr(self.directory, "size_measure", None)
        return measure() if measure is not None else (0.0, 1.0)

    async def run(self) -> None:
        while True:
            period = float(self.ctx.settings.telemetry_period_s)
            now = self.ctx.clock.wall()
            epoch = int(now // period)
            start = (epoch + 1) * period  # the next period begins
            await trio.sleep(max(0.0, start - now))
            try:
                await self._one_period(epoch + 1, start, period)
            except Exception as e:  # a failed period is reported, the next one tries again
                log.warning("telemetry period failed: %s", e)
                self.state.last_error = str(e)

    async def _one_period(self, epoch: int, start: float, period: float) -> None:
        s = self.ctx.settings
        rng = random.Random(f"{self.ctx.peer_id}|{epoch}")
        own_size, own_unc = self._own_size()
        own = health_vector(self.health(), size=own_size)
        self.state.local = to_means(own)
        vec = privatize(own, s.telemetry_epsilon, rng)
        # no count yet: the DHT's own estimate sizes the grid (groups of ~sqrt(N), not N/2)
        side = grid_side(self.state.villages_estimate or own_size)
        levels = (["region/" + s.region[:32]] if s.region else []) + ["network"]
        slots = len(levels) * ROUNDS_PER_LEVEL
        slot = period * 0.8 / slots  # leave a fifth of the period spare
        rounds = 0
        for li, level in enumerate(levels):
            coords = start_coords(self.ctx.peer_id, epoch, side)
            last_est = 0.0
            members = 1
            met = 1  # the largest group averaged with at this level
            est = 0.0
            for r in range(ROUNDS_PER_LEVEL):
                at = start + (li * ROUNDS_PER_LEVEL + r) * slot
                key = round_key(epoch, level, r, coords, side)
                gather = min(MAX_GATHER, slot * 0.4)
                res = await self.averager.average(
                    key, vec, close_at=at + gather, deadline_at=at + slot * 0.95,
                    bounds=BOUNDS)
                vec = res.vector
                rounds += 1
                members = len(res.members)
                met = max(met, members)
                idx = list(res.members).index(self.ctx.peer_id) \
                    if self.ctx.peer_id in res.members else 0
                dim = r % DIMS
                coords = (*coords[:dim], idx % side, *coords[dim + 1:])
                last_est, est = est, estimate_count(float(vec[SIZE]))
            unc = abs(est - last_est) / est if est and last_est else 1.0
            agg = Aggregate(to_means(vec), 0.0, unc, members, rounds, self.ctx.clock.wall())
            if level != "network":
                self.state.regional = agg
                continue
            # held to what the table measures now, not at the period's start: a village
            # that began the period before its table filled (just started, or joined by
            # others since) would otherwise hold the count at its first, smaller measure
            own_size, own_unc = self._own_size()
            est, held = held_to_own(est, own_size, own_unc)
            if held:
                log.info("telemetry: %s", held)
            agg = replace(agg, villages=est if met > 1 else 0.0, uncertainty=max(unc, own_unc))
            self.state.network, self.state.last_error = settle(self.state.network, agg)
            self.state.last_error = self.state.last_error or held
            if self.state.network.villages:
                self.state.villages_estimate = self.state.network.villages
        log.info("telemetry: ~%.0f villages (±%.0f%%) after %d rounds",
                 self.state.villages_estimate, 100 * (self.state.network.uncertainty
                                                      if self.state.network else 1), rounds)

