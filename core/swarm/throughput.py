"""What a block server can offer, in samples per second through its span.

Compute: forward, and forward + backward + optimizer step, of one block on the server's device,
timed over a few batches after a warm-up, unthrottled; the governor's duty cycle then scales it
(a village that gives the network half a core offers half). Network: what the gardener's
bandwidth caps let through, counting each sample's activations in and out; without caps, what
served requests actually moved (measured as they arrive), and until then nothing limits it.
The server advertises min(compute, network), halved when it is reachable only through a relay (every
byte crosses the relay twice). Measurements are cached per model, device, dtype and thread
count in the village's data directory, so a restart does not re-measure; a new thread count
(a limits change) is a new key and is measured again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.swarm.model import ModelSpec, build_block

log = logging.getLogger(__name__)

RELAY_DISCOUNT = 0.5
CACHE_FILE = "swarm_throughput.json"
BENCH_BATCH = 16
EWMA = 0.2  # weight of the newest network measurement


@dataclass(frozen=True)
class ComputeSpeed:
    forward: float  # samples/s, one block, unthrottled
    train: float    # samples/s, forward + backward + optimizer step, one block, unthrottled


def cache_key(spec: ModelSpec, device: str, dtype: str, threads: int) -> str:
    return f"{spec.name}|{device}|{dtype}|{threads}"


def measure_compute(spec: ModelSpec, device: str = "cpu", batch: int = BENCH_BATCH,
                    seconds: float = 0.5) -> ComputeSpeed:
    """Time one block (run in a worker thread: it computes for about twice `seconds`)."""
    block = build_block(spec, 0).to(device)
    x = torch.randn(batch, spec.seq, spec.hidden, device=device)

    def rate(step: object) -> float:
        """The best of three timed rounds: interference (the node's own start-up, another
        program) only ever slows a round down."""
        step()  # type: ignore[operator]  # warm-up
        best = 0.0
        for _ in range(3):
            n, t0 = 0, time.perf_counter()
            while n < 2 or time.perf_counter() - t0 < seconds / 3:
                step()  # type: ignore[operator]
                n += 1
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = max(best, n * batch / (time.perf_counter() - t0))
        return best

    def forward() -> None:
        with torch.no_grad():
            block(x)

    xg = x.clone().requires_grad_(True)
    opt = torch.optim.Adam(block.parameters(), lr=1e-9)

    def train() -> None:  # what a training backward costs a server: forward, backward, step
        block.zero_grad(set_to_none=True)
        block(xg).sum().backward()
        torch.nn.utils.clip_grad_norm_(block.parameters(), 1.0)
        opt.step()

    return ComputeSpeed(forward=rate(forward), train=rate(train))


def load_cached(data_dir: Path, key: str) -> ComputeSpeed | None:
    try:
        got = json.loads((data_dir / CACHE_FILE).read_text()).get(key)
        return ComputeSpeed(float(got["forward"]), float(got["train"])) if got else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or damaged: measure again


def save_cached(data_dir: Path, key: str, speed: ComputeSpeed) -> None:
    path = data_dir / CACHE_FILE
    try:
        held = json.loads(path.read_text())
        if not isinstance(held, dict):
            held = {}
    except (OSError, ValueError):
        held = {}
    held[key] = asdict(speed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(held, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a crash leaves the old cache or the new one, never half


def sample_bytes(spec: ModelSpec) -> int:
    """Bytes one sample's activations take on the wire (float32)."""
    return spec.seq * spec.hidden * 4


def network_speed(spec: ModelSpec, upload_bps: int | None, download_bps: int | None,
                  measured_bps: float | None) -> float:
    """Samples/s the village's network lets through (in and out); inf when nothing limits."""
    caps = [c for c in (upload_bps, download_bps) if c]
    bps = min(caps) if caps else measured_bps
    if not bps:
        return float("inf")
    return bps / sample_bytes(spec)


def advertised(compute: float, duty_cycle: float, network: float, relay_only: bool) -> float:
    """min(compute scaled by the duty cycle, network), discounted behind a relay."""
    offer = min(compute * max(0.0, min(1.0, duty_cycle)), network)
    return offer * (RELAY_DISCOUNT if relay_only else 1.0)


def update_measured(old: float | None, nbytes: int, seconds: float) -> float | None:
    """EWMA of the bytes/s a served request moved (ignores transfers too short to time)."""
    if seconds <= 1e-4 or nbytes <= 0:
        return old
    rate = nbytes / seconds
    return rate if old is None else (1 - EWMA) * old + EWMA * rate
