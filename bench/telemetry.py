"""Village health telemetry at network scale: `python -m bench.telemetry --villages 32 --json`.

All villages are full Grove nodes (real hosts on loopback, real DHT, real averaging) in ONE
process. Each has a telemetry period of `--period` seconds and distinct, known health (a
seeded share of them contributing, their tiers as the hardware gives them). Measured: the time
until every village's estimate of the village count is within 5% of the truth, and then each
metric's largest error against the exact mean over all villages.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil
import trio


async def run(args: argparse.Namespace) -> dict[str, object]:
    from core.telemetry import FIELDS, health_vector, to_means
    from tests.nodes import trio_villages, trio_wait_for

    n = args.villages
    async with trio_villages(Path(tempfile.mkdtemp(prefix="grove-bench-tm-")), n, prefix="t",
                             telemetry_period_s=args.period) as nodes:
        began = time.monotonic()

        def close_enough() -> bool:
            return all(x.telemetry.state.network is not None
                       and abs(x.telemetry.state.network.villages - n) <= 0.05 * n
                       for x in nodes)

        converged = True
        try:
            await trio_wait_for(close_enough, args.timeout, "village count estimates")
        except AssertionError:
            converged = False
        took = time.monotonic() - began
        truth: dict[str, float] = {}
        vecs = [health_vector(x.telemetry._health(), seed=False) for x in nodes]
        import numpy as np

        truth = to_means(np.mean(vecs, axis=0))
        errors = {f: 0.0 for f in truth}
        estimates = []
        for x in nodes:
            agg = x.telemetry.state.network
            if agg is None:
                continue
            estimates.append(agg.villages)
            for f in truth:
                errors[f] = max(errors[f], abs(agg.means.get(f, 0.0) - truth[f]))
    return {
        "villages": n, "period_s": args.period, "processes": 1, "converged": converged,
        "seconds_to_count_within_5pct": round(took, 1) if converged else None,
        "count_estimates_min_max": [round(min(estimates), 2), round(max(estimates), 2)]
        if estimates else None,
        "max_abs_error_by_metric": {k: round(v, 4) for k, v in errors.items()},
        "fields": [f for f in FIELDS if f != "seed"], "cpu_count": psutil.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.telemetry")
    ap.add_argument("--villages", type=int, default=32)
    ap.add_argument("--period", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    out = trio.run(run, args)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
