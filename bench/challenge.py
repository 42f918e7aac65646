"""The service levels against cheaters: `python -m bench.challenge --json`.

On real villages (libp2p hosts on loopback in this process, real torch, real ledgers): one
client village per level and `--servers` servers each holding all of tiny-lm's blocks (no
training, so every honest one holds the same parameters), of which a share (`--cheaters`)
returns wrong activations on `--cheat-prob` of its forwards. First each client uses every
server at basic with every hop checked, so each server earns the verified credit that backs
its stake (`--min-stake`, scaled down from the product's 10 credits to what a bench's few
forwards earn: reported). Then per level a fresh client sends `--hops` forwards (batch
`--batch`) and every output is compared with the true one, computed here. JSON: `levels` with
`basic`, `checked` and `assured`, each holding `wrong_delivered_fraction` (outputs used that
were wrong), `overhead` (extra computations per forward: recomputations by checks and the
second halves of assured hops; `overhead_last_quarter` over the run's last quarter, as the
servers have proven themselves), `seconds_to_slash_p50` (a cheater's first wrong result at that
level to the referee's signed ruling slashing its stake, recorded in the client's ledger),
`seconds_to_catch_p50` (to the client's own check catching it), `honest_slashed`,
`cheaters_detected` / `cheaters`, and for `basic` `detected_within_100_hops` (of the
cheater's own hops for that client), plus `seconds` and `forwards_per_s`.

`--simulate` runs the rules of `core/ledger/levels.py` alone instead (no network), at the
scale of thousands of hops and dozens of servers: check rates by reputation, stake, slashing,
referees; recomputation exact, cheaters not colluding.
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
from dataclasses import replace
from typing import Any

import trio

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


async def _real(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from bench.swarm import _start
    from core.ledger import levels
    from core.swarm import throughput
    from core.swarm.client import PipelineFailed, SwarmClient
    from core.swarm.flat import recompute
    from core.swarm.model import MODELS, build_block, build_ends, synthetic_batch

    levels.MIN_STAKE = {"basic": 0.0, "checked": args.min_stake, "assured": args.min_stake}
    # one measured speed for every server: the balancer then spreads the work evenly
    throughput.measure_compute = lambda spec, device="cpu", **_: throughput.ComputeSpeed(
        400.0, 100.0)
    spec = MODELS["tiny-lm"]
    rng = random.Random(args.seed)
    home = tempfile.mkdtemp(prefix="grove-challenge-bench-")
    out: dict[str, Any] = {"servers": args.servers, "cheaters": args.cheaters,
                           "cheat_prob": args.cheat_prob, "hops": args.hops,
                           "batch": args.batch, "min_stake": args.min_stake,
                           "seed": args.seed, "model": spec.name, "levels": {}}
    params = {b: torch.cat([p.detach().reshape(-1) for p in build_block(spec, b).parameters()]
                           ).numpy() for b in range(spec.blocks)}
    embed, _head = build_ends(spec)
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        inputs = [embed(synthetic_batch(spec, args.batch, g)[0]).numpy() for _ in range(16)]
    truth = [recompute(spec, params, x) for x in inputs]
    async with trio.open_nursery() as nursery:
        clients = [(await _start(nursery, home, f"client-{lv}", i, {}))[0]
                   for i, lv in enumerate(LEVELS)]
        boot = (clients[0].host.listen_addrs()[0],)
        for c in clients[1:]:
            await c.host.connect(boot[0])
        servers = [(await _start(nursery, home, f"s{i}", 10 + i, {
            "bootstrap": boot, "swarm_serve": True, "swarm_max_blocks": spec.blocks,
            "swarm_lr": 0.0}))[0] for i in range(args.servers)]
        ids = [s.averaging.me for s in servers]
        cheaters = set(rng.sample(ids, round(args.cheaters * args.servers)))
        warm = [SwarmClient(c.ctx, c.dht, c.ledger, spec, check_rate=1.0, distinct="village")
                for c in clients]
        with trio.fail_after(300):
            while True:
                for w in warm:
                    await w.refresh()
                if all(w.coverage() == [args.servers] * spec.blocks for w in warm):
                    break
                await trio.sleep(1.0)
        # every server earns, from every client, the verified credit that backs its stake
        need = math.ceil(args.min_stake / (0.01 * args.batch))
        for w in warm:
            i = 0
            while min(w.stats.per_server.get(p, 0) for p in ids) < need:
                await w.forward(inputs[i % len(inputs)])
                i += 1
        for c in clients:
            await c.ledger.settle_all()
        for s in servers:
            while len(s.ledger.ledger.backing(s.averaging.me)) < len(clients):  # noqa: ASYNC110 (a file)
                await trio.sleep(0.2)
            await s.settings_service.change({"swarm_stake": 2 * args.min_stake})
        wrong_at: dict[str, list[float]] = {p: [] for p in cheaters}
        for s in servers:
            if s.averaging.me in cheaters:
                s.swarm.worker.forward = _lying(s.swarm.worker.forward, args.cheat_prob,
                                                random.Random(f"{args.seed}|{s.averaging.me}"),
                                                wrong_at[s.averaging.me])
        for lv, node, w in zip(LEVELS, clients, warm, strict=True):
            cl = SwarmClient(node.ctx, node.dht, node.ledger, spec, level=lv,
                             distinct="village")
            cl.assurance.reps = dict(w.assurance.reps)  # what this client saw so far
            await cl.refresh()
            began = time.monotonic()
            for p in cheaters:
                wrong_at[p].clear()
            caught: dict[str, float] = {}
            caught_hops: dict[str, int] = {}
            wrong = failed = 0
            late_from = (0, 0)  # (forwards used, extra computations) at 3/4 of the run

            def extra_now(used: int, s: Any = cl.stats) -> int:
                return s.checks_passed + s.checks_failed + (s.commitments - used)

            for i in range(args.hops):
                if i == args.hops * 3 // 4:
                    late_from = (i - failed, extra_now(i - failed))
                x, want = inputs[i % len(inputs)], truth[i % len(inputs)]
                try:
                    got, _hops = await cl.forward(x)
                except PipelineFailed:
                    failed += 1
                    continue
                wrong += float(np.abs(got - want).max()) > 1e-3
                for p in cheaters:
                    if p not in caught and cl.reputation(p).failed:
                        caught[p] = time.monotonic()
                        caught_hops[p] = cl.reputation(p).hops
            seconds = time.monotonic() - began
            with trio.move_on_after(120):  # the referees' rulings on what was caught
                while not all(any(r.server == p and r.upheld for r in node.challenges.rulings)  # noqa: ASYNC110
                              for p in caught):
                    await trio.sleep(0.5)
            ruled = {p: min((t for r, t in _ruled(node) if r.server == p and r.upheld),
                            default=None) for p in cheaters}
            used = args.hops - failed
            extra = extra_now(used)
            first = {p: ts[0] for p, ts in wrong_at.items() if ts}
            to_slash = [ruled[p] - first[p] for p in first if ruled.get(p)]
            to_catch = [caught[p] - first[p] for p in first if p in caught]
            got_level: dict[str, Any] = {
                "wrong_delivered_fraction": round(wrong / max(1, used), 6),
                "overhead": round(extra / max(1, used), 4),
                "overhead_last_quarter": round((extra - late_from[1])
                                               / max(1, used - late_from[0]), 4),
                "seconds_to_slash_p50": round(statistics.median(to_slash), 2) if to_slash
                else None,
                "seconds_to_catch_p50": round(statistics.median(to_catch), 2) if to_catch
                else None,
                "honest_slashed": sum(1 for p in ids if p not in cheaters
                                      and cl.reputation(p).failed),
                "cheaters_detected": len(caught), "cheaters": len(cheaters),
                "wrong_served_by_cheaters": sum(len(t) for t in wrong_at.values()),
                "pipeline_failures": failed, "seconds": round(seconds, 1),
                "forwards_per_s": round(used / seconds, 2)}
            if lv == "basic":
                got_level["detected_within_100_hops"] = sum(
                    1 for p in cheaters if caught_hops.get(p, 10**9) - w.assurance.reps.get(
                        p, levels.Reputation()).hops <= 100)
            out["levels"][lv] = got_level
            if not args.quiet:
                print(f"{lv}: {json.dumps(got_level)}", file=sys.stderr, flush=True)
        nursery.cancel_scope.cancel()
    return out


def _lying(honest: Any, prob: float, rng: random.Random, log: list[float]) -> Any:
    """A cheater's forward: right shape, finite, and wrong on `prob` of its forwards (the
    time of each wrong one kept in `log`); its commitments stay signed."""
    import numpy as np

    def forward(x: Any, start: int, end: int) -> Any:
        out, versions, digests = honest(x, start, end)
        if rng.random() < prob:
            log.append(time.monotonic())
            return out + np.float32(0.25), versions, digests
        return out, versions, digests

    return forward


def _ruled(node: Any) -> list[tuple[Any, float]]:
    """(ruling, when the client recorded it, on the monotonic clock) for its rulings."""
    now_wall, now_mono = node.ctx.clock.wall(), time.monotonic()
    return [(r, now_mono - (now_wall - r.at)) for r in node.challenges.rulings]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.challenge")
    ap.add_argument("--simulate", action="store_true",
                    help="the rules alone, no network (the defaults below in brackets)")
    ap.add_argument("--servers", type=int, default=None, help="servers (10) [50]")
    ap.add_argument("--cheaters", type=float, default=0.1, help="share of servers that cheat")
    ap.add_argument("--cheat-prob", type=float, default=0.05,
                    help="share of a cheater's hops that are wrong")
    ap.add_argument("--hops", type=int, default=None, help="forwards per level (1000) "
                                                           "[100000]")
    ap.add_argument("--batch", type=int, default=8, help="samples per forward")
    ap.add_argument("--min-stake", type=float, default=0.5,
                    help="credits a server must stake for checked and assured")
    ap.add_argument("--clusters", type=int, default=4, help="[trust clusters (assured)]")
    ap.add_argument("--rate", type=float, default=2.0, help="[hops a second per server]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.simulate:
        args.servers = args.servers or 50
        args.hops = args.hops or 100_000
        out = {"simulation": "the rules of core/ledger/levels.py, not the network",
               "servers": args.servers, "cheaters": args.cheaters,
               "cheat_prob": args.cheat_prob, "hops": args.hops, "seed": args.seed,
               "levels": {level: simulate(level, args) for level in LEVELS}}
    else:
        import logging

        logging.basicConfig(level=logging.CRITICAL)  # (libp2p's noise as villages stop)
        args.servers = args.servers or 10
        args.hops = args.hops or 1000
        out = trio.run(_real, args)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
