"""Moshpit all-reduce on real hosts:
`python -m bench.allreduce --peers 32 --group 4 --params 2000000 --rounds 5 --start-jitter 2 --json`

All peers are full Grove nodes (real py-libp2p hosts on loopback, TCP + Noise + Yamux, real DHT
matchmaking), by default in ONE process and one trio loop; `--procs N` spreads them over N
worker processes (bench.fleet; `--procs` equal to `--peers` runs one village per process, as
hivemind's harness runs one peer per process). Every step each peer averages one seeded fp32
tensor with its Moshpit group (groups of at most `--group`, a grid of side `--group`, village i
in the cell of i's digits so that no village is alone in its line); each peer starts
the step up to `--start-jitter` seconds after the step's schedule. A peer-step succeeds when it
averaged with at least one other peer and its result is the exact mean of the members it
reports, within the error bound of `--compression` (fp32: float32 arithmetic; f16 and u8:
wire.error_bound), checked for every peer, every step.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import trio

from bench import over_repeats, spread

DRAW_SECONDS_PER_VALUE = 3e-8  # drawing a step's seeded tensor: 0.34 s for 37.8M values alone
# here, ~3x that with four processes sharing the two cores


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class _Steps:
    """What both harnesses share: the Moshpit cells, each step's command (bench.fleet's
    `average`, run in this process or in the workers) and the tally of its results."""

    def __init__(self, args: argparse.Namespace, ids: list[str], per_worker: int) -> None:
        self.args, self.ids, self.per_worker = args, ids, per_worker
        self.side = args.group
        self.dims = max(1, math.ceil(math.log(args.peers, args.group) - 1e-9))
        self.coords = balanced_coords(ids, self.dims, self.side)
        self.seconds: list[float] = []
        self.errors: list[float] = []
        self.ratios: list[float] = []
        self.ok = self.total = self.moved = 0
        self.began = time.monotonic()

    def command(self, step: int) -> dict[str, Any]:
        a = self.args
        return {"cmd": "average", "seed": a.seed, "step": step, "params": a.params,
                "index": {p: i for i, p in enumerate(self.ids)}, "coords": self.coords,
                "t0": time.time() + 1.0 + DRAW_SECONDS_PER_VALUE * a.params * self.per_worker,
                "jitter": a.start_jitter, "gather": a.gather,
                "group": a.group, "timeout": a.timeout, "compression": a.compression}

    def add(self, step: int, results: dict[str, dict[str, Any]]) -> None:
        """Count a step's results, then move every village to its next cell (Moshpit: the
        next step groups along the next dimension, the index in the group as coordinate)."""
        from core.averaging.moshpit import form_groups, next_coords

        for r in results.values():
            self.total += 1
            if r["members"] >= 2 and r["complete"] and r["error"] <= r["bound"]:
                self.ok += 1
                self.errors.append(r["error"])
                self.ratios.append(r["error"] / r["bound"] if r["bound"] else 0.0)
                self.moved += 2 * r["nbytes"] * (r["members"] - 1) // r["members"]
            self.seconds.append(r["seconds"])
        for g in form_groups(self.coords, step, self.side):
            for j, p in enumerate(g):
                self.coords[p] = next_coords(self.coords[p], step, j, self.side)  # type: ignore[index]
        reasons = sorted({r["reason"] for r in results.values()})
        print(f"step {step}: {sum(1 for r in results.values() if r['members'] > 1)}"
              f"/{len(results)} averaged {reasons}", file=sys.stderr)

    def summary(self, rss_per_peer: float, processes: int) -> dict[str, object]:
        a, steps = self.args, self.seconds
        wall = time.monotonic() - self.began
        return {
            "peers": a.peers, "group": a.group, "params": a.params,
            "rounds": a.rounds, "start_jitter": a.start_jitter, "processes": processes,
            "success_rate": round(self.ok / self.total, 4) if self.total else 0.0,
            "step_seconds": spread(steps) if steps else None,
            "step_seconds_p50": round(statistics.median(steps), 3) if steps else None,
            "step_seconds_p95": round(sorted(steps)[int(0.95 * (len(steps) - 1))], 3)
            if steps else None,
            "bytes_per_second": round(self.moved / wall) if wall else 0,
            "compression": a.compression,
            "max_abs_error_vs_exact": max(self.errors) if self.errors else None,
            "max_error_over_bound": round(max(self.ratios), 4) if self.ratios else None,
            "rss_mb_per_peer": round(rss_per_peer, 1),
            "tensor_mb": round(a.params * 4 / 2**20, 1),
            "cpu_count": psutil.cpu_count(),
        }


async def run(args: argparse.Namespace) -> dict[str, object]:
    from bench.fleet import _average_step
    from tests.nodes import trio_villages, trio_wait_for

    rss0 = _rss_mb()
    async with trio_villages(Path(tempfile.mkdtemp(prefix="grove-bench-ar-")), args.peers,
                             prefix="p", max_connections=args.max_connections) as nodes:
        await trio_wait_for(lambda: all(len(n.dht.table or ()) >= min(args.peers - 1, 8)
                                        for n in nodes), 120, "routing tables")
        with trio.move_on_after(args.place):  # every record placed: the join storm is over
            while not all(n.dht.record_placed for n in nodes):  # noqa: ASYNC110 (a poll of state)
                await trio.sleep(0.5)
        await trio.sleep(args.settle)
        by_id = {n.averaging.me: n for n in nodes}
        steps = _Steps(args, list(by_id), args.peers)
        rss_peak = _rss_mb()
        for step in range(args.rounds):
            steps.add(step, await _average_step(by_id, steps.command(step)))
            rss_peak = max(rss_peak, _rss_mb())
    return steps.summary((rss_peak - rss0) / args.peers, 1)


def balanced_coords(ids: list[str], dims: int, side: int) -> dict[str, tuple[int, ...]]:
    """Village i's Moshpit cell: i's digits in base `side`, so every group line holds `side`
    villages (the last dimension fewer when the count is not a power of `side`) and none is
    alone; random cells leave some villages alone in their line (a grid effect, not the
    protocol's)."""
    return {p: tuple(i // side ** d % side for d in range(dims)) for i, p in enumerate(ids)}


def run_fleet(args: argparse.Namespace) -> dict[str, object]:
    """The same steps with the villages spread over `args.procs` processes (bench.fleet)."""
    from bench.fleet import Fleet

    # three bootstrap villages (sharing the first worker) unless that would crowd a small run
    fleet = Fleet(args.peers, args.procs, 3 if args.peers > 8 else 1, args.seed, 3600)
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
        steps = _Steps(args, list(fleet.ids), max(Counter(fleet.owner.values()).values()))
        for step in range(args.rounds):
            answers = fleet.ask_all(**steps.command(step))
            steps.add(step, {p: r for a in answers for p, r in a["results"].items()})
        rss_mb = max(rss_mb, sum(s["rss_mb"] for s in fleet.ask_all(cmd="status")))
    finally:
        fleet.close()
    return steps.summary(rss_mb / args.peers, len(fleet.workers))


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
    ap.add_argument("--compression", choices=("none", "f16", "u8"), default="none",
                    help="what the parts travel as (none: fp32, exact)")
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
