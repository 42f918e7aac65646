"""Ledger throughput: `python -m bench.ledger --json`.

Receipts signed by real Ed25519 village keys (this village the worker, `--consumers` others
the consumers, each pair's receipts in sequence) are fed to a real ledger file (WAL,
synchronous=FULL) through its writer thread; every signature is checked on the way in.
Fields: `receipts_per_second` (submitted to acknowledged, signature checks and commits
included), then `balance_query_ms` (median of 50 balance reads) with `--receipts` in the file.
Signing happens before the clock starts; `round_receipts_per_second` gives the min / median /
max over the rounds (each `--round` receipts), so one slow stretch shows. Reaching 1M takes a
few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import spread


def main(argv: list[str] | None = None) -> int:
    from core.dht.keyspace import peer_id_from_public_key
    from core.identity import VillageKey
    from core.ledger import receipts as rc
    from core.ledger.store import Ledger

    ap = argparse.ArgumentParser(prog="python -m bench.ledger")
    ap.add_argument("--receipts", type=int, default=1_000_000)
    ap.add_argument("--consumers", type=int, default=50)
    ap.add_argument("--round", type=int, default=20_000, help="receipts signed, then written")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    me_key = VillageKey.generate()
    me = peer_id_from_public_key(me_key.public_bytes)
    others = [VillageKey.generate() for _ in range(args.consumers)]
    ids = [peer_id_from_public_key(k.public_bytes) for k in others]
    path = Path(tempfile.mkdtemp(prefix="grove-ledger-bench-")) / "ledger.db"
    ledger = Ledger(path, me)
    state = {p: (0, 0) for p in ids}
    written, busy, rates = 0, 0.0, []
    ctx = "ab" * 32
    while written < args.receipts:
        n = min(args.round, args.receipts - written)
        wires = []
        for i in range(n):
            j = (written + i) % len(ids)
            seq, total = state[ids[j]]
            r = rc.Receipt(rc.VERSION, me, ids[j], "swarm", 16, total + 16, seq + 1, ctx,
                           time.time())
            state[ids[j]] = (seq + 1, total + 16)
            wires.append(rc.encode(rc.worker_sign(rc.consumer_sign(r, others[j].sign),
                                                  me_key.sign)))
        t0 = time.perf_counter()
        futures = [ledger.submit(w) for w in wires]
        for f in futures:
            f.result()
        busy += time.perf_counter() - t0
        rates.append(n / (time.perf_counter() - t0))
        written += n
        print(f"  {written} receipts, {written / busy:.0f}/s so far", file=sys.stderr)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        ledger.balance()
        times.append((time.perf_counter() - t0) * 1000)
    size = path.stat().st_size
    ledger.close()
    out = {"receipts": written, "receipts_per_second": round(written / busy),
           "round_receipts_per_second": spread(rates, 0),
           "balance_query_ms": round(statistics.median(times), 3),
           "balance_query_max_ms": round(max(times), 3), "file_mb": round(size / 2**20, 1),
           "cpu_count": os.cpu_count()}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
