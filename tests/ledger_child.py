"""A process that feeds receipts into a ledger until it is killed (the kill -9 test's victim).

`python -m tests.ledger_child PATH` - keys from fixed seeds; it continues each pair's sequence
from what the ledger holds, and prints `ack SEQ` only after the ledger acknowledged it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from core.dht.keyspace import peer_id_from_public_key
from core.identity import VillageKey
from core.ledger import receipts as rc
from core.ledger.store import Ledger

WORKER = VillageKey(bytes(range(32)))
CONSUMER = VillageKey(bytes(range(1, 33)))
ME = peer_id_from_public_key(WORKER.public_bytes)
THEM = peer_id_from_public_key(CONSUMER.public_bytes)


def receipt(seq: int) -> bytes:
    r = rc.Receipt(rc.VERSION, ME, THEM, "swarm", 16, 16 * seq, seq, f"{seq:064x}", time.time())
    return rc.encode(rc.worker_sign(rc.consumer_sign(r, CONSUMER.sign), WORKER.sign))


def main() -> None:
    ledger = Ledger(Path(sys.argv[1]), ME)
    import sqlite3

    with sqlite3.connect(sys.argv[1]) as conn:
        row = conn.execute("SELECT seq FROM pairs").fetchone()
    seq = row[0] if row else 0
    print("ready", seq, flush=True)
    while True:
        futures = []
        for _ in range(20):
            seq += 1
            futures.append((seq, ledger.submit(receipt(seq))))
        for s, f in futures:
            f.result()
            print("ack", s, flush=True)


if __name__ == "__main__":
    main()
