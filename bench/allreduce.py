"""Moshpit all-reduce on real hosts:
`python -m bench.allreduce --peers 32 --group 4 --params 2000000 --rounds 5 --start-jitter 2 --json`

All peers are full Grove nodes (real py-libp2p hosts on loopback, TCP + Noise + Yamux, real DHT
matchmaking) in ONE process and one trio loop. Every step each peer averages one seeded fp32
tensor with its Moshpit group (groups of `--group`, a grid of side `--group`); each peer starts
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


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def run(args: argparse.Namespace) -> dict[str, object]:
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
        await trio.sleep(args.settle)
        ids = [n.averaging.me for n in nodes]
        coords = {p: tuple(rng.randrange(side) for _ in range(dims)) for p in ids}
        steps: list[float] = []
        ok = total = 0
        errors: list[float] = []
        moved = 0
        rss_peak = _rss_mb()
        began = time.monotonic()
        for step in range(args.rounds):
            vecs = {p: np.random.default_rng(args.seed * 1000 + step * 97 + i).standard_normal(
                args.params).astype(np.float32) for i, p in enumerate(ids)}
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
                    key.replace(" ", ""), vecs[p], close_at=t0 + gather,
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
    step_times = [s for s in steps if s >= 0]
    return {
        "peers": args.peers, "group": args.group, "params": args.params,
        "rounds": args.rounds, "start_jitter": args.start_jitter, "processes": 1,
        "success_rate": round(ok / total, 4) if total else 0.0,
        "step_seconds_p50": round(statistics.median(step_times), 3) if step_times else None,
        "step_seconds_p95": round(sorted(step_times)[int(0.95 * (len(step_times) - 1))], 3)
        if step_times else None,
        "bytes_per_second": round(moved / wall) if wall else 0,
        "max_abs_error_vs_exact": max(errors) if errors else None,
        "rss_mb_per_peer": round((rss_peak - rss0) / args.peers, 1),
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
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-connections", type=int, default=64,
                    help="each peer's connection cap (the setting; 64 by default)")
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
    out = trio.run(run, args)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
