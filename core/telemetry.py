"""Village health telemetry: a fixed, versioned health vector per village, averaged
network-wide with Moshpit rounds - first inside the village's region, then among all.

Pure parts (the vector, the schedule, the estimates, the privacy noise) take their inputs and a
seeded RNG; `TelemetryService` runs them against the averaging service.

Counting villages with averages alone: in each period one village - the one whose id is closest
to the period's key in the DHT keyspace, which every village can check - adds 1 to a "seed"
field, the others 0. Averaged, the field converges to 1/N; its inverse estimates N. The
uncertainty shown is how much the estimate still moved in the last round.
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

VERSION = 1
FIELDS: tuple[str, ...] = (
    "online", "tier_cpu", "tier_consumer_gpu", "tier_prosumer_gpu", "cpu_util", "gpu_util",
    "allowance_in_use", "contributing", "direct", "relay_only", "personas_active",
    "credits_per_hour", "median_latency_ms", "seed",
)
# scale of each field on the wire (values are divided by it, clipped to [0, 1]): bounded
# contributions keep one village from swamping an average, and fix the privacy sensitivity
SCALE = {"personas_active": 16.0, "credits_per_hour": 1000.0, "median_latency_ms": 2000.0}
SEED = FIELDS.index("seed")
# What any member may send in a telemetry round (the reducers enforce it: one village that
# sends 1e30 no longer sets the network's figures): [0, 1] per field, widened by NOISE_RANGE
# for the fields local privacy adds noise to; the seed field (who counts) is always exact.
NOISE_RANGE = 50.0
BOUNDS = (np.array([0.0 if f == "seed" else -NOISE_RANGE for f in FIELDS], dtype=np.float32),
          np.array([1.0 if f == "seed" else 1.0 + NOISE_RANGE for f in FIELDS],
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


def health_vector(h: Health, *, seed: bool) -> np.ndarray:
    raw = {
        "online": float(h.online), "tier_cpu": float(h.tier == "cpu"),
        "tier_consumer_gpu": float(h.tier == "consumer-gpu"),
        "tier_prosumer_gpu": float(h.tier == "prosumer-gpu"),
        "cpu_util": h.cpu_util, "gpu_util": h.gpu_util,
        "allowance_in_use": h.allowance_in_use, "contributing": float(h.contributing),
        "direct": float(h.reachability == "direct"),
        "relay_only": float(h.reachability == "relay-only"),
        "personas_active": float(h.personas_active), "credits_per_hour": h.credits_per_hour,
        "median_latency_ms": h.median_latency_ms, "seed": float(seed),
    }
    return np.array([min(1.0, max(0.0, raw[f] / SCALE.get(f, 1.0))) for f in FIELDS],
                    dtype=np.float32)


def privatize(vec: np.ndarray, epsilon: float, rng: random.Random,
              delta: float = 1e-5) -> np.ndarray:
    """Local differential privacy for this village's own vector: Gaussian noise calibrated to
    (epsilon, delta) with sensitivity 1 per field (fields are clipped to [0, 1]); the seed
    field is left exact (it only says who counts). epsilon <= 0: no noise. The result is
    clipped to `BOUNDS`, what the other villages accept."""
    if epsilon <= 0:
        return vec
    sigma = math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    noisy = vec.astype(np.float64) + np.array([rng.gauss(0.0, sigma) for _ in vec])
    noisy[SEED] = vec[SEED]
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
    return {f: float(vec[i]) * SCALE.get(f, 1.0) for i, f in enumerate(FIELDS) if f != "seed"}


def estimate_count(seed_mean: float) -> float:
    return 1.0 / seed_mean if seed_mean > 1e-9 else 0.0


def settle(previous: Aggregate | None, fresh: Aggregate) -> tuple[Aggregate, str]:
    """The network aggregate to show after a period, and what went wrong if anything. A period
    whose averaging never carried the counting village's share here (count 0) keeps the last
    good aggregate - shown with its own age - rather than replacing it by "0 villages"."""
    if fresh.villages or previous is None:
        return fresh, ("" if fresh.villages else "the counting village's share has not reached "
                       "this village yet")
    return previous, (f"this period's averaging did not reach the counting village "
                      f"({fresh.members_last_round} in the last group); the network figures "
                      "shown are from an earlier period")


@dataclass
class TelemetryState:
    local: dict[str, float] = field(default_factory=dict)
    regional: Aggregate | None = None
    network: Aggregate | None = None
    villages_estimate: float = 0.0
    last_error: str = ""


def health_of(*, tier: str, governor: Any, settings: Any, reachability: str,
              personas: tuple[Any, ...], rtts: list[float]) -> Health:
    """This village's health from what the governor, the reachability service, the personas
    and the measured round-trip times say."""
    gov = governor
    return Health(
        online=True, tier=tier,
        cpu_util=min(1.0, gov.cpu_share * gov.duty_cycle) if gov.may_compute else 0.0,
        allowance_in_use=gov.duty_cycle if gov.may_compute else 0.0,
        contributing=gov.may_compute and settings.participate,
        reachability=reachability,
        median_latency_ms=1000 * statistics.median(rtts) if rtts else 0.0,
        personas_active=sum(p.status == "running" for p in personas))


class TelemetryService:
    """`directory.find_closest` tells who counts; `averager.average` runs the rounds;
    `health()` is this village's own health each period."""

    def __init__(self, ctx: ServiceContext, directory: Any, averager: Any,
                 health: Callable[[], Health]) -> None:
        self.ctx = ctx
        self.directory = directory
        self.averager = averager
        self.health = health
        self.state = TelemetryState()

    async def _am_seed(self, epoch: int) -> bool:
        """Whether this village is the one closest to the period's key (it counts as 1)."""
        key = hashlib.sha256(f"telemetry-seed|{epoch}".encode()).digest()
        try:
            closest = await self.directory.find_closest(key)
        except Exception as e:
            log.debug("telemetry: seed lookup failed: %s", e)
            closest = []
        from core.dht.keyspace import kad_id, peer_kad_id

        me = self.ctx.peer_id
        target = kad_id(key)
        mine = peer_kad_id(me) ^ target
        return all(mine < (c.kid ^ target) for c in closest if c.peer_id != me)

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
        own = health_vector(self.health(), seed=await self._am_seed(epoch))
        self.state.local = to_means(own)
        vec = privatize(own, s.telemetry_epsilon, rng)
        # no count yet: the DHT's own estimate sizes the grid (groups of ~sqrt(N), not N/2)
        side = grid_side(self.state.villages_estimate or _size_hint(self.directory))
        levels = (["region/" + s.region[:32]] if s.region else []) + ["network"]
        slots = len(levels) * ROUNDS_PER_LEVEL
        slot = period * 0.8 / slots  # leave a fifth of the period spare
        rounds = 0
        for li, level in enumerate(levels):
            coords = start_coords(self.ctx.peer_id, epoch, side)
            last_est = 0.0
            members = 1
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
                idx = list(res.members).index(self.ctx.peer_id) \
                    if self.ctx.peer_id in res.members else 0
                dim = r % DIMS
                coords = (*coords[:dim], idx % side, *coords[dim + 1:])
                last_est, est = est, estimate_count(float(vec[SEED]))
            unc = abs(est - last_est) / est if est and last_est else 1.0
            agg = Aggregate(to_means(vec), est if level == "network" else 0.0, unc, members,
                            rounds, self.ctx.clock.wall())
            if level != "network":
                self.state.regional = replace(agg, villages=0.0)
                continue
            self.state.network, self.state.last_error = settle(self.state.network, agg)
            if self.state.network.villages:
                self.state.villages_estimate = self.state.network.villages
        log.info("telemetry: ~%.0f villages (±%.0f%%) after %d rounds",
                 self.state.villages_estimate, 100 * (self.state.network.uncertainty
                                                      if self.state.network else 1), rounds)


def _size_hint(directory: Any) -> float:
    estimate = getattr(directory, "size_estimate", None)
    return float(estimate()) if estimate is not None else 0.0
