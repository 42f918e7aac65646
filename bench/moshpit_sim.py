"""The pure Moshpit core simulated at network scale, in one process, with a seeded RNG.

    python -m bench.moshpit_sim --peers 1024 --json [--fail-prob 0.004] [--live 900]

Grid mode (Grove's matchmaking rule) on a `--side`-sided grid (`auto`: the smallest side whose
square holds the live peers, as Grove sizes its grid from the village-count estimate), and
random regrouping (a fresh random partition into groups of `--side` each round), whose
per-round factor on the mean squared spread is compared with (r-1)/(N-1), r = number of groups.
`spread_ratio_by_round` is the RMS distance to the true mean over the initial one;
`mse_ratio_by_round` is its square.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys

import numpy as np

from core.averaging.moshpit import simulate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.moshpit_sim")
    ap.add_argument("--peers", type=int, default=1024, help="grid cells (side**dims)")
    ap.add_argument("--live", type=int, default=0, help="live peers (0: all --peers)")
    ap.add_argument("--dims", type=int, default=2)
    ap.add_argument("--side", default="32", help="grid side, or 'auto'")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--fail-prob", type=float, default=0.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n = args.live or args.peers
    side = (math.ceil(n ** (1 / args.dims) - 1e-9) if args.side == "auto" else int(args.side))

    def run(mode: str, placement: str) -> list[float]:
        runs = []
        for seed in range(args.seeds):
            values = np.random.default_rng(seed).normal(size=(n, 4))
            runs.append(simulate(values, dims=args.dims, side=side, rounds=args.rounds,
                                 fail_prob=args.fail_prob, rng=random.Random(seed), mode=mode,
                                 placement=placement))
        return [float(np.exp(np.mean(np.log(np.maximum([r[i] for r in runs], 1e-300)))))
                for i in range(args.rounds)]

    grid = run("grid", "fill" if n == side ** args.dims else "random")
    rand = run("random", "random")
    groups = math.ceil(n / side)
    expected = (groups - 1) / (n - 1)
    factors = [(rand[i] / (rand[i - 1] if i else 1.0)) ** 2 for i in range(min(4, args.rounds))]
    factors = [f for f in factors if f > 0]
    measured = float(np.exp(np.mean(np.log(factors)))) if factors else 0.0
    exact_after = next((i + 1 for i, s in enumerate(grid) if s < 1e-12), None)
    out = {
        "peers": n, "grid": f"{side}^{args.dims}", "fail_prob": args.fail_prob,
        "rounds": args.rounds, "seeds": args.seeds,
        "spread_ratio_by_round": [float(f"{s:.3g}") for s in grid],
        "mse_ratio_by_round": [float(f"{s * s:.3g}") for s in grid],
        "exact_after_rounds": exact_after,
        "random_regrouping": {
            "spread_ratio_by_round": [float(f"{s:.3g}") for s in rand],
            "mse_factor_per_round": float(f"{measured:.4g}"),
            "expected_(r-1)/(N-1)": float(f"{expected:.4g}"),
            "deviation": float(f"{measured / expected - 1:.3f}") if expected else None,
        },
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
