"""Village health telemetry at network scale: `python -m bench.telemetry --villages 32 --json`.

All villages are full Grove nodes (real hosts on loopback, real DHT, real averaging) spread
over `--procs` processes (bench.fleet; one per core by default). Each has a telemetry period of
`--period` seconds and its own health as its node measures it. Measured: the time until every
village's network-wide estimate of the village count is within 5% of the truth, and then each
metric's largest error against the exact mean of the vectors the villages contributed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench import over_repeats
from bench.fleet import Fleet


def _close_enough(views: list[dict[str, Any]], n: int) -> bool:
    return bool(views) and all(v["network"] is not None
                               and abs(v["network"]["villages"] - n) <= 0.05 * n for v in views)


def run(args: argparse.Namespace) -> dict[str, object]:
    n = args.villages
    began = time.monotonic()
    fleet = Fleet(n, args.procs, args.bootstraps, args.seed, args.period)
    try:
        started = time.monotonic() - began
        print(f"{n} villages started in {len(fleet.workers)} processes in {started:.1f} s",
              file=sys.stderr)
        t0 = time.monotonic()
        said = t0
        converged = False
        while True:
            views = [v for r in fleet.ask_all(cmd="telemetry") for v in r["villages"]]
            if _close_enough(views, n):
                converged = True
                break
            if time.monotonic() - t0 > args.timeout:
                break
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                est = [v["network"]["villages"] for v in views if v["network"] is not None]
                print(f"  {said - t0:5.0f} s: {len(est)}/{n} have an estimate"
                      + (f", {min(est):.1f}..{max(est):.1f}" if est else ""), file=sys.stderr)
            time.sleep(1.0)
        took = time.monotonic() - t0
    finally:
        fleet.close()
    locals_ = [v["local"] for v in views if v["local"]]
    truth = {f: sum(loc[f] for loc in locals_) / len(locals_) for f in locals_[0]} \
        if locals_ else {}
    errors = {f: 0.0 for f in truth}
    estimates = []
    for v in views:
        if v["network"] is None:
            continue
        estimates.append(v["network"]["villages"])
        for f, want in truth.items():
            errors[f] = max(errors[f], abs(v["network"]["means"].get(f, 0.0) - want))
    return {
        "villages": n, "period_s": args.period, "processes": len(fleet.workers),
        "converged": converged,
        "seconds_to_count_within_5pct": round(took, 1) if converged else None,
        "count_estimates_min_max": [round(min(estimates), 2), round(max(estimates), 2)]
        if estimates else None,
        "max_abs_error_by_metric": {k: round(v, 4) for k, v in errors.items()},
        "startup_seconds": round(started, 1), "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.telemetry")
    ap.add_argument("--villages", type=int, default=32)
    ap.add_argument("--period", type=int, default=60,
                    help="telemetry period, seconds (gardeners: 300; the demo: 20)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--bootstraps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs; numbers are then the median, with min/median/max under 'spread'")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = over_repeats([run(args) for _ in range(max(1, args.repeats))])
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
