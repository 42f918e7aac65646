"""Sybil resistance of the credit policy: `python -m bench.sybil --honest 100 --sybils 50 --json`.

A simulated receipt graph (no network): honest villages do work for each other (each consumes
from `--honest-degree` random honest villages, units drawn from a log-normal); `--pretrusted`
of them are Foundation nodes. A Sybil ring of `--sybils` identities signs receipts for each
other - `--ring-inflation` times more work per edge than honest villages, every pair - and
does a little real work for `--bridges` honest villages, who sign for it (the honest-looking
edges). Credits honoured = units x rate, capped by the worker's EigenTrust relative to an
average village (`core.ledger.policy.honoured`). Fields: `sybil_credit_share` (of all honoured
credit), `honest_credit_share`, `sybil_identity_share`, and the same without trust weighting
(`unweighted_sybil_share`: what the ring would get if every signature counted).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict

from core.ledger import policy


def simulate(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    honest = [f"h{i}" for i in range(args.honest)]
    sybils = [f"s{i}" for i in range(args.sybils)]
    pretrusted = honest[:args.pretrusted]
    received: dict[tuple[str, str], float] = defaultdict(float)  # (consumer, worker) -> units
    for c in honest:
        for w in rng.sample([h for h in honest if h != c], args.honest_degree):
            received[(c, w)] += rng.lognormvariate(5, 1)
    for c in sybils:
        for w in sybils:
            if w != c:
                received[(c, w)] += args.ring_inflation * rng.lognormvariate(5, 1)
    for _ in range(args.bridges):  # a little real work for honest villages, who sign for it
        received[(rng.choice(honest), rng.choice(sybils))] += rng.lognormvariate(5, 1)
    trust = policy.global_trust(received, pretrusted, alpha=args.alpha)
    n = len(honest) + len(sybils)
    by_worker: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (c, w), units in received.items():
        by_worker[w][c] += policy.credits("swarm", round(units))
    raw = {w: sum(cs.values()) for w, cs in by_worker.items()}
    honoured = policy.honoured(raw, trust)
    total = sum(honoured.values())
    raw_total = sum(raw.values())
    syb = sum(v for w, v in honoured.items() if w.startswith("s"))
    return {
        "honest": args.honest, "sybils": args.sybils, "pretrusted": args.pretrusted,
        "bridges": args.bridges, "ring_inflation": args.ring_inflation, "alpha": args.alpha,
        "sybil_identity_share": round(len(sybils) / n, 4),
        "sybil_credit_share": round(syb / total, 4),
        "honest_credit_share": round(1 - syb / total, 4),
        "unweighted_sybil_share": round(sum(v for w, v in raw.items() if w.startswith("s"))
                                        / raw_total, 4),
        "sybil_trust_share": round(sum(trust.get(s, 0) for s in sybils), 4),
        # what honest villages keep of what their receipts say (the cap must not eat it)
        "honest_honoured_ratio": round(sum(v for w, v in honoured.items() if w.startswith("h"))
                                       / sum(v for w, v in raw.items() if w.startswith("h")), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sybil")
    ap.add_argument("--honest", type=int, default=100)
    ap.add_argument("--sybils", type=int, default=50)
    ap.add_argument("--pretrusted", type=int, default=5)
    ap.add_argument("--honest-degree", type=int, default=10)
    ap.add_argument("--bridges", type=int, default=10)
    ap.add_argument("--ring-inflation", type=float, default=10.0)
    ap.add_argument("--alpha", type=float, default=policy.ALPHA,
                    help="EigenTrust's restart weight on the pre-trusted villages")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = simulate(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
