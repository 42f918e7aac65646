"""Many simulated villages in one trio loop: the real services (discovery, reachability,
the DHT with its village record, averaging, telemetry) over `SimHost`s, each village with its
own key, context, seeded RNG and settings. Run it under
`trio.testing.MockClock(autojump_threshold=0)`: the same seed gives the same run.

`World.seed_scheduler(seed)` also makes trio's own scheduler deterministic (private
attributes of trio 0.35, the ones its Hypothesis plugin sets): each batch of runnable tasks
is sorted by creation and shuffled with a seeded RNG. Seeding alone was not enough: trio
breaks ties between equal deadlines by `id()` of the cancel scope, a memory address, so two
runs with one seed woke simultaneous sleepers in different orders. And that RNG is one
module-level `random.Random` for every trio run in the process: a trio loop in another
thread (a real village a test left running) drew from it between our draws, so the same
seed gave another run. `seed_scheduler` gives each thread its own.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from core import probe
from core.averaging.service import AveragingService
from core.dht.keyspace import peer_id_from_public_key
from core.dht.service import DhtService
from core.discovery import DiscoveryService
from core.identity import VillageKey
from core.peer_guard import PeerGuard
from core.ports import ServiceContext, TrioClock
from core.reachability import ReachabilityService
from core.settings_schema import Settings
from core.settings_service import FixedSettings
from core.simnet.host import SimHost
from core.simnet.network import LinkSpec, SimNetwork, jittered
from core.telemetry import Health, TelemetryService
from core.tiers import compute_tier
from core.village import VillageRecordSource

log = logging.getLogger(__name__)

EPOCH = 1_800_000_000.0  # the simulated wall clock at trio time 0 (a fixed date: one seed,
                         # one run; records are signed and checked against it)
BOOTSTRAPS = 3


@dataclass
class SimVillage:
    index: int
    key: VillageKey
    host: SimHost
    ctx: ServiceContext
    dht: DhtService
    discovery: DiscoveryService
    reachability: ReachabilityService
    averaging: AveragingService
    telemetry: TelemetryService
    guard: PeerGuard
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    running: bool = False

    @property
    def peer_id(self) -> str:
        return self.host.peer_id


class World:
    """`net` is the simulated network; `villages` every village ever started (crashed ones
    keep their place, `alive()` lists the running ones)."""

    def __init__(self, seed: int = 0, *, nat_share: float = 0.0, link: LinkSpec | None = None,
                 settings: dict[str, Any] | None = None, max_reservations: int = 8) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.net = SimNetwork(seed, link)
        self.nat_share = nat_share
        self.max_reservations = max_reservations
        self.overrides = {"listen_host": "127.0.0.1", "listen_port": 4001, "mdns": False,
                          "use_default_bootstrap": False, "participate": True,
                          **(settings or {})}
        self.villages: list[SimVillage] = []
        self.last_moshpit_exact = 0.0  # share of villages exact after the last Moshpit run
        self.bootstrap: tuple[str, ...] = ()
        self.clock = TrioClock(EPOCH)
        self._nursery: trio.Nursery | None = None
        self._tier = compute_tier([], nvml_reason="a simulated village has no GPU",
                                  use_gpu=False, allowed_gpus=(), vram_cap_mb=0)

    @staticmethod
    def seed_scheduler(seed: int) -> None:
        import trio._core._run as run  # private: see the module docstring

        run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
        if not isinstance(run._r, _PerThreadRandom):
            run._r = _PerThreadRandom()  # type: ignore[misc]
        run._r.seed(seed)

    def alive(self) -> list[SimVillage]:
        return [v for v in self.villages if v.running]

    def make_village(self, *, behind_nat: bool | None = None) -> SimVillage:
        i = len(self.villages)
        key = VillageKey(self.rng.randbytes(32))
        pid = peer_id_from_public_key(key.public_bytes)
        nat = (self.rng.random() < self.nat_share) if behind_nat is None else behind_nat
        if i < BOOTSTRAPS:
            nat = False
        address = f"/ip4/127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/tcp/4001"
        host = SimHost(self.net, pid, address, behind_nat=nat, relay_hop=not nat,
                       max_reservations=self.max_reservations)
        self.net.access[pid] = jittered(self.rng, self.net.default_link)
        settings = Settings().with_changes(**{**self.overrides, "bootstrap": self.bootstrap})
        guard = PeerGuard(self.clock)
        guard.attach(host)
        host.set_handler(probe.PROTOCOL, probe.ProbeServer(trio.current_time))
        ctx = ServiceContext(pid, key.sign, _no_dir(), random.Random(self.rng.random()),
                             self.clock, FixedSettings(settings), guard.penalise, host)
        reach = ReachabilityService(ctx)
        record = VillageRecordSource(ctx, tier=lambda: self._tier, relay_hop=lambda: host.relay_hop,
                                     changes=(reach.wait_changed,))
        dht = DhtService(ctx, record)
        dht.withdraw_on_stop = False
        reach.relay_records = dht.relay_records
        discovery = DiscoveryService(ctx, lambda: len(dht.table) if dht.table is not None else 0)
        averaging = AveragingService(ctx, dht, reach)

        def health() -> Health:
            return Health(tier="cpu", contributing=True, reachability=reach.current.state)

        telemetry = TelemetryService(ctx, dht, averaging, health)
        v = SimVillage(i, key, host, ctx, dht, discovery, reach, averaging, telemetry, guard)
        self.villages.append(v)
        if i < BOOTSTRAPS:
            self.bootstrap = (*self.bootstrap, host.listen_addrs()[0])
        return v

    async def run_village(self, v: SimVillage) -> None:
        with v.scope:
            async with trio.open_nursery() as nursery:
                v.host.nursery = nursery
                v.running = True
                for service in (v.guard, v.discovery, v.dht, v.reachability, v.averaging,
                                v.telemetry):
                    nursery.start_soon(service.run)
        v.running = False

    async def start(self, n: int, nursery: trio.Nursery, stagger: float = 0.0) -> None:
        """Start `n` more villages, `stagger` s of simulated time apart."""
        for _ in range(n):
            v = self.make_village()
            nursery.start_soon(self.run_village, v)
            if stagger:
                await trio.sleep(stagger)
        await trio.lowlevel.checkpoint()

    def crash(self, v: SimVillage) -> None:
        """The village stops without a goodbye (its record is not withdrawn)."""
        self.net.crash(v.peer_id)
        v.running = False
        v.scope.cancel()


class _PerThreadRandom(random.Random):
    """trio's scheduler RNG, one stream per thread (trio calls seed, random, shuffle and
    uniform on it)."""

    def __init__(self) -> None:
        self._local = threading.local()
        super().__init__()

    def _mine(self) -> random.Random:
        r = getattr(self._local, "r", None)
        if r is None:
            r = self._local.r = random.Random()
        return r

    def seed(self, a: Any = None, version: int = 2) -> None:
        if hasattr(self, "_local"):  # random.Random.__init__ seeds before _local exists
            self._mine().seed(a, version)

    def random(self) -> float:
        return self._mine().random()

    def getrandbits(self, k: int) -> int:
        return self._mine().getrandbits(k)


def _no_dir() -> Any:
    """A simulated village has no data folder: its services that would write one are not
    run here (the DHT, averaging and telemetry keep everything in memory)."""
    from pathlib import Path

    return Path("/nonexistent/simulated-village")
