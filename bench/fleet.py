"""Many villages across several processes, for the benchmarks.

One trio loop hosting 50+ full villages is CPU-bound on a 2-core machine long before the
protocols are (every village's Yamux, Noise and timers share one core), so the benchmarks
spread their villages over worker processes: `Fleet(nodes, procs)` starts `procs` workers
(`python -m bench.fleet`), each hosting a slice of the villages (real py-libp2p hosts on
loopback), and talks to them over their stdin/stdout, one JSON object per line:

    -> {"cmd": "status"}                      <- {"published": n, "tables": [...], "rss_mb": x}
    -> {"cmd": "churn", "ids": [...]}         <- {"stopped": n}   (vanish: no withdrawal)
    -> {"cmd": "get", "asker": id, "target": id}  <- {"ms": t, "value": hex | null}
    -> {"cmd": "own", "id": id}               <- {"value": hex | null}  (what it published)
    -> {"cmd": "holders", "target": id}       <- {"holders": [...]}  (live ones holding its record)
    -> {"cmd": "telemetry"}                   <- {"villages": [{"local": {...}, "network":
                                                  {"villages": n, "means": {...}} | null}]}
    -> {"cmd": "average", "step": s, ...}     <- {"results": {id: {...}}}  (bench.allreduce)
    -> {"cmd": "quit"}

The first worker's first `bootstraps` villages are the bootstrap peers of all the others; like
Foundation bootstrap nodes they accept up to 1024 connections (a home village's default of 64
left the 65th village onwards refused by every bootstrap at 100 villages).

`role="dht"` runs villages that hold only a host and the DHT (as hivemind's DHT-only peers do),
beside the default `"full"`: every service of a real village. `procs` may be as large as the
village count: one village per process, as hivemind's harness runs its peers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil
import trio

from bench import run_quiet

BOOTSTRAP_MAX_CONNECTIONS = 1024  # a Foundation bootstrap node's setting, not a home's 64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Fleet:
    def __init__(self, nodes: int, procs: int, bootstraps: int, seed: int,
                 telemetry_period: int, role: str = "full") -> None:
        self.home = tempfile.mkdtemp(prefix="grove-fleet-")
        per = -(-nodes // procs)
        first = min(nodes, max(per, bootstraps))  # the bootstrap villages share the first
        slices = [(0, first)] + [(i, min(per, nodes - i)) for i in range(first, nodes, per)]
        self.workers: list[subprocess.Popen[str]] = []
        self.owner: dict[str, int] = {}  # peer id -> worker index
        self.ids: list[str] = []
        boot: list[str] = []
        for w, (first, count) in enumerate(slices):
            cmd = [sys.executable, "-m", "bench.fleet", "--home", self.home, "--first",
                   str(first), "--count", str(count), "--seed", str(seed),
                   "--telemetry-period", str(telemetry_period), "--role", role,
                   "--bootstraps", str(bootstraps if w == 0 else 0), "--boot", *boot]
            proc = subprocess.Popen(cmd, cwd=ROOT, text=True, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, bufsize=1)
            self.workers.append(proc)
            if w == 0:
                boot = self._read(0)["boot"]
        for w in range(len(self.workers)):  # workers start their villages in parallel
            started = self._read(w)
            for pid in started["ids"]:
                self.owner[pid] = w
                self.ids.append(pid)

    def _read(self, w: int) -> dict[str, Any]:
        stdout = self.workers[w].stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"fleet worker {w} exited (code {self.workers[w].poll()})")
        return json.loads(line)

    def ask(self, w: int, **cmd: Any) -> dict[str, Any]:
        stdin = self.workers[w].stdin
        assert stdin is not None
        stdin.write(json.dumps(cmd) + "\n")
        stdin.flush()
        return self._read(w)

    def ask_all(self, **cmd: Any) -> list[dict[str, Any]]:
        for proc in self.workers:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cmd) + "\n")
            proc.stdin.flush()
        return [self._read(w) for w in range(len(self.workers))]

    def close(self) -> None:
        for proc in self.workers:
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- the worker -------------------------------------------------------------------------------
def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _worker(args: argparse.Namespace) -> None:
    from core.dht.service import RPC_COUNTS
    from core.net import yamux
    from core.net.host import STREAM_COUNTS
    from core.node import Node, NodeConfig

    env = {"GROVE_HOME": args.home, "GROVE_KEY_STORE": "file"}
    rss0 = psutil.Process().memory_info().rss / 2**20
    nodes: dict[str, Node] = {}
    scopes: dict[str, trio.CancelScope] = {}

    async def run_node(node: Any, scope: trio.CancelScope,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            _send, receive = trio.open_memory_channel[object](10)
            await node.run(lambda s: None, lambda e: None, receive, task_status=task_status)

    lag = [0.0]  # the worst oversleep of a 0.1 s sleep since the last status: loop latency

    async def watch_lag() -> None:
        while True:
            t0 = trio.current_time()
            await trio.sleep(0.1)
            lag[0] = max(lag[0], trio.current_time() - t0 - 0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_lag)
        boot = tuple(args.boot)
        for i in range(args.first, args.first + args.count):
            overrides = {"listen_host": "127.0.0.1", "listen_port": 0,
                         "use_default_bootstrap": False, "bootstrap": boot,
                         "telemetry_period_s": args.telemetry_period}
            if i - args.first < args.bootstraps:  # every village dials them: room for all
                overrides["max_connections"] = BOOTSTRAP_MAX_CONNECTIONS
            config = NodeConfig.load(f"n{i}", env=env, overrides=overrides, seed=i)
            node = Node(config) if args.role == "full" else DhtVillage(config)
            scope = trio.CancelScope()
            await nursery.start(run_node, node, scope)
            assert node.host is not None
            nodes[node.host.peer_id] = node
            scopes[node.host.peer_id] = scope
            if i - args.first < args.bootstraps:
                boot = (*boot, node.host.listen_addrs()[0])
                if i - args.first == args.bootstraps - 1:
                    _say({"boot": list(boot)})
        _say({"ids": list(nodes)})
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            what = cmd["cmd"]
            if what == "quit":
                break
            if what == "status":
                worst_lag, lag[0] = lag[0], 0.0
                live = [n for p, n in nodes.items() if not scopes[p].cancel_called]
                _say({"published": sum(1 for n in live if n.dht.record_placed),
                      "live": len(live), "tables": [len(n.dht.table or ()) for n in live],
                      "alone": [len(n.host.connected_peers()) for n in live  # type: ignore
                                if n.host is not None and not n.dht.table],
                      "rss_mb": psutil.Process().memory_info().rss / 2**20 - rss0,
                      "silent_closes": yamux.silent_closes, "loop_lag_s": worst_lag,
                      "backlog": _backlog(live),
                      "streams": {**STREAM_COUNTS,
                                  **{f"rpc {k}": v for k, v in RPC_COUNTS.items()}}})
            elif what == "churn":
                for pid in cmd["ids"]:
                    nodes[pid].dht.withdraw_on_stop = False  # vanish, like a pulled plug
                    scopes[pid].cancel()
                _say({"stopped": len(cmd["ids"])})
            elif what == "get":
                t0 = time.perf_counter()
                got = await nodes[cmd["asker"]].dht.get_village(cmd["target"])
                _say({"ms": (time.perf_counter() - t0) * 1000,
                      "value": got.value.hex() if got is not None else None})
            elif what == "telemetry":
                _say({"villages": [_telemetry(n) for p, n in nodes.items()
                                   if not scopes[p].cancel_called]})
            elif what == "average":
                _say({"results": await _average_step(
                    {p: n for p, n in nodes.items() if not scopes[p].cancel_called}, cmd)})
            elif what == "holders":  # which live villages of this worker hold a record
                from core.dht.records import village_key

                key = village_key(cmd["target"])
                now = time.time()
                _say({"holders": [p for p, n in nodes.items() if not scopes[p].cancel_called
                                  and n.dht is not None and n.dht.store.get(key, now)
                                  is not None]})
            elif what == "own":
                own = nodes[cmd["id"]].dht.own
                _say({"value": own.value.hex() if own is not None else None})
            else:
                _say({"error": f"unknown command {what!r}"})
        nursery.cancel_scope.cancel()


class DhtVillage:
    """A village of only a host and the DHT (hivemind's DHT-only peer): the same key, host,
    peer guard, record and DHT service as a full village, and none of its other services."""

    def __init__(self, config: Any) -> None:
        from core.settings_service import FixedSettings

        self.config, self.host, self.dht = config, None, None
        self.settings = FixedSettings(config.settings)

    async def run(self, publish: Any, emit: Any, commands: Any,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        import random

        from core.dht.service import DhtService
        from core.net.village_host import open_village_host
        from core.peer_guard import PeerGuard
        from core.ports import ServiceContext, SystemClock
        from core.tiers import compute_tier
        from core.village import VillageRecordSource

        clock = SystemClock()
        tier = compute_tier([], nvml_reason="a DHT-only village lends no compute",
                            use_gpu=False, allowed_gpus=(), vram_cap_mb=0)
        async with open_village_host(self.config.key.seed, self.settings.current) as (host, _):
            guard = PeerGuard(clock)
            guard.attach(host)
            ctx = ServiceContext(host.peer_id, self.config.key.sign, self.config.paths.data_dir,
                                 random.Random(self.config.seed), clock, self.settings,
                                 guard.penalise, host)
            self.dht = DhtService(ctx, VillageRecordSource(ctx, tier=lambda: tier))
            self.host = host
            async with trio.open_nursery() as nursery:
                nursery.start_soon(guard.run)
                nursery.start_soon(self.dht.run)
                nursery.start_soon(self._join, host)
                task_status.started(host.peer_id)
                await trio.sleep_forever()


    async def _join(self, host: Any) -> None:
        """Dial the bootstrap villages until connected to one (a DHT-only peer's join)."""
        from core.errors import NetworkError

        for attempt in range(30):
            for address in self.settings.current.bootstrap:
                try:
                    await host.connect(address, timeout=10)
                    return
                except NetworkError:
                    continue
            await trio.sleep(min(2.0 ** attempt, 10.0))


def step_vector(seed: int, step: int, index: int, params: int) -> Any:
    """Village `index`'s tensor in `step` (the same in every process)."""
    import numpy as np

    return np.random.default_rng(seed * 1000 + step * 97 + index).standard_normal(
        params, dtype=np.float32)


async def _average_step(nodes: dict[str, Any], cmd: dict[str, Any]) -> dict[str, Any]:
    """One Moshpit step of bench.allreduce for this worker's villages: each starts up to
    `jitter` s after `t0` (wall clock, shared by the processes), averages its seeded tensor
    under its group's key (compressed as `compression` says), and is checked against the exact
    mean of the members it reports and the codec's error bound (after every village here
    finished, so the checking does not slow the step)."""
    import numpy as np

    from core.averaging import wire
    from core.averaging.moshpit import group_key

    seed, step, params = cmd["seed"], cmd["step"], cmd["params"]
    index: dict[str, int] = cmd["index"]
    t0, jitter, gather = cmd["t0"], cmd["jitter"], cmd["gather"]
    mine = [p for p in nodes if p in cmd["coords"]]
    done: dict[str, tuple[Any, float]] = {}

    # made before the start (a 37.8M-value tensor takes a second to draw, and drawing
    # blocks the loop: drawn during the step it would delay the other villages here)
    tensors = {pid: step_vector(seed, step, index[pid], params) for pid in mine}

    async def one(pid: str) -> None:
        rng = np.random.default_rng([seed, step, index[pid]])
        await trio.sleep(max(0.0, t0 - time.time() + float(rng.uniform(0, jitter))))
        start = time.time()
        key = "bench/{}/{}/{}".format(step, *group_key(tuple(cmd["coords"][pid]), step))
        res = await nodes[pid].averaging.average(
            key, tensors[pid], max_group=cmd["group"],
            close_at=t0 + jitter + gather, compression=cmd.get("compression", "none"),
            deadline_at=t0 + jitter + gather + cmd["timeout"])
        done[pid] = (res, time.time() - start)

    async with trio.open_nursery() as nursery:
        for pid in mine:
            nursery.start_soon(one, pid)
    vectors: dict[str, Any] = tensors  # the averaging service copies, never writes them
    out: dict[str, Any] = {}
    for pid, (res, secs) in done.items():
        for m in res.members:
            if m not in vectors:
                vectors[m] = step_vector(seed, step, index[m], params)
        exact = np.mean([vectors[m] for m in res.members], axis=0)
        dtype = wire.choose_dtype(params, cmd.get("compression", "none"))
        out[pid] = {"members": len(res.members), "complete": res.complete, "seconds": secs,
                    "error": float(np.abs(res.vector - exact).max()), "reason": res.reason,
                    "bound": wire.error_bound(dtype, [vectors[m] for m in res.members]),
                    "nbytes": int(res.vector.nbytes) * wire.BYTES_PER[dtype] // 4}
    return out


def _backlog(nodes: list[Any]) -> dict[str, int]:
    """Yamux stream slots in use (of 256 per connection): (max, total, connections)."""
    used = []
    for n in nodes:
        if n.host is None:
            continue
        for conns in n.host._host.get_network().connections.values():
            for c in conns:
                sem = getattr(c.muxed_conn, "stream_backlog_semaphore", None)
                if sem is not None:
                    used.append(256 - sem.value)
    return {"max": max(used, default=0), "total": sum(used), "conns": len(used)}


def _telemetry(node: Any) -> dict[str, Any]:
    state = node.telemetry.state
    net = state.network
    return {"local": state.local, "error": state.last_error,
            "rtts": len(node.discovery.rtts), "table": len(node.dht.table or ()),
            "network": None if net is None else {"villages": net.villages, "means": net.means,
                                                 "members_last_round": net.members_last_round}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet")
    ap.add_argument("--home", required=True)
    ap.add_argument("--first", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bootstraps", type=int, default=0)
    ap.add_argument("--telemetry-period", type=int, default=3600)
    ap.add_argument("--role", choices=("full", "dht"), default="full")
    ap.add_argument("--boot", nargs="*", default=[])
    args = ap.parse_args(argv)
    run_quiet(_worker, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
