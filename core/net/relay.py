"""Relay mode: py-libp2p's circuit relay v2 hop service, with Grove's limits.

Used by `grove relay` (a public node: relay hop + DHT server + bootstrap). The limits come from
settings; the defaults allow the averaging and SWARM payload sizes (go/js relays cut circuits
after 128 KiB or 2 min by default, which Grove traffic would exceed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.tools.anyio_service import background_trio_service


@asynccontextmanager
async def open_relay_hop(host: Any, *, max_reservations: int, max_circuits: int,
                         circuit_bytes: int, circuit_seconds: int) -> AsyncIterator[None]:
    limits = RelayLimits(duration=circuit_seconds, data=circuit_bytes,
                         max_circuit_conns=max_circuits, max_reservations=max_reservations)
    protocol = CircuitV2Protocol(host._host, limits=limits, allow_hop=True)
    async with background_trio_service(protocol):
        await protocol.event_started.wait()
        yield
