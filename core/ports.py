"""The ports: what a service may use, and nothing more.

Rules: a service receives one frozen `ServiceContext` and only the ports it uses, never the
`Node`. Two transports implement `Transport`: the py-libp2p host (`core.net.host.GroveHost`)
and the simulated network (`core.simnet`). Time comes from the context's clock: `wall()` for
signed timestamps and deadlines peers agree on, `mono()` for timeouts; both are trio's clock
plus an offset under a simulation, so `trio.testing.MockClock` drives every service.
This module holds declarations only: no I/O, no libp2p.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from core.compute import NodeCompute
from core.memory import MemoryBudget

if TYPE_CHECKING:
    from core.net.bandwidth import Bandwidth
    from core.settings_schema import Settings

Handler = Callable[[Any, str], Awaitable[None]]


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the epoch (signed timestamps, deadlines peers agree on)."""

    def mono(self) -> float:
        """Seconds on the trio clock (timeouts, periods)."""


class SystemClock:
    """The real clock: the system's wall time and trio's monotonic time."""

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return trio.current_time()


class TrioClock:
    """Wall time derived from the trio clock (`epoch` + trio time): under MockClock both move
    together and only when the simulation lets them."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def wall(self) -> float:
        return self.epoch + trio.current_time()

    def mono(self) -> float:
        return trio.current_time()


class Stream(Protocol):
    async def read(self, n: int = -1) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...
    async def reset(self) -> None: ...


class PeerLinkLike(Protocol):
    peer_id: str
    multiaddr: str
    kind: str
    rtt: float | None


class NatPort(Protocol):
    """Relay reservations a village behind a NAT holds (`core.net.nat.NatClient`)."""

    reservations: Any

    def circuit_addrs(self, own_peer_id: str) -> list[str]: ...


class Transport(Protocol):
    """Streams to peers by id. Implemented by GroveHost and by the simulated network. `guard`
    (a `core.peer_guard.PeerGuard`, once attached) decides whom it refuses."""

    nat: Any
    guard: Any

    @property
    def peer_id(self) -> str: ...
    def listen_addrs(self) -> list[str]: ...
    def peer_links(self) -> list[Any]: ...
    def connected_peers(self) -> list[Any]: ...
    def known_addrs(self, peer_id: str) -> list[str]: ...
    def remember(self, peer_id: str, addrs: tuple[str, ...] | list[str],
                 ttl: int = 600) -> None: ...
    def is_connected(self, peer_id: str) -> bool: ...
    def connection_kind(self, peer_id: str) -> str: ...
    async def connect(self, address: str, timeout: float = 10.0) -> str: ...
    async def disconnect(self, peer_id: str) -> None: ...
    def set_handler(self, protocol: str, handler: Handler) -> None: ...
    async def open_stream(self, peer_id: str, protocol: str, timeout: float = 10.0) -> Any: ...
    async def ping(self, peer_id: str, timeout: float = 5.0) -> float: ...


class SettingsPort(Protocol):
    """The settings in force, and a wait for the next change (the settings service owns
    them; services only read)."""

    @property
    def current(self) -> Settings: ...
    async def wait_changed(self) -> None: ...


class ReachabilityPort(Protocol):
    """Whether others can dial us: `current.state` is direct, relay-only, unreachable or
    unknown."""

    @property
    def current(self) -> Any: ...
    async def wait_changed(self) -> None: ...


class AdmissionPort(Protocol):
    """Compute admission (the governor): its decision, the gate worker threads pass, and a
    wait for the decision to change."""

    @property
    def decision(self) -> Any: ...
    @property
    def gate(self) -> Any: ...
    @property
    def tier(self) -> Any: ...
    async def wait_decision_changed(self) -> None: ...
    def device_for(self, need_bytes: int) -> Any:
        """Where a job needing `need_bytes` on its device runs now (core.device)."""
    @property
    def probed(self) -> Any:
        """A trio.Event set once the hardware was probed (before it, the tier is a guess)."""


class Personas(Protocol):
    @property
    def current(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class ServiceContext:
    """What every service may know of the village it runs in.

    `sign(bytes) -> bytes` signs with the village key; `penalise(peer, reason)` records a
    misbehaviour (the trust layer decides what follows); `rng` is seeded per village."""

    peer_id: str
    sign: Callable[[bytes], bytes]
    data_dir: Path
    rng: random.Random
    clock: Clock
    settings_port: SettingsPort
    penalise: Callable[[str, str], None]
    transport: Transport
    bandwidth: Bandwidth | None = None
    memory: MemoryBudget = field(default_factory=MemoryBudget)  # the RAM cap, enforced
    compute: NodeCompute = field(default_factory=NodeCompute)  # the node thread's compute

    @property
    def settings(self) -> Settings:
        return self.settings_port.current

    async def wait_for_change(self, timeout: float, *others: Callable[[], Awaitable[Any]]
                              ) -> None:
        """Until the settings (or any of `others`) change, or `timeout` passes."""
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as wait:
                async def on(waiter: Callable[[], Awaitable[Any]]) -> None:
                    await waiter()
                    wait.cancel_scope.cancel()

                wait.start_soon(on, self.settings_port.wait_changed)
                for other in others:
                    wait.start_soon(on, other)
