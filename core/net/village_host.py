"""A village's host as the node runs it: the libp2p host, its NAT client, the probe
protocol, and the circuit relay hop when the settings ask for relay mode."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from core.net.bandwidth import Bandwidth
from core.net.host import GroveHost, open_host
from core.net.nat import open_nat_client
from core.net.relay import open_relay_hop

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_village_host(seed: bytes, s: Any, bandwidth: Bandwidth | None = None
                            ) -> AsyncIterator[tuple[GroveHost, bool]]:
    """(host, serving relay hop) for settings `s`; every connection's bytes counted and
    capped by `bandwidth`; everything closed on exit."""
    import trio

    from core.probe import PROTOCOL, ProbeServer

    async with open_host(seed, s.listen_host, s.listen_port, s.max_connections,
                         bandwidth) as host, \
            AsyncExitStack() as stack:
        host.nat = await stack.enter_async_context(open_nat_client(host))
        host.set_handler(PROTOCOL, ProbeServer(trio.current_time))
        if s.relay_enabled:
            await stack.enter_async_context(open_relay_hop(
                host, max_reservations=s.relay_max_reservations,
                max_circuits=s.relay_max_circuits, circuit_bytes=s.relay_circuit_mb * 2**20,
                circuit_seconds=s.relay_circuit_minutes * 60))
            log.info("relay mode: serving circuit relay v2 (hop)")
        yield host, bool(s.relay_enabled)
