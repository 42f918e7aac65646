"""The real services over the simulated network at network scale, in one trio loop under
MockClock (core.simnet): discovery, reachability, the DHT, averaging and telemetry of every
village, with churn and homes behind NAT.

    python -m bench.simnet --villages 1000 --churn 0.2 --nat 0.4 --json

Timeline (simulated): the villages join over `--join` s; after `--settle` s a `--churn`
share of them crash (no goodbye) and as many new ones join; telemetry runs `--periods`
periods of `--period` s after that; then `--gets` DHT lookups of random live villages'
records by other live villages, and a Moshpit run over the real averaging service on a
grid of side M = ceil(N^(1/d)) (d = 2 up to 1024 villages, then 3) for up to `--rounds`
rounds. `count_error` is the median relative error of the live villages' counts after the
last period; `moshpit_rounds` the first round whose spread (the largest distance of a
village's value from the exact mean, over the starting range) is <= 1e-6 (null if none);
`relay_load_max_over_mean` the busiest relay's load (reservations + circuits) over the mean
of the relays that carry any; `mb_per_village` the process's peak RSS growth per village;
`wall_s_per_sim_minute` wall seconds per simulated minute over the whole run.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sys
import time
from typing import Any

from bench import print_result, run_quiet


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    import trio

    from core.simnet.measure import count_error, dht_gets, moshpit, percentile, relay_load
    from core.simnet.world import World

    n = args.villages
    w = World(args.seed, nat_share=args.nat, settings={"telemetry_period_s": args.period},
              max_reservations=args.max_reservations)
    World.seed_scheduler(args.seed)
    rng = random.Random(args.seed)
    rss0 = _rss_mb()
    wall0 = time.monotonic()
    out: dict[str, Any] = {"villages": n, "churn": args.churn, "nat": args.nat,
                           "seed": args.seed}

    def note(what: str) -> None:
        if not args.json:
            print(f"[{time.monotonic() - wall0:7.1f} s wall, {trio.current_time():7.1f} s "
                  f"simulated] {what}", file=sys.stderr)

    async with trio.open_nursery() as nursery:
        await w.start(n, nursery, stagger=args.join / n)
        note(f"{n} villages started")
        await trio.sleep(args.settle)
        gone = rng.sample(w.alive()[3:], int(args.churn * n))
        for v in gone:
            w.crash(v)
        await w.start(len(gone), nursery, stagger=min(0.05, args.join / n))
        note(f"{len(gone)} crashed, as many joined")
        await trio.sleep(args.periods * args.period)
        out["count_error"] = round(count_error(w), 4)
        note(f"telemetry: median count error {out['count_error']}")
        gets = await dht_gets(w, args.gets, rng)
        out["get_success"] = round(gets.success, 4)
        out["hops_p50"] = percentile(gets.hops, 0.5)
        out["hops_p95"] = percentile(gets.hops, 0.95)
        out["log2_n"] = round(math.log2(n), 2)
        note(f"DHT: {gets.found}/{gets.asked} found, hops p95 {out['hops_p95']}")
        d = 2 if n <= 1024 else 3
        side = math.ceil(n ** (1 / d) - 1e-9)
        spreads = await moshpit(w, side, args.rounds, start=w.clock.wall() + 1,
                                slot=args.slot, rng=rng)
        out["moshpit_side"], out["moshpit_dims"] = side, d
        out["moshpit_rounds"] = next((i + 1 for i, s in enumerate(spreads) if s <= 1e-6),
                                     None)
        out["moshpit_rounds_goal"] = math.ceil(math.log(n, side) - 1e-9) + 1
        out["spread_by_round"] = [float(f"{s:.3g}") for s in spreads]
        out["spread_final"] = float(f"{spreads[-1]:.3g}")
        out["moshpit_exact_share"] = round(w.last_moshpit_exact, 4)
        ratio, loads = relay_load(w)
        out["relay_load_max_over_mean"] = round(ratio, 2)
        out["relays_used"] = len(loads)
        out["relay_only"] = sum(v.reachability.current.state == "relay-only"
                                for v in w.alive())
        out["behind_nat"] = sum(v.host.behind_nat for v in w.alive())
        sim = trio.current_time()
        nursery.cancel_scope.cancel()
    out["mb_per_village"] = round((_rss_mb() - rss0) / len(w.villages), 3)
    wall = time.monotonic() - wall0
    out["simulated_s"] = round(sim, 1)
    out["wall_s"] = round(wall, 1)
    out["wall_s_per_sim_minute"] = round(wall / (sim / 60), 2)
    out["connections_timed_out"] = w.net.counts.get("connections timed out", 0)
    out["handler_bugs"] = w.net.counts.get("handler bugs", 0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.simnet")
    ap.add_argument("--villages", type=int, default=1000)
    ap.add_argument("--churn", type=float, default=0.2)
    ap.add_argument("--nat", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--join", type=float, default=20.0, help="s over which villages join")
    ap.add_argument("--settle", type=float, default=40.0)
    ap.add_argument("--period", type=int, default=60, help="telemetry period, s")
    ap.add_argument("--periods", type=int, default=2)
    ap.add_argument("--gets", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--slot", type=float, default=8.0, help="s per Moshpit round")
    ap.add_argument("--max-reservations", type=int, default=8,
                    help="homes one relay village takes at most")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import trio.testing

    result = run_quiet(_bench, args, clock=trio.testing.MockClock(autojump_threshold=0))
    print_result(result, args.json)
    return 0 if result.get("handler_bugs", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
