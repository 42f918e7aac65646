"""DHT lookups at scale: `python -m bench.dht --nodes 100 --churn 0.2 --gets 200 --json`.

All nodes are full Grove nodes (real py-libp2p hosts on loopback, TCP + Noise + Yamux) in
ONE process and one trio loop. Each publishes its signed village record; then `churn` of them
vanish without a goodbye (no withdrawal, like a computer unplugged); then `gets` sequential
lookups of random records (including those whose writer is gone) from random live nodes,
each checked byte-for-byte against what its writer published.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import psutil
import trio


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def run(args: argparse.Namespace) -> dict[str, object]:
    from core.node import Node, NodeConfig

    rng = random.Random(args.seed)
    home = tempfile.mkdtemp(prefix="grove-bench-dht-")
    env = {"GROVE_HOME": home, "GROVE_KEY_STORE": "file"}
    rss0 = _rss_mb()
    began = time.monotonic()
    nodes: list[Node] = []
    scopes: list[trio.CancelScope] = []

    async def run_node(node: Node, scope: trio.CancelScope,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            _send, receive = trio.open_memory_channel[object](10)
            await node.run(lambda s: None, lambda e: None, receive, task_status=task_status)

    async with trio.open_nursery() as nursery:
        boot: tuple[str, ...] = ()
        for i in range(args.nodes):
            overrides = {"listen_host": "127.0.0.1", "listen_port": 0,
                         "use_default_bootstrap": False, "bootstrap": boot}
            node = Node(NodeConfig.load(f"n{i}", env=env, overrides=overrides, seed=i))
            scope = trio.CancelScope()
            await nursery.start(run_node, node, scope)
            nodes.append(node)
            scopes.append(scope)
            if i < args.bootstraps:
                boot = (*boot, node.host.listen_addrs()[0])  # type: ignore[union-attr]
        print(f"{args.nodes} nodes started in {time.monotonic() - began:.1f} s",
              file=sys.stderr)
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            if all(n.dht.own is not None and n.dht.put_acks > 0 for n in nodes):
                break
            await trio.sleep(0.5)
        startup = time.monotonic() - began
        by_id = {n.host.peer_id: n for n in nodes}  # type: ignore[union-attr]
        put_success = sum(1 for n in nodes if n.dht.put_acks > 0) / len(nodes)
        table_sizes = [len(n.dht.table or ()) for n in nodes]
        rss_per_node = (_rss_mb() - rss0) / len(nodes)
        print(f"records published after {startup:.1f} s; routing tables "
              f"{min(table_sizes)}..{max(table_sizes)}", file=sys.stderr)

        gone = set(rng.sample(range(1, len(nodes)), int(args.churn * len(nodes))))
        for i in gone:
            nodes[i].dht.withdraw_on_stop = False
            scopes[i].cancel()
        await trio.sleep(args.quiet)  # let the start-up storm (first scans) pass
        live = [n for i, n in enumerate(nodes) if i not in gone]
        ids = list(by_id)
        times, ok = [], 0
        for _ in range(args.gets):
            asker = rng.choice(live)
            target = rng.choice(ids)
            if target == asker.host.peer_id:  # type: ignore[union-attr]
                target = rng.choice([t for t in ids if t != asker.host.peer_id])  # type: ignore
            t0 = time.perf_counter()
            got = await asker.dht.get_village(target)
            times.append((time.perf_counter() - t0) * 1000)
            if args.verbose:
                print(f"get {times[-1]:.1f} ms {'ok' if got else 'missing'}", file=sys.stderr)
            want = by_id[target].dht.own  # what its writer last published
            ok += got is not None and want is not None and got.value == want.value
        nursery.cancel_scope.cancel()

    times.sort()
    return {
        "nodes": args.nodes, "churn": args.churn, "gets": args.gets, "processes": 1,
        "bootstraps": args.bootstraps,
        "put_success": round(put_success, 4), "get_success": round(ok / args.gets, 4),
        "get_p50_ms": round(statistics.median(times), 2),
        "get_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "get_max_ms": round(times[-1], 2),
        "rss_mb_per_node": round(rss_per_node, 2),
        "startup_seconds": round(startup, 2),
        "routing_table_min": min(table_sizes), "routing_table_median":
            statistics.median(table_sizes),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dht")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--churn", type=float, default=0.2)
    ap.add_argument("--gets", type=int, default=200)
    ap.add_argument("--bootstraps", type=int, default=1)
    ap.add_argument("--settle", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", type=float, default=15.0,
                    help="seconds between the churn and the first get")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print each get's time")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    from core.net.logs import route_libp2p_logs

    route_libp2p_logs(logging.CRITICAL)
    result = trio.run(run, args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
