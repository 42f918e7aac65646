"""Enforcing the governor's decision on compute threads.

`ComputeGate` is shared by the node (which sets the decision) and every worker thread
(which calls `slot.checkpoint()` between small pieces of work). A checkpoint:
- parks the thread while compute may not run (pause, battery, schedule, idle…), waking as
  soon as the decision allows it again;
- parks threads beyond the decision's thread count;
- sleeps just long enough to hold the thread's duty cycle, measured on the thread's own CPU
  time, so the machine-wide share is smooth rather than a sawtooth.
Compute the node runs on its own thread (robust reductions of averaging slices, packing
tensors) is counted by `NodeCompute` and comes out of the same share: the workers' duty cycle
is lowered by what the node's thread spent over the last CHARGE_WINDOW seconds.
Thread-safe; no trio here. `torch.set_num_threads` and the CUDA memory fraction are applied
by `apply_torch_limits` when a compute user imports torch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.governor import Decision

MAX_SLEEP = 0.25  # a parked or throttled thread re-checks the gate at least this often
WINDOW = 2.0  # duty-cycle accounting restarts after this much wall time
CHARGE_WINDOW = 5.0  # s over which the node thread's compute is averaged
MIN_DUTY = 0.02  # workers never stop outright for the node's own work (a rule parks them)


class NodeCompute:
    """CPU seconds the node's own thread spends on compute, counted against the CPU share.
    Thread-safe; `counted()` measures the calling thread's CPU time across a block."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, float]] = deque()  # (monotonic, CPU seconds)
        self.total = 0.0

    @contextmanager
    def counted(self) -> Iterator[None]:
        t0 = time.thread_time()
        try:
            yield
        finally:
            self.add(time.thread_time() - t0)

    def add(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._spent.append((now, seconds))
            self.total += seconds
            self._prune(now)

    def rate(self, now: float | None = None) -> float:
        """Cores the node's thread spent on compute over the last CHARGE_WINDOW s."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(now)
            return sum(s for _, s in self._spent) / CHARGE_WINDOW

    def _prune(self, now: float) -> None:
        while self._spent and self._spent[0][0] < now - CHARGE_WINDOW:
            self._spent.popleft()


@dataclass(frozen=True)
class ComputeStats:
    running_threads: int
    progress: int  # pieces of work done since the gate was made
    last_progress_at: float | None  # monotonic
    parked_since: float | None  # monotonic: when the last thread parked on a "no"


class ComputeGate:
    def __init__(self, decision: Decision, node: NodeCompute | None = None) -> None:
        self.node = node
        self.ordinals: dict[int, int] = {}  # NVML index -> CUDA ordinal (set by the governor)
        self._cond = threading.Condition()
        self._decision = decision
        self._generation = 0
        self._progress = 0
        self._last_progress_at: float | None = None
        self._running: set[int] = set()
        self._parked_since: float | None = None
        self._closed = False

    @property
    def decision(self) -> Decision:
        return self._decision

    def worker_duty(self, now: float | None = None) -> float:
        """Each worker's duty cycle: the decision's, less its part of what the node's own
        thread spent on compute lately (the machine-wide share covers both)."""
        d = self._decision
        if self.node is None:
            return d.duty_cycle
        spent = self.node.rate(now)
        if spent <= 0:
            return d.duty_cycle
        return max(MIN_DUTY, d.duty_cycle - spent / max(1, d.threads))

    def set_decision(self, decision: Decision) -> None:
        """Any thread. Parked workers wake at once."""
        with self._cond:
            self._decision = decision
            self._generation += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every worker with `GateClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stats(self) -> ComputeStats:
        with self._cond:
            return ComputeStats(len(self._running), self._progress, self._last_progress_at,
                                self._parked_since)

    @contextmanager
    def slot(self, index: int, stop: threading.Event | None = None) -> Iterator[Slot]:
        """A worker thread's place at the gate; `index` orders threads (0 runs first).
        Setting `stop` makes the slot raise GateClosed at its next checkpoint or wait."""
        s = Slot(self, index, stop or threading.Event())
        try:
            yield s
        finally:
            with self._cond:
                self._running.discard(index)

    # -- used by Slot ------------------------------------------------------------------------
    def _wait_allowed(self, index: int, stop: threading.Event) -> None:
        with self._cond:
            while True:
                if self._closed or stop.is_set():
                    self._running.discard(index)
                    raise GateClosed
                d = self._decision
                if d.may_compute and index < d.threads:
                    self._running.add(index)
                    return
                self._running.discard(index)
                if not self._running and self._parked_since is None:
                    self._parked_since = time.monotonic()
                self._cond.wait(MAX_SLEEP)

    def _count(self) -> None:
        with self._cond:
            self._progress += 1
            self._last_progress_at = time.monotonic()
            self._parked_since = None


class GateClosed(Exception):
    """The gate was closed: the worker should return."""


class Slot:
    def __init__(self, gate: ComputeGate, index: int, stop: threading.Event) -> None:
        self.gate = gate
        self.index = index
        self.stop = stop
        self._cpu0 = time.thread_time()
        self._wall0 = time.monotonic()
        self._generation = -1

    def checkpoint(self) -> None:
        """Call between pieces of work: counts the piece done, then parks or throttles."""
        self.gate._count()
        self._throttle()
        self.gate._wait_allowed(self.index, self.stop)
        if self.gate._generation != self._generation:  # a new decision: restart accounting
            self._generation = self.gate._generation
            self._reset()

    def start(self) -> None:
        """Call once before the first piece of work."""
        self.gate._wait_allowed(self.index, self.stop)
        self._generation = self.gate._generation
        self._reset()

    def _reset(self) -> None:
        self._cpu0 = time.thread_time()
        self._wall0 = time.monotonic()

    def _throttle(self) -> None:
        duty = self.gate.worker_duty()
        if duty >= 0.999:
            return
        busy = time.thread_time() - self._cpu0
        while True:
            owed = busy / duty - (time.monotonic() - self._wall0)
            if owed <= 0:
                break
            time.sleep(min(owed, MAX_SLEEP))
            d = self.gate.decision
            if not d.may_compute or self.index >= d.threads or self.stop.is_set():
                break  # the gate parks us; no need to finish the sleep
        if time.monotonic() - self._wall0 > WINDOW:
            self._reset()


@dataclass(frozen=True)
class CudaFacts:
    """What torch can reach: each CUDA device's UUID and compute capability, by ordinal."""

    uuids: tuple[str, ...] = ()
    capability: tuple[tuple[int, int], ...] = ()
    reason: str = ""


def probe_cuda() -> CudaFacts:
    """The CUDA devices torch sees (imports torch; none without a CUDA build or driver)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return CudaFacts(reason="torch has no usable CUDA here")
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        return CudaFacts(tuple(str(getattr(p, "uuid", "")) for p in props),
                         tuple((int(p.major), int(p.minor)) for p in props))
    except Exception as e:  # a broken driver or build: the CPU, and why
        return CudaFacts(reason=f"CUDA could not be probed: {e}"[:200])


def apply_torch_limits(decision: Decision, torch: Any,
                       ordinals: Mapping[int, int] | None = None) -> None:
    """One intra-op thread per worker (the gate runs the threads) and the VRAM fraction of
    each GPU torch can reach (`ordinals`: NVML index -> CUDA ordinal, matched by UUID; the
    decision names GPUs by NVML index, which is not CUDA's numbering)."""
    from core.device import vram_fractions

    torch.set_num_threads(1)
    if ordinals and torch.cuda.is_available():
        count = torch.cuda.device_count()
        for ordinal, fraction in vram_fractions(decision.vram_fraction, ordinals).items():
            if ordinal < count:
                torch.cuda.set_per_process_memory_fraction(fraction, ordinal)
