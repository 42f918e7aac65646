"""SWARM pipeline throughput: `python -m bench.swarm --servers 8 --stages 4 --json`.

Real villages on loopback (py-libp2p hosts, real torch) in this process: one client village and
`--servers` block servers, each given a different CPU share (the governor throttles its block
worker to it, so the servers are heterogeneous the way gardeners' computers are), each holding
`blocks / stages` blocks of the small transformer. The client keeps `--lanes` micro-batches in
flight (forward through the chain, backward back through it, servers stepping their blocks'
optimizers) for `--seconds`, three times:

1. the swarm as it settled (joins, then rebalancing): `samples_per_second` against
   `ideal_samples_per_second` = the weakest stage's summed advertised capacity;
2. the fastest server of a stage that has two or more, killed halfway:
   `after_kill_efficiency` over the second half against the ideal without it, and
   `failed_micro_batches` (the goal is none: retries go elsewhere);
3. two servers join: the swarm's weakest stage before and after they joined, the killed
   server's record expired and rebalancing ran (`after_join_min_stage_gain` = after / before).

Before those, on the fresh swarm: `--train-steps` micro-batches of generated sequences
through it, one at a time, while the stage's servers average their blocks every
`--average-period` s, against one process training the same model on the same micro-batches
(`loss_ratio_vs_single`: held-out loss through the swarm / in one process); then one more
stage average (`stage_spread`: the largest relative L2 distance between two servers' copies
of a block). After the kill run: greedy generation through the swarm (`tokens_per_s`) against
one process with the same parameters and an attention cache too (`tokens_per_s_single`), and
whether the tokens are the same (`generate_matches_single`).

Advertised capacities are what each server measured of one block alone (the servers start one
at a time, so each measures on a quiet machine), scaled by its duty cycle: during the runs the
servers' threads and every village's networking share the machine's cores, which the
efficiency figure includes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
import trio

from bench import over_repeats, run_quiet

SHARES = (5, 6, 7, 8, 5, 6, 7, 8, 6, 6)  # % of the machine per server, cycled
STAGE_AVERAGING_OFF = 600.0  # s: an --average-period above this means no stage averaging
HOLD_STILL = 3600.0  # s: the rebalancing period while generation runs


def _ideal(servers: list[Any], blocks: int) -> float:
    from core.swarm import spans

    live = [spans.ServerSpan(n.averaging.me, n.swarm.span[0], n.swarm.span[1],
                             n.swarm.throughput) for n in servers
            if n.swarm.span is not None and n.swarm.state == "online"]
    return spans.swarm_min(live, blocks) if live else 0.0


async def _start(nursery: trio.Nursery, home: str, name: str, seed: int,
                 overrides: dict[str, Any]) -> tuple[Any, trio.CancelScope]:
    from core.node import Node, NodeConfig

    env = {"GROVE_HOME": home, "GROVE_KEY_STORE": "file"}
    node = Node(NodeConfig.load(name, env=env, overrides={
        "listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
        "participate": True, "telemetry_period_s": 3600, **overrides}, seed=seed))
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            _send, receive = trio.open_memory_channel[object](10)
            await node.run(lambda s: None, lambda e: None, receive, task_status=task_status)

    await nursery.start(run)
    return node, scope


async def _drive(client: Any, lanes: int, seconds: float, batch: int,
                 at_half: Any = None) -> dict[str, Any]:
    """Micro-batches through the swarm from `lanes` tasks for `seconds`; samples/s overall
    and over the second half (after `at_half()` ran)."""
    from core.swarm.client import PipelineFailed

    spec = client.spec
    done: list[float] = []
    failed: list[str] = []
    t0 = trio.current_time()
    half = t0 + seconds / 2

    async def lane(i: int) -> None:
        rng = np.random.default_rng(i)
        while trio.current_time() < t0 + seconds:
            x = rng.standard_normal((batch, spec.seq, spec.hidden), dtype=np.float32)
            try:
                out, hops = await client.forward(x)
                await client.backward(hops, (out * 1e-3).astype(np.float32))
                done.append(trio.current_time())
            except PipelineFailed as e:
                failed.append(str(e))

    async def halfway() -> None:
        await trio.sleep_until(half)
        if at_half is not None:
            await at_half()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(halfway)
        for i in range(lanes):
            nursery.start_soon(lane, i)
    end = trio.current_time()
    second = [t for t in done if t >= half + 2.0]  # after the kill and the failed hops
    return {"sps": len(done) * batch / (end - t0),
            "sps_second_half": len(second) * batch / max(1e-9, end - half - 2.0),
            "failed": failed}


async def _settle(client: Any, servers: list[Any], blocks: int, quiet: float,
                  limit: float) -> float:
    """Until every block is served and no server moved for `quiet` s; returns the time."""
    t0 = trio.current_time()
    last, still_since = None, trio.current_time()
    while trio.current_time() - t0 < limit:
        layout = tuple((n.swarm.span, n.swarm.state) for n in servers)
        if layout != last:
            last, still_since = layout, trio.current_time()
        covered = all(any(n.swarm.span and n.swarm.span[0] <= b < n.swarm.span[1]
                          and n.swarm.state == "online" for n in servers)
                      for b in range(blocks))
        if covered and trio.current_time() - still_since >= quiet:
            break
        await trio.sleep(0.5)
    await client.refresh()
    return trio.current_time() - t0


async def _quality(client_node: Any, servers: list[Any], spec: Any, args: argparse.Namespace
                   ) -> dict[str, Any]:
    """Training through the fresh swarm against one process on the same micro-batches, then
    the stage spread after one more stage average."""
    import torch

    from core.swarm.client import SwarmClient
    from core.swarm.model import add_grads, build_block, build_ends, synthetic_batch
    from core.swarm.trainer import GlobalSteps

    client = SwarmClient(client_node.ctx, client_node.dht, client_node.ledger, spec)
    await client.refresh()
    embed, head = build_ends(spec)
    opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=3e-3)
    # one process: the same model, the same optimizers (the servers' Adam per block)
    s_embed, s_head = build_ends(spec)
    s_blocks = [build_block(spec, i) for i in range(spec.blocks)]
    s_opt = torch.optim.Adam([*s_embed.parameters(), *s_head.parameters()], lr=3e-3)
    b_opts = [torch.optim.Adam(b.parameters(), lr=servers[0].settings.swarm_lr)
              for b in s_blocks]
    g = torch.Generator().manual_seed(0)
    held = synthetic_batch(spec, 64, torch.Generator().manual_seed(99))
    glob, period = args.update == "global", args.average_period
    s_params = [*s_embed.parameters(), *s_head.parameters()]
    sums: dict[str, Any] = {"group": None, "count": 0, "grads": None}
    ends_steps = GlobalSteps([*embed.parameters(), *head.parameters()], opt, period,
                             time.time()) if glob else None

    def single_flush() -> None:  # update "global": one step on the group's mean gradient
        if sums["count"]:
            every = s_params + [q for b in s_blocks for q in b.parameters()]
            for q, total in zip(every, sums["grads"], strict=True):
                q.grad = total / sums["count"]
            s_opt.step()
            for b, o in zip(s_blocks, b_opts, strict=True):
                torch.nn.utils.clip_grad_norm_(b.parameters(), 1.0)  # as a server does
                o.step()
        sums.update(count=0, grads=None)

    def single_step(ids: Any, y: Any, group: int | None) -> None:  # in a thread: the
        if group is not None and group != sums["group"]:            # villages' networking
            single_flush()                                           # shares the trio one
            sums["group"] = group
        s_opt.zero_grad()
        for o in b_opts:
            o.zero_grad()
        h = s_embed(ids)
        for b in s_blocks:
            h = b(h)
        loss = torch.nn.functional.cross_entropy(s_head(h).reshape(-1, spec.vocab),
                                                 y.reshape(-1))
        loss.backward()
        if group is not None:  # kept for the group's step
            sums["grads"] = add_grads(sums["grads"], s_params + [
                q for b in s_blocks for q in b.parameters()])
            sums["count"] += 1
            return
        s_opt.step()
        for b, o in zip(s_blocks, b_opts, strict=True):
            torch.nn.utils.clip_grad_norm_(b.parameters(), 1.0)  # as a server does
            o.step()

    t0 = time.monotonic()
    for _ in range(args.train_steps):
        ids, y = synthetic_batch(spec, args.train_batch, g)
        if ends_steps is not None and ends_steps.count >= args.global_batch \
                and int(time.time() // period) == ends_steps.group:
            # this group holds its share: the next micro-batch goes to the next step
            await trio.sleep((ends_steps.group + 1) * period - time.time() + 0.05)
        await client.train_step(ids, y, embed, head, opt, step=not glob)
        group = ends_steps.add(time.time()) if ends_steps is not None else None
        await trio.to_thread.run_sync(single_step, ids, y, group)
    train_s = time.monotonic() - t0
    rounds = {id(n): dict(n.swarm.stage_rounds) for n in servers}
    if args.average_period <= STAGE_AVERAGING_OFF:
        # one more stage average: every stage's servers at the same boundary (with update
        # "global" the last group's step; with stage averaging off - a period above
        # STAGE_AVERAGING_OFF - the spread as training left it)
        boundary = (int(time.time() // period) + 1) * period
        await trio.sleep(max(0.0, boundary - time.time()) + period * 0.85)
    if ends_steps is not None:
        ends_steps.flush()
        await trio.to_thread.run_sync(single_flush)
    swarm_loss = await client.evaluate(*held, embed, head)
    with torch.no_grad():
        h = s_embed(held[0])
        for b in s_blocks:
            h = b(h)
        single = float(torch.nn.functional.cross_entropy(
            s_head(h).reshape(-1, spec.vocab), held[1].reshape(-1)))
    spread = 0.0
    for b in range(spec.blocks):
        holders = [n for n in servers if n.swarm.held and n.swarm.held[0] <= b < n.swarm.held[1]]
        flats = [(await n.swarm.worker.submit(lambda n=n, b=b: n.swarm.worker.params(b)))[0]
                 for n in holders]
        for other in flats[1:]:
            spread = max(spread, float(np.linalg.norm(other - flats[0])
                                       / np.linalg.norm(flats[0])))
    averaged = sum(1 for n in servers if n.swarm.stage_rounds != rounds[id(n)])
    return {"train_steps": args.train_steps, "update": args.update,
            "global_batch": args.global_batch if glob else 1,
            "optimizer_steps": ends_steps.steps if ends_steps is not None else args.train_steps,
            "train_seconds": round(train_s, 1),
            "held_out_loss_swarm": round(swarm_loss, 4),
            "held_out_loss_single": round(single, 4),
            "loss_ratio_vs_single": round(swarm_loss / single, 4),
            "stage_spread": spread, "servers_averaged_last": averaged,
            "stage_averaging": args.average_period <= STAGE_AVERAGING_OFF,
            "stage_rounds_with_others": sum(1 for n in servers
                                            for _i, m in n.swarm.stage_rounds.values() if m > 1),
            "model_rounds_with_others": sum(1 for n in servers
                                            for _i, m in n.swarm.stages.repairs.values()
                                            if m > 1)}


async def _generation(client: Any, spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Greedy generation through the swarm against one process holding the parameters the
    route's servers hold (fetched), with an attention cache too."""
    import torch

    from core.swarm.calls import fetch_params
    from core.swarm.flat import block_size, set_flat
    from core.swarm.model import build_block, build_ends, embed_at, generate_single

    embed, head = build_ends(spec)
    prompts = [[(7 * i + j) % spec.vocab for j in range(4)] for i in range(args.generations)]
    new = spec.seq - 4
    size = block_size(spec)
    swarm_s, matches, blocks = 0.0, True, []
    for p in prompts:
        t0 = time.monotonic()
        got = await client.generate(p, new, embed, head)
        swarm_s += time.monotonic() - t0
        blocks = []  # what this session's servers hold (each session picks its own route)
        for hop in client.route:
            for b in range(hop.start, hop.end):
                flat = await fetch_params(client.ctx, hop.server, b, size)
                if flat is None:
                    raise RuntimeError(f"block {b}'s parameters could not be fetched")
                block = build_block(spec, b)
                set_flat(block, flat)
                blocks.append(block)
        matches = matches and got == generate_single(blocks, p, new, embed=embed, head=head)
    t0 = time.monotonic()
    with torch.no_grad():  # one process, with an attention cache as the servers have
        for p in prompts:
            caches: dict[int, Any] = {}
            position, ids, out = 0, list(p), []
            while len(out) < new:
                h = embed_at(embed, torch.tensor([ids]), position)
                for i, b in enumerate(blocks):
                    h, caches[i] = b.step(h, caches.get(i))
                out.append(int(head(h[:, -1:])[0, -1].argmax()))
                position, ids = position + len(ids), [out[-1]]
    single_s = time.monotonic() - t0
    return {"generations": len(prompts), "tokens_each": new,
            "tokens_per_s": round(len(prompts) * new / swarm_s, 1),
            "tokens_per_s_single": round(len(prompts) * new / single_s, 1),
            "generate_matches_single": matches}


async def _throughput(client: Any, servers: list[Any], scopes: list[Any], spec: Any,
                      args: argparse.Namespace, out: dict[str, Any]) -> list[Any]:
    """The settled swarm's throughput, then a kill halfway: the servers still alive."""
    ideal = _ideal(servers, spec.blocks)
    run1 = await _drive(client, args.lanes, args.seconds, args.batch)
    out.update(samples_per_second=round(run1["sps"], 1),
               ideal_samples_per_second=round(ideal, 1),
               efficiency=round(run1["sps"] / ideal, 3) if ideal else None,
               failed_micro_batches_settled=len(run1["failed"]),
               spans=[list(n.swarm.span) for n in servers],
               advertised=[round(n.swarm.throughput, 1) for n in servers])
    print(f"settled: {run1['sps']:.1f} samples/s of an ideal {ideal:.1f}", file=sys.stderr)

    # the fastest server of a stage that has another: its micro-batches must go elsewhere
    def redundant(i: int) -> bool:
        span = servers[i].swarm.span
        return sum(1 for n in servers if n.swarm.span == span) > 1

    victim = max((i for i in range(len(servers)) if redundant(i)),
                 key=lambda i: servers[i].swarm.throughput)

    async def kill() -> None:
        servers[victim].dht.withdraw_on_stop = False
        scopes[victim].cancel()  # its host closes at once, like a crash

    run2 = await _drive(client, args.lanes, args.seconds, args.batch, at_half=kill)
    alive = [n for i, n in enumerate(servers) if i != victim]
    ideal_after = _ideal(alive, spec.blocks)
    out.update(after_kill_samples_per_second=round(run2["sps_second_half"], 1),
               after_kill_ideal=round(ideal_after, 1),
               after_kill_efficiency=round(run2["sps_second_half"] / ideal_after, 3)
               if ideal_after else None,
               failed_micro_batches=len(run2["failed"]),
               failures=run2["failed"][:5],
               bans=client.stats.bans[:5], retries=client.stats.retries)
    print(f"after a kill: {run2['sps_second_half']:.1f} samples/s of an ideal "
          f"{ideal_after:.1f}; {len(run2['failed'])} micro-batches failed", file=sys.stderr)
    out["_ideal_after"] = ideal_after
    return alive


async def _join(client: Any, servers: list[Any], add_server: Any, spec: Any,
                args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Two servers join: the weakest stage before and after."""
    from core.swarm import directory

    ideal_after = out.pop("_ideal_after", _ideal(servers, spec.blocks))
    before = ideal_after
    for i in range(args.servers, args.servers + 2):
        await add_server(i)
    # until the killed server's last record expires, everyone (the joiners too) counts it
    # as serving; rebalancing after that is what moves a server to where it was
    await trio.sleep(directory.RECORD_TTL)
    await _settle(client, servers, spec.blocks, args.quiet, args.settle)
    after = _ideal(servers, spec.blocks)
    out.update(after_join_min_stage_before=round(before, 1),
               after_join_min_stage_after=round(after, 1),
               after_join_min_stage_gain=round(after / before, 3) if before else None,
               spans_after_join=sorted(list(n.swarm.span) for n in servers))
    print(f"two joined: weakest stage {before:.1f} -> {after:.1f} samples/s",
          file=sys.stderr)


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.swarm import service
    from core.swarm.client import SwarmClient
    from core.swarm.model import MODELS

    service.REBALANCE_PERIOD = args.rebalance
    spec = MODELS[args.model]
    per_span = spec.blocks // args.stages
    home = tempfile.mkdtemp(prefix="grove-swarm-bench-")
    out: dict[str, Any] = {"servers": args.servers, "stages": args.stages,
                           "blocks": spec.blocks, "model": spec.name, "batch": args.batch,
                           "lanes": args.lanes, "seconds": args.seconds,
                           "cpu_count": os.cpu_count()}
    async with trio.open_nursery() as nursery:
        client_node, _ = await _start(nursery, home, "client", 0, {})
        assert client_node.host is not None
        boot = (client_node.host.listen_addrs()[0],)
        servers: list[Any] = []
        scopes: list[trio.CancelScope] = []

        async def add_server(i: int) -> None:
            node, scope = await _start(nursery, home, f"s{i}", i + 1, {
                "bootstrap": boot, "swarm_serve": True, "swarm_max_blocks": per_span,
                "swarm_model": spec.name,
                # (stage averages only where the loss comparison needs them: rounds of
                # small-lm's blocks take seconds of this one process's CPU and networking)
                "swarm_average_period_s": (args.average_period if "quality" in args.phases
                                           else 3600.0),
                "swarm_update": args.update,
                "cpu_share": SHARES[i % len(SHARES)]})
            servers.append(node)
            scopes.append(scope)
            # one at a time: each measures its block on an otherwise quiet machine (eight
            # measuring at once on two cores each saw a quarter of the truth)
            while node.swarm.speed is None:  # noqa: ASYNC110 (a field, not an event)
                await trio.sleep(0.1)

        t_start = time.monotonic()
        for i in range(args.servers):
            await add_server(i)
        client = SwarmClient(client_node.ctx, client_node.dht, client_node.ledger, spec,
                             check_rate=args.check_rate)
        settled = await _settle(client, servers, spec.blocks, args.quiet, args.settle)
        print(f"{args.servers} servers settled in {time.monotonic() - t_start:.0f} s "
              f"({settled:.0f} s after starting); spans "
              f"{sorted(n.swarm.span for n in servers)}", file=sys.stderr)
        if "quality" in args.phases:
            out.update(await _quality(client_node, servers, spec, args))
            print(f"quality: {out}", file=sys.stderr)
        for n in servers:  # generation needs parameters that hold still: no more averages
            await n.settings_service.change({"swarm_average_period_s": 3600.0})
        if "throughput" in args.phases:
            servers = await _throughput(client, servers, scopes, spec, args, out)
        if "generation" in args.phases:
            # the same computer for both: every server lent --generation-share % of it (the
            # throughput runs' 5-8 % shares would compare a throttle, not the network path)
            shares = [n.settings.cpu_share for n in servers]
            # spans held still while it runs (its check then fetches each route server's
            # blocks): new shares change what servers advertise, and a rebalance could move
            # a server off a session's hop (see the README's generation row)
            service.REBALANCE_PERIOD = HOLD_STILL
            for n in servers:
                await n.settings_service.change({"cpu_share": args.generation_share})
            await trio.sleep(1.5 * args.rebalance)  # rebalances already due have run
            await _settle(client, servers, spec.blocks, args.quiet, args.settle)
            out.update(await _generation(client, spec, args),
                       generation_cpu_share=args.generation_share)
            service.REBALANCE_PERIOD = args.rebalance
            out["device"] = servers[0].swarm.view().device or "cpu"
            print(f"generation: {out['tokens_per_s']} tokens/s through the swarm, "
                  f"{out['tokens_per_s_single']} in one process; same tokens: "
                  f"{out['generate_matches_single']}", file=sys.stderr)
            for n, share in zip(servers, shares, strict=True):
                await n.settings_service.change({"cpu_share": share})
        if "join" in args.phases:
            await _join(client, servers, add_server, spec, args, out)
        nursery.cancel_scope.cancel()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.swarm")
    ap.add_argument("--servers", type=int, default=8)
    ap.add_argument("--stages", type=int, default=4, help="the model's 8 blocks in this many")
    ap.add_argument("--seconds", type=float, default=30.0, help="each measured run")
    ap.add_argument("--lanes", type=int, default=16, help="micro-batches in flight")
    ap.add_argument("--batch", type=int, default=16, help="samples per micro-batch")
    ap.add_argument("--model", default="small-lm", choices=("small-lm", "tiny-lm"))
    ap.add_argument("--rebalance", type=float, default=10.0,
                    help="servers' mean rebalancing period (s); gardeners' nodes use 60")
    ap.add_argument("--quiet", type=float, default=15.0,
                    help="s without a move before the swarm counts as settled")
    ap.add_argument("--settle", type=float, default=180.0, help="most s to wait for that")
    ap.add_argument("--check-rate", type=float, default=0.0,
                    help="share of forward hops the client recomputes (credits' sampled "
                         "checks; each fetches the server's blocks)")
    ap.add_argument("--train-steps", type=int, default=100,
                    help="micro-batches of the loss comparison with one process")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--average-period", type=float, default=40.0,
                    help="s between stage averages during the loss comparison (8 servers "
                         "of small-lm in one process on 2 cores need about 40 s to move "
                         "a period's rounds; gardeners' villages use 20)")
    ap.add_argument("--update", choices=("local", "global"), default="global",
                    help="how served blocks learn (the swarm_update setting)")
    ap.add_argument("--global-batch", type=int, default=4,
                    help="with --update global: micro-batches per optimizer step, at most")
    ap.add_argument("--generations", type=int, default=5, help="prompts generated from")
    ap.add_argument("--generation-share", type=int, default=100,
                    help="CPU share (%%) every server lends during the generation run")
    ap.add_argument("--phases", default="quality,throughput,generation,join",
                    help="which runs, comma-separated (default: all)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs; numbers are then the median, with min/median/max under 'spread'")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if 8 % args.stages:
        ap.error("--stages must divide the model's 8 blocks")
    args.phases = set(args.phases.split(","))
    if args.phases - {"quality", "throughput", "generation", "join"}:
        ap.error(f"unknown phases {sorted(args.phases)}")
    result = over_repeats([run_quiet(_bench, args) for _ in range(max(1, args.repeats))])
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
