"""Moshpit all-reduce on real hosts:
`python -m bench.allreduce --peers 32 --group 4 --params 2000000 --rounds 5 --start-jitter 2 --json`

All peers are full Grove nodes (real py-libp2p hosts on loopback, TCP + Noise + Yamux, real DHT
matchmaking), by default in ONE process and one trio loop; `--procs N` spreads them over N
worker processes (bench.fleet; `--procs` equal to `--peers` runs one village per process, as
hivemind's harness runs one peer per process). Every step each peer averages one seeded fp32
tensor with its Moshpit group (groups of at most `--group`, a grid of side `--group`, village i
in the cell of i's digits so that no village is alone in its line); each peer starts
the step up to `--start-jitter` seconds after the step's schedule. A peer-step succeeds when it
averaged with at least one other peer and its result equals the exact mean of the members it
reports (checked for every peer, every step).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import trio

from bench import over_repeats, spread


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def run(args: argparse.Namespace) -> dict[str, object]:
    from bench.fleet import step_vector
    from core.averaging.moshpit import form_groups, group_key, next_coords
    from tests.nodes import trio_villages, trio_wait_for

    rng = random.Random(args.seed)
    rss0 = _rss_mb()
    dims = max(1, math.ceil(math.log(args.peers, args.group) - 1e-9))
    side = args.group
    async with trio_villages(Path(tempfile.mkdtemp(prefix="grove-bench-ar-")), args.peers,
                             prefix="p", max_connections=args.max_connections) as nodes:
        await trio_wait_for(lambda: all(len(n.dht.table or ()) >= min(args.peers - 1, 8)
                                        for n in nodes), 120, "routing tables")
        with trio.move_on_after(args.place):  # every record placed: the join storm is over
            while not all(n.dht.record_placed for n in nodes):  # noqa: ASYNC110 (a poll of state)
                await trio.sleep(0.5)
        await trio.sleep(args.settle)
        ids = [n.averaging.me for n in nodes]
        coords = balanced_coords(ids, dims, side)
        steps: list[float] = []
        ok = total = 0
        errors: list[float] = []
        moved = 0
        rss_peak = _rss_mb()
        began = time.monotonic()
        for step in range(args.rounds):
            vecs = {p: step_vector(args.seed, step, i, args.params) for i, p in enumerate(ids)}
            t0 = time.time() + 1.0
            gather = args.start_jitter + args.gather
            results = {}

            async def one(i: int, p: str, step: int = step, t0: float = t0,
                          vecs: dict = vecs, gather: float = gather,
                          results: dict = results) -> None:
                await trio.sleep(max(0.0, t0 - time.time() + rng.uniform(0, args.start_jitter)))
                start = time.time()
                key = "bench/{}/{}/{}".format(step, *group_key(coords[p], step))
                res = await nodes[i].averaging.average(
                    key.replace(" ", ""), vecs[p], max_group=args.group, close_at=t0 + gather,
                    deadline_at=t0 + gather + args.timeout)
                results[p] = (res, time.time() - start)

            async with trio.open_nursery() as nursery:
                for i, p in enumerate(ids):
                    nursery.start_soon(one, i, p)
            rss_peak = max(rss_peak, _rss_mb())
            for res, secs in results.values():
                total += 1
                exact = np.mean([vecs[m] for m in res.members], axis=0)
                err = float(np.abs(res.vector - exact).max())
                if len(res.members) >= 2 and res.complete and err <= 1e-4:
                    ok += 1
                    errors.append(err)
                    moved += 2 * res.vector.nbytes * (len(res.members) - 1) // len(res.members)
                steps.append(secs)
            # Moshpit: the next step groups along the next dimension, index in group as coord
            groups = form_groups({p: coords[p] for p in ids}, step, side)
            for g in groups:
                for j, p in enumerate(g):
                    coords[p] = next_coords(coords[p], step, j, side)  # type: ignore[index]
            reasons = sorted({r.reason for r, _ in results.values()})
            print(f"step {step}: {sum(1 for r, _ in results.values() if len(r.members) > 1)}"
                  f"/{len(results)} averaged {reasons}", file=sys.stderr)
        wall = time.monotonic() - began
    return _summary(args, steps, ok, total, errors, moved, wall, (rss_peak - rss0) / args.peers,
                    1)


def balanced_coords(ids: list[str], dims: int, side: int) -> dict[str, tuple[int, ...]]:
    """Village i's Moshpit cell: i's digits in base `side`, so every group line holds `side`
    villages (the last dimension fewer when the count is not a power of `side`) and none is
    alone; random cells leave some villages alone in their line (a grid effect, not the
    protocol's)."""
    return {p: tuple(i // side ** d % side for d in range(dims)) for i, p in enumerate(ids)}


def run_fleet(args: argparse.Namespace) -> dict[str, object]:
    """The same steps with the villages spread over `args.procs` processes (bench.fleet)."""
    from bench.fleet import Fleet
    from core.averaging.moshpit import form_groups, next_coords

    dims = max(1, math.ceil(math.log(args.peers, args.group) - 1e-9))
    side = args.group
    fleet = Fleet(args.peers, args.procs, 3, args.seed, 3600)
    try:
        start = time.monotonic()
        while True:  # tables filled, and every record placed (at most --place s)
            status = fleet.ask_all(cmd="status")
            tables = [t for s in status for t in s["tables"]]
            placed = sum(s["published"] for s in status)
            if min(tables) >= min(args.peers - 1, 8) and (
                    placed == args.peers or time.monotonic() - start > args.place):
                break
            if time.monotonic() - start > 120 + args.place:
                raise RuntimeError(f"routing tables did not fill: {sorted(tables)}")
            time.sleep(0.5)
        time.sleep(args.settle)
        rss_mb = sum(s["rss_mb"] for s in fleet.ask_all(cmd="status"))
        ids = list(fleet.ids)
        index = {p: i for i, p in enumerate(ids)}
        coords = balanced_coords(ids, dims, side)
        steps: list[float] = []
        errors: list[float] = []
        ok = total = moved = 0
        began = time.monotonic()
        for step in range(args.rounds):
            t0 = time.time() + 1.0
            answers = fleet.ask_all(cmd="average", seed=args.seed, step=step,
                                    params=args.params, index=index, coords=coords, t0=t0,
                                    jitter=args.start_jitter, gather=args.gather,
                                    group=args.group,
                                    timeout=args.timeout)
            results = {p: r for a in answers for p, r in a["results"].items()}
            for r in results.values():
                total += 1
                if r["members"] >= 2 and r["complete"] and r["error"] <= 1e-4:
                    ok += 1
                    errors.append(r["error"])
                    moved += 2 * r["nbytes"] * (r["members"] - 1) // r["members"]
                steps.append(r["seconds"])
            groups = form_groups({p: coords[p] for p in ids}, step, side)
            for g in groups:
                for j, p in enumerate(g):
                    coords[p] = next_coords(coords[p], step, j, side)  # type: ignore[index]
            reasons = sorted({r["reason"] for r in results.values()})
            print(f"step {step}: {sum(1 for r in results.values() if r['members'] > 1)}"
                  f"/{len(results)} averaged {reasons}", file=sys.stderr)
        wall = time.monotonic() - began
        rss_mb = max(rss_mb, sum(s["rss_mb"] for s in fleet.ask_all(cmd="status")))
    finally:
        fleet.close()
    return _summary(args, steps, ok, total, errors, moved, wall, rss_mb / args.peers,
                    len(fleet.workers))


def _summary(args: argparse.Namespace, steps: list[float], ok: int, total: int,
             errors: list[float], moved: int, wall: float, rss_per_peer: float,
             processes: int) -> dict[str, object]:
    return {
        "peers": args.peers, "group": args.group, "params": args.params,
        "rounds": args.rounds, "start_jitter": args.start_jitter, "processes": processes,
        "success_rate": round(ok / total, 4) if total else 0.0,
        "step_seconds": spread(steps) if steps else None,
        "step_seconds_p50": round(statistics.median(steps), 3) if steps else None,
        "step_seconds_p95": round(sorted(steps)[int(0.95 * (len(steps) - 1))], 3)
        if steps else None,
        "bytes_per_second": round(moved / wall) if wall else 0,
        "max_abs_error_vs_exact": max(errors) if errors else None,
        "rss_mb_per_peer": round(rss_per_peer, 1),
        "tensor_mb": round(args.params * 4 / 2**20, 1),
        "cpu_count": psutil.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.allreduce")
    ap.add_argument("--peers", type=int, default=32)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--params", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--start-jitter", type=float, default=2.0)
    ap.add_argument("--gather", type=float, default=2.0,
                    help="matchmaking time after the last start")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--place", type=float, default=180.0,
                    help="at most this long (s) for every village's record to be placed")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="s to wait after that, before the first step")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-connections", type=int, default=64,
                    help="each peer's connection cap (the setting; 64 by default)")
    ap.add_argument("--procs", type=int, default=1,
                    help="worker processes the villages are spread over (1: this one)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs; numbers are then the median, with min/median/max under 'spread'")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--log", metavar="FILE", help="write the averaging and DHT debug log here")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    if args.log:
        handler = logging.FileHandler(args.log, mode="w")
        handler.setFormatter(logging.Formatter("%(relativeCreated)8.0f %(name)s %(message)s"))
        for name in ("core.averaging", "core.dht"):
            logging.getLogger(name).setLevel(logging.DEBUG)
            logging.getLogger(name).addHandler(handler)
    out = over_repeats([trio.run(run, args) if args.procs <= 1 else run_fleet(args)
                        for _ in range(max(1, args.repeats))])
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
