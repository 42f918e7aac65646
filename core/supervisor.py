"""Run a node's services; restart a crashed one with backoff, never let it kill the node."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import trio

from core.backoff import backoff_delay
from core.snapshot import ServiceFailed, ServiceStatus

log = logging.getLogger(__name__)

STABLE_AFTER = 60.0  # a service that ran this long has its failure count reset


class Supervisor:
    """Runs services and keeps a `ServiceStatus` per service for the snapshot."""

    def __init__(self, emit: Callable[[ServiceFailed], None], rng: random.Random) -> None:
        self._emit = emit
        self._rng = rng
        self.status: dict[str, ServiceStatus] = {}

    async def run(self, name: str, service: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            self.status[name] = ServiceStatus(name, "running",
                                              restarts=self.status.get(name, _NEW).restarts)
            started = trio.current_time()
            try:
                await service()
            except Exception as e:  # a crashed service, never the node
                if trio.current_time() - started > STABLE_AFTER:
                    failures = 0
                failures += 1
                delay = backoff_delay(failures, self._rng)
                error = f"{type(e).__name__}: {e}"
                log.error("service %s crashed (%s); restarting in %.1f s", name, error, delay,
                          exc_info=True)
                self.status[name] = ServiceStatus(name, "restarting", error,
                                                  self.status[name].restarts + 1)
                self._emit(ServiceFailed(service=name, error=error, restart_in=delay))
                await trio.sleep(delay)
            else:
                self.status[name] = ServiceStatus(name, "stopped",
                                                  restarts=self.status[name].restarts)
                return


_NEW = ServiceStatus("", "new")
