"""How well the governor holds the gardener's CPU share, and how fast a pause stops work.

`python -m bench.governor --json` runs the synthetic job through the governor for
`--seconds` (default 20) at CPU shares 25%, 50% and 75%, measuring the process's own CPU
time / wall time / logical cores; then pauses and resumes the job `--pauses` times and
measures how long after each pause the last piece of work ended.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

import psutil


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.governor")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--shares", default="25,50,75")
    ap.add_argument("--pauses", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from core.compute import ComputeGate
    from core.governor import GovernorMemory, Readings, decide
    from core.settings_schema import Settings
    from core.workload import SyntheticJob

    cores = os.cpu_count() or 1
    now = time.time()
    lt = time.localtime(now)
    readings = Readings(now=now, weekday=lt.tm_wday, minute_of_day=lt.tm_hour * 60 + lt.tm_min,
                        cores=cores)
    targets, measured, plans = [], [], []
    for share in (int(s) for s in args.shares.split(",")):
        decision, _ = decide(Settings().with_changes(cpu_share=share), readings,
                             GovernorMemory(), participating=True, paused_until=None)
        gate = ComputeGate(decision)
        job = SyntheticJob(gate, max_threads=cores)
        job.start()
        time.sleep(1.0)  # warm-up: calibration and thread start
        c0, w0 = _cpu(), time.monotonic()
        time.sleep(args.seconds)
        c1, w1 = _cpu(), time.monotonic()
        job.stop()
        targets.append(share)
        measured.append(round((c1 - c0) / (w1 - w0) / cores * 100, 2))
        plans.append({"threads": decision.threads, "duty_cycle": round(decision.duty_cycle, 3)})
        print(f"share {share}%: measured {measured[-1]}%", file=sys.stderr)

    decision, _ = decide(Settings().with_changes(cpu_share=50), readings, GovernorMemory(),
                         participating=True, paused_until=None)
    paused = replace(decision, may_compute=False, rule="pause", reason="bench")
    gate = ComputeGate(decision)
    job = SyntheticJob(gate, max_threads=cores)
    job.start()
    latencies = []
    for _ in range(args.pauses):
        time.sleep(0.5)
        t0 = time.monotonic()
        gate.set_decision(paused)
        while gate.stats().running_threads:
            time.sleep(0.001)
        last = gate.stats().last_progress_at or t0
        latencies.append(max(0.0, last - t0))
        time.sleep(0.3)
        assert gate.stats().last_progress_at == last, "work continued while paused"
        gate.set_decision(decision)
    job.stop()

    result = {
        "cores": cores,
        "seconds_per_share": args.seconds,
        "cpu_share_target": targets,
        "cpu_share_measured": measured,
        "abs_error": [round(abs(m - t), 2) for m, t in zip(measured, targets, strict=True)],
        "max_abs_error": round(max(abs(m - t) for m, t in zip(measured, targets, strict=True)),
                               2),
        "plans": plans,
        "pause_latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "pause_latency_ms_max": round(max(latencies) * 1000, 1),
        "pauses": args.pauses,
        "torch": torch.__version__,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
