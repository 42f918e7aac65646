"""The built-in synthetic compute job: torch matmuls through the governor's gate.

Used by `grove limits test`, the tray's "test my limits" and `bench.governor`. Imports torch,
so the node imports this module only when the job starts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from core.compute import ComputeGate, GateClosed, apply_torch_limits

PIECE_SECONDS = 0.01  # target duration of one piece of work between checkpoints


@dataclass(frozen=True)
class JobResult:
    seconds: float
    pieces: int
    device: str


class SyntheticJob:
    """Runs `max_threads` worker threads (the gate decides how many actually work)."""

    def __init__(self, gate: ComputeGate, max_threads: int, device: str = "cpu",
                 size: int = 192) -> None:
        self.gate = gate
        self.max_threads = max(1, max_threads)
        self.device = device
        self.size = size
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        apply_torch_limits(self.gate.decision, torch, self.gate.ordinals)
        for i in range(self.max_threads):
            t = threading.Thread(target=self._work, args=(i,), name=f"grove-compute-{i}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def request_stop(self) -> None:
        """Non-blocking: workers return at their next checkpoint."""
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self.join(timeout)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _work(self, index: int) -> None:
        try:
            a = torch.randn(self.size, self.size, device=self.device)
            b = torch.randn(self.size, self.size, device=self.device)
            reps = self._calibrate(a, b)
            with self.gate.slot(index, self._stop) as slot:
                slot.start()
                while not self._stop.is_set():
                    for _ in range(reps):
                        a = torch.tanh(a @ b)
                    if self.device != "cpu":
                        torch.cuda.synchronize()
                    slot.checkpoint()
        except GateClosed:
            return
        except BaseException as e:  # surfaced by the caller; a worker never kills the node
            self.error = e

    def _calibrate(self, a: torch.Tensor, b: torch.Tensor) -> int:
        began = time.perf_counter()
        for _ in range(3):
            a = torch.tanh(a @ b)
        one = (time.perf_counter() - began) / 3
        return max(1, int(PIECE_SECONDS / max(one, 1e-6)))


def run_for(gate: ComputeGate, seconds: float, max_threads: int) -> JobResult:
    job = SyntheticJob(gate, max_threads)
    before = gate.stats().progress
    began = time.monotonic()
    job.start()
    try:
        time.sleep(seconds)
    finally:
        job.stop()
    if job.error is not None:
        raise job.error
    return JobResult(time.monotonic() - began, gate.stats().progress - before, job.device)
