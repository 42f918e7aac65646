""""Test my limits": run the synthetic job through the governor and measure what it used.

Service layer (node thread). torch is imported in a worker thread, only when a test starts,
so the node and the tray start without it.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import TYPE_CHECKING, Any

import psutil
import trio

from core.errors import GardenerError

if TYPE_CHECKING:
    from core.ports import AdmissionPort

MAX_SECONDS = 600.0


def process_cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


class TestJobRunner:
    def __init__(self, admission: AdmissionPort) -> None:
        self.admission = admission
        self.running = False
        self.last_result = ""
        self._job: Any = None

    async def run(self, seconds: float) -> dict[str, Any]:
        if self.running:
            raise GardenerError("A limits test is already running.", "Wait for it to finish.")
        if not 0 < seconds <= MAX_SECONDS:
            raise GardenerError(f"A limits test of {seconds:g} s is out of range.",
                                f"Choose 1 to {MAX_SECONDS:g} seconds.")
        self.running = True
        gate = self.admission.gate
        cores = os.cpu_count() or 1
        try:
            workload = await trio.to_thread.run_sync(importlib.import_module, "core.workload")
            self._job = workload.SyntheticJob(gate, max_threads=cores)
            await trio.to_thread.run_sync(self._job.start)
            pieces0 = gate.stats().progress
            cpu0, wall0 = process_cpu_seconds(), time.monotonic()
            await trio.sleep(seconds)
            cpu1, wall1 = process_cpu_seconds(), time.monotonic()
            pieces = gate.stats().progress - pieces0
        finally:
            await self.stop()
        decision = gate.decision
        measured = (cpu1 - cpu0) / (wall1 - wall0) / cores
        result = {"seconds": round(wall1 - wall0, 2), "pieces": pieces,
                  "cpu_share_target": round(decision.cpu_share * 100, 1),
                  "cpu_share_measured": round(measured * 100, 1),
                  "threads": decision.threads, "duty_cycle": round(decision.duty_cycle, 3),
                  "may_compute": decision.may_compute, "reason": decision.reason}
        if decision.may_compute:
            self.last_result = (f"used {result['cpu_share_measured']}% of this computer for "
                                f"{result['seconds']:g} s (your limit: "
                                f"{result['cpu_share_target']:g}%)")
        else:
            self.last_result = f"compute did not run: {decision.reason}"
        return result

    async def stop(self) -> None:
        """Stop the job's threads and wait for them, even when the caller is cancelled."""
        job, self._job = self._job, None
        if job is not None:
            job.request_stop()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(job.join)
        self.running = False
