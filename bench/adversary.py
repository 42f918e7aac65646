"""Hostile behaviours against a network of honest villages, each in its own simulated network
(`bench.hostile` over `core.simnet`, real services under MockClock), one row per behaviour.

    python -m bench.adversary --villages 50 --json

A row says whether the attack succeeded (its goal reached, or the honest villages' service
below the goal: DHT get success < 99 %, averaging rounds < 95 %, or a DHT attacker not
refused by every village it offended within 60 s of its first offence), the honest villages'
DHT get success and averaging success during the attack, and how long the slowest village
took from the attacker's first offence to refusing it. For the averaging and training
behaviours the rounds are 20 steps of the digits project (`bench.hostile_training`): the
honest villages' test accuracy after them is compared with the same steps in the same
network with no attacker (`clean_accuracy`); more than 2 points below it is a success of the
attack too (`accuracy_drop_points` per row, `accuracy_drop_max_points` the worst).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from typing import Any

from bench import print_result, run_quiet

MAX_ACCURACY_DROP = 2.0  # points of honest test accuracy below the clean run: the goal


async def _one(name: str, villages: int, seed: int, watch: float) -> dict[str, Any]:
    from bench.hostile import attack_in_new_world

    out, counts = await attack_in_new_world(name, villages=villages, seed=seed, watch=watch,
                                            gets=100)
    return {**asdict(out), "handler_bugs": counts.get("handler bugs", 0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.adversary")
    ap.add_argument("--villages", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--watch", type=float, default=60.0,
                    help="simulated s each attack runs before the measurements")
    ap.add_argument("--only", default="",
                    help="run only the behaviours whose name contains this")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import trio.testing

    from bench.hostile import BEHAVIOURS

    rows, wall0 = [], time.monotonic()
    clean = run_quiet(_one, "", args.villages, args.seed, args.watch,
                      clock=trio.testing.MockClock(autojump_threshold=0))
    for name in [b for b in BEHAVIOURS if args.only in b]:
        row = run_quiet(_one, name, args.villages, args.seed, args.watch,
                        clock=trio.testing.MockClock(autojump_threshold=0))
        row["accuracy_drop_points"] = None
        if row["honest_accuracy"] is not None:  # against the same steps with no attacker
            drop = round(100 * (clean["honest_accuracy"] - row["honest_accuracy"]), 2)
            row["accuracy_drop_points"] = drop
            if drop > MAX_ACCURACY_DROP:
                row["succeeded"] = True
                row["note"] += f"; honest accuracy {drop} points below the clean run"
        rows.append(row)
        if not args.json:
            print(f"{name}: {'SUCCEEDED' if row['succeeded'] else 'failed'} ({row['note']})",
                  file=sys.stderr)
    refuse = [r["seconds_to_refuse"] for r in rows if r["seconds_to_refuse"] is not None]
    avg = [r["honest_avg_success"] for r in rows if r["honest_avg_success"] is not None]
    drops = [r["accuracy_drop_points"] for r in rows if r["accuracy_drop_points"] is not None]
    result = {
        "villages": args.villages, "seed": args.seed, "only": args.only or None,
        "behaviours": len(rows),
        "succeeded": sum(r["succeeded"] for r in rows),
        "honest_get_success_min": min(r["honest_get_success"] for r in rows),
        "honest_avg_success_min": min(avg) if avg else None,
        "clean_accuracy": round(clean["honest_accuracy"], 4),
        "clean_avg_success": clean["honest_avg_success"],
        "accuracy_drop_max_points": max(drops) if drops else None,
        "seconds_to_refuse_max": round(max(refuse), 2) if refuse else None,
        "handler_bugs": sum(r["handler_bugs"] for r in rows),
        "wall_s": round(time.monotonic() - wall0, 1),
        "rows": rows,
    }
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
