"""DHT lookups at scale: `python -m bench.dht --nodes 100 --churn 0.2 --gets 200 --json`.

All nodes are full Grove nodes (real py-libp2p hosts on loopback, TCP + Noise + Yamux), spread
over `--procs` processes (bench.fleet; one per core by default; `--role dht` runs villages of
only a host and the DHT). Each publishes its signed village record, and the run waits (up to
`--settle` s) until every village's DHT says its record is placed (most of the k closest peers
took it: what the village itself can know); then `churn` of them vanish without a goodbye (no
withdrawal, like a computer unplugged); then `gets` sequential lookups of random records
(including those whose writer is gone) from random live nodes, each checked byte-for-byte
against what its writer held just before and just after the lookup.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

from bench import over_repeats
from bench.fleet import Fleet
from core.dht.keyspace import kad_id, peer_kad_id
from core.dht.records import village_key


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    began = time.monotonic()
    fleet = Fleet(args.nodes, args.procs, args.bootstraps, args.seed, args.telemetry_period,
                  args.role)
    try:
        print(f"{args.nodes} nodes started in {len(fleet.workers)} processes in "
              f"{time.monotonic() - began:.1f} s", file=sys.stderr)
        deadline = time.monotonic() + args.settle
        said = 0.0
        counted: dict[str, int] = {}
        while True:
            status = fleet.ask_all(cmd="status")
            published = sum(s["published"] for s in status)
            sizes = sorted(t for s in status for t in s["tables"])
            if published == args.nodes or time.monotonic() > deadline:
                break
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                alone = [c for s in status for c in s["alone"]]
                print(f"  {said - began:5.0f} s: {published}/{args.nodes} published, routing "
                      f"tables {sizes[0]}..{sizes[-1]}"
                      + (f"; {len(alone)} with an empty table (connections: {alone})"
                         if alone else "")
                      + f"; {sum(s['silent_closes'] for s in status)} silent links closed",
                      file=sys.stderr)
                now_counts: dict[str, int] = {}
                for s in status:
                    for k, v in s["streams"].items():
                        now_counts[k] = now_counts.get(k, 0) + v
                busiest = sorted(((v - counted.get(k, 0), k) for k, v in now_counts.items()),
                                 reverse=True)[:8]
                counted = now_counts
                print(f"         backlog {[s['backlog'] for s in status]}; "
                      f"loop lag up to {max(s['loop_lag_s'] for s in status):.2f} s;"
                      " streams since: " + ", ".join(f"{k} {n}" for n, k in busiest),
                      file=sys.stderr)
            time.sleep(0.5)
        startup = time.monotonic() - began
        put_success = published / args.nodes
        rss_per_node = sum(s["rss_mb"] for s in status) / args.nodes
        print(f"records published after {startup:.1f} s; routing tables "
              f"{sizes[0]}..{sizes[-1]}", file=sys.stderr)
        ids = list(fleet.ids)
        gone = set(rng.sample(ids[1:], int(args.churn * len(ids))))
        want = {pid: fleet.ask(fleet.owner[pid], cmd="own", id=pid)["value"] for pid in ids}
        by_worker: dict[int, list[str]] = {}
        for pid in gone:
            by_worker.setdefault(fleet.owner[pid], []).append(pid)
        for w, pids in by_worker.items():
            fleet.ask(w, cmd="churn", ids=pids)
        time.sleep(args.quiet)  # let the start-up storm (first scans) pass
        live = [p for p in ids if p not in gone]
        times, ok, missing, stale = [], 0, 0, 0
        for _ in range(args.gets):
            asker = rng.choice(live)
            target = rng.choice([t for t in ids if t != asker])
            if target not in gone:  # what its writer holds now, and after the get:
                want[target] = fleet.ask(fleet.owner[target], cmd="own", id=target)["value"]
            current = {want[target]}  # a get that returns either is current
            got = fleet.ask(fleet.owner[asker], cmd="get", asker=asker, target=target)
            times.append(got["ms"])
            if target not in gone:
                want[target] = fleet.ask(fleet.owner[target], cmd="own", id=target)["value"]
                current.add(want[target])
            hit = got["value"] is not None and got["value"] in current
            ok += hit
            missing += got["value"] is None
            stale += not hit and got["value"] is not None
            why = ""
            if not hit:  # where the record is: the ranks of its holders among live villages
                holders = {h for w in range(len(fleet.workers))
                           for h in fleet.ask(w, cmd="holders", target=target)["holders"]}
                key = kad_id(village_key(target))
                ranked = sorted(live, key=lambda p: peer_kad_id(p) ^ key)
                why = (f" ({len(holders)} live holders, ranks "
                       f"{sorted(ranked.index(h) for h in holders if h in ranked)})")
            if args.verbose or len(times) % 25 == 0 or not hit:
                print(f"  get {len(times)}/{args.gets}: {times[-1]:.1f} ms "
                      f"{'ok' if hit else 'MISSING' if got['value'] is None else 'WRONG'}"
                      f"{' (writer gone)' if target in gone else ''}{why}", file=sys.stderr)
    finally:
        fleet.close()
    times.sort()
    return {
        "nodes": args.nodes, "role": args.role, "churn": args.churn, "gets": args.gets,
        "processes": len(fleet.workers), "bootstraps": args.bootstraps,
        "telemetry_period_s": args.telemetry_period,
        "put_success": round(put_success, 4), "get_success": round(ok / args.gets, 4),
        "get_missing": missing, "get_not_latest": stale,
        "get_p50_ms": round(statistics.median(times), 2),
        "get_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "get_max_ms": round(times[-1], 2),
        "rss_mb_per_node": round(rss_per_node, 2),
        "startup_seconds": round(startup, 2),
        "routing_table_min": sizes[0], "routing_table_median": statistics.median(sizes),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dht")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--churn", type=float, default=0.2)
    ap.add_argument("--gets", type=int, default=200)
    ap.add_argument("--bootstraps", type=int, default=3)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                    help="worker processes the nodes are spread over")
    ap.add_argument("--role", choices=("full", "dht"), default="full",
                    help="full: every service of a village; dht: host and DHT only (as "
                         "hivemind's DHT-only peers)")
    ap.add_argument("--settle", type=float, default=300.0,
                    help="at most this long (s) for every record to be placed; the run "
                         "goes on then")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", type=float, default=15.0,
                    help="seconds between the churn and the first get")
    ap.add_argument("--telemetry-period", type=int, default=3600,
                    help="the nodes' telemetry period (s); its averaging rounds are not part "
                         "of this workload, so by default they fall outside the run")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs; numbers are then the median, with min/median/max under 'spread'")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print each get's time")
    args = ap.parse_args(argv)
    result = over_repeats([run(args) for _ in range(max(1, args.repeats))])
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
