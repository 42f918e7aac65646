"""The service levels' rules against cheaters: `python -m bench.challenge --json`.

A SIMULATION of the rules in `core/ledger/levels.py` (check rates by reputation, stake,
slashing, referees), not of the network: `--servers` servers of which `--cheaters` (a share)
return a wrong result - wrong activations, or a training update never computed - on
`--cheat-prob` of their hops; `--hops` pieces of work per level, each sent to a server picked
at random among those the level admits (two of different trust clusters for `assured`).
Every server serves `--rate` hops a second, which sets the clock. Recomputation is exact here
(an honest server is never found wrong); a wrong result never matches another wrong one
(cheaters do not collude). JSON: `levels` with `basic`, `checked` and `assured`, each holding
`wrong_delivered_fraction`, `overhead` (extra computation per hop), `cost_ratio` (computation
per delivered hop), `seconds_to_slash_p50` (a cheater's first wrong result to its stake slashed),
`honest_slashed`, `cheaters_detected` / `cheaters`, and for `basic`
`detected_within_100_hops`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from dataclasses import replace

from core.ledger.levels import LEVELS, MIN_STAKE, Reputation, check_rate, may_serve


def simulate(level: str, args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(f"{args.seed}|{level}")
    servers = [f"s{i}" for i in range(args.servers)]
    cheaters = set(rng.sample(servers, round(args.cheaters * args.servers)))
    cluster = {s: i % args.clusters for i, s in enumerate(servers)}
    rep = {s: Reputation(stake=2 * MIN_STAKE[level]) for s in servers}
    first_wrong: dict[str, float] = {}
    slashed_at: dict[str, float] = {}
    caught_after_hops: dict[str, int] = {}
    wrong_delivered = extra = 0
    honest_slashed = 0

    def serve(s: str, now: float) -> bool:
        """One hop on server `s`: whether its result is wrong."""
        wrong = s in cheaters and rng.random() < args.cheat_prob
        if wrong and s not in first_wrong:
            first_wrong[s] = now
        rep[s] = replace(rep[s], hops=rep[s].hops + 1)
        return wrong

    def verdict(s: str, wrong: bool, now: float) -> None:
        """A check of `s`'s hop decided: slashed and banned when wrong."""
        nonlocal honest_slashed
        if wrong:
            rep[s] = replace(rep[s], failed=rep[s].failed + 1)
            slashed_at.setdefault(s, now)
            caught_after_hops.setdefault(s, rep[s].hops)  # of all it served
            honest_slashed += s not in cheaters
        else:
            rep[s] = replace(rep[s], passed=rep[s].passed + 1)

    for hop in range(args.hops):
        admitted = [s for s in servers if may_serve(rep[s], level)]
        now = hop / (args.rate * max(1, len(admitted)))
        if level == "assured":
            a = rng.choice(admitted)
            b = rng.choice([s for s in admitted if cluster[s] != cluster[a]])
            wa, wb = serve(a, now), serve(b, now)
            extra += 1
            if wa or wb:  # they disagree: a referee computes it, the wrong one is slashed
                extra += 1
                verdict(a, wa, now)
                verdict(b, wb, now)
            continue
        s = rng.choice(admitted)
        wrong = serve(s, now)
        checked = rng.random() < check_rate(rep[s], level)
        if checked:
            extra += 1
            verdict(s, wrong, now)
        if wrong and not (checked and level == "checked"):  # basic: checked after delivery
            wrong_delivered += 1
    delays = [slashed_at[s] - first_wrong[s] for s in slashed_at if s in first_wrong]
    out: dict[str, object] = {
        "wrong_delivered_fraction": round(wrong_delivered / args.hops, 6),
        "overhead": round(extra / args.hops, 4),
        "cost_ratio": round((args.hops + extra) / args.hops, 4),
        "seconds_to_slash_p50": round(statistics.median(delays), 2) if delays else None,
        "honest_slashed": honest_slashed,
        "cheaters_detected": sum(1 for s in cheaters if s in slashed_at),
        "cheaters": len(cheaters),
    }
    if level == "basic":
        out["detected_within_100_hops"] = sum(1 for s in cheaters
                                              if caught_after_hops.get(s, 10**9) <= 100)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.challenge")
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--cheaters", type=float, default=0.1, help="share of servers that cheat")
    ap.add_argument("--cheat-prob", type=float, default=0.05,
                    help="share of a cheater's hops that are wrong")
    ap.add_argument("--hops", type=int, default=100_000, help="pieces of work per level")
    ap.add_argument("--clusters", type=int, default=4, help="trust clusters (assured)")
    ap.add_argument("--rate", type=float, default=2.0, help="hops a second per server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = {"simulation": "the rules of core/ledger/levels.py, not the network",
           "servers": args.servers, "cheaters": args.cheaters, "cheat_prob": args.cheat_prob,
           "hops": args.hops, "seed": args.seed,
           "levels": {level: simulate(level, args) for level in LEVELS}}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
