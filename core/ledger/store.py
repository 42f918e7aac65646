"""The ledger: one SQLite file per village that never loses an acknowledged receipt.

WAL journal, synchronous=FULL, one writer thread: receipts are queued, checked (signatures,
shape, the pair's sequence and running total), written in batches, one transaction each, and
acknowledged only after the commit - so a kill -9 at any moment leaves every acknowledged
receipt on disk and nothing half-written. Schema created with sqlite-utils (explicit column
types); versions in `PRAGMA user_version`, migrated forward on open. Every entry the village
writes (a receipt, a credit decision) extends a hash chain (core.ledger.chain), so `verify()`
finds the first entry edited behind its back. Reading is core.ledger.reader's.

Bad input never costs what is recorded: a rejected receipt is answered with the reason; a
damaged file is refused at open with the reason and left untouched (LedgerDamaged); a full disk
rolls the batch back, answers its receipts with LedgerPaused and pauses crediting with a
warning until a write succeeds again.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from core.ledger import policy, rulings
from core.ledger import receipts as rc
from core.ledger.chain import (
    GENESIS,
    VerifyReport,
    event_digest,
    head_message,
    link,
    verify_file,
)
from core.ledger.reader import LedgerDamaged, LedgerReader

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
BATCH = 512
class LedgerPaused(Exception):
    """Crediting is paused (the disk is full); the receipt was not recorded."""


def _migrate(db: sqlite_utils.Database) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LedgerDamaged(f"the ledger was written by a newer Grove (schema {version}; this "
                            f"one knows {SCHEMA_VERSION})")
    if version < 1:
        db["receipts"].create({  # type: ignore[union-attr]
            "id": int, "worker": str, "consumer": str, "kind": str, "units": int,
            "total": int, "seq": int, "context": str, "at": float, "wire": bytes,
            "received_at": float}, pk="id", not_null={
                "worker", "consumer", "kind", "units", "total", "seq", "context", "at",
                "wire", "received_at"})
        db["receipts"].create_index(["worker", "consumer", "kind", "seq"], unique=True)  # type: ignore[union-attr]
        db["pairs"].create({"worker": str, "consumer": str, "kind": str, "seq": int,  # type: ignore[union-attr]
                            "total": int}, pk=("worker", "consumer", "kind"))
        db["events"].create({  # type: ignore[union-attr]
            "id": int, "receipt_id": int, "peer": str, "kind": str, "credits": float,
            "status": str, "reason": str, "created_at": float, "decided_at": float},
            pk="id", not_null={"receipt_id", "kind", "credits", "status", "created_at"})
        db["events"].create_index(["status", "created_at"])  # type: ignore[union-attr]
        db["balances"].create({"kind": str, "verified": float, "pending": float,  # type: ignore[union-attr]
                               "rejected": float}, pk="kind")
        db["chain"].create({"n": int, "what": str, "ref": int, "digest": bytes,  # type: ignore[union-attr]
                            "hash": bytes}, pk="n")
        db["checks"].create({"peer": str, "passed": int, "failed": int, "last_reason": str},  # type: ignore[union-attr]
                            pk="peer")
    if version < 2:  # the signed head; pending events chained as they are created
        db.execute("CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY, n INTEGER, "
                   "hash BLOB, signature BLOB)")
        last = db.execute("SELECT hash FROM chain ORDER BY n DESC LIMIT 1").fetchone()
        head = last[0] if last else GENESIS
        for eid, status, reason, credits in db.execute(
                "SELECT id, status, reason, credits FROM events WHERE id NOT IN (SELECT ref "
                "FROM chain WHERE what='event') ORDER BY id").fetchall():
            digest = event_digest(eid, status, reason, credits)
            head = link(head, "event", eid, digest)
            db.execute("INSERT INTO chain (what, ref, digest, hash) VALUES (?, ?, ?, ?)",
                       ("event", eid, digest, head))
    if version < 3:  # referees' rulings on challenged work (core.ledger.rulings)
        db.execute("CREATE TABLE IF NOT EXISTS rulings (id INTEGER PRIMARY KEY, work_key BLOB "
                   "NOT NULL UNIQUE, server TEXT NOT NULL, challenger TEXT NOT NULL, upheld "
                   "INTEGER NOT NULL, stake REAL NOT NULL, wire BLOB NOT NULL, received_at "
                   "REAL NOT NULL)")
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class Ledger(LedgerReader):
    def __init__(self, path: Path, me: str,
                 sign: Callable[[bytes], bytes] | None = None) -> None:
        """`sign`: the village key's signature, for the chain's head after every write
        (None: the head is left unsigned - `verify` with the village's id then fails)."""
        self.path = path
        self.me = me
        self._sign = sign
        self.paused = ""  # why crediting is paused ("" when it is not)
        self.generation = 0  # bumped after every commit: readers skip a re-read until then
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._conn = self._open(path)
        if sign is not None:
            self._conn.execute("BEGIN IMMEDIATE")
            self._sign_head()
            self._conn.execute("COMMIT")
        self._jobs: queue.Queue[tuple[Any, concurrent.futures.Future[Any]] | None] = \
            queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._checkers = concurrent.futures.ThreadPoolExecutor(2, "ledger-check")
        self._thread = threading.Thread(target=self._writer, name="ledger-writer",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        existed = path.exists() and path.stat().st_size > 0
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if existed:
                got = conn.execute("PRAGMA quick_check").fetchone()[0]
                if got != "ok":
                    conn.close()
                    raise LedgerDamaged(f"the ledger file is damaged ({got[:200]}); it is kept "
                                        f"as it is at {path}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            _migrate(sqlite_utils.Database(conn))
        except sqlite3.DatabaseError as e:
            raise LedgerDamaged(f"the ledger file cannot be read ({e}); it is kept as it is "
                                f"at {path}") from None
        return conn

    def close(self) -> None:
        """Write what was queued, then close. The writer closes the file itself once its
        queue is done, so a slow last batch is finished rather than cut off; an item queued
        after close fails at once with LedgerPaused."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            log.warning("ledger: still writing after 60 s; the file closes when it is done")

    def _enqueue(self, job: tuple[Any, ...]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                fut.set_exception(LedgerPaused("the ledger is closed"))
            else:
                self._jobs.put((job, fut))
        return fut

    # -- writing (any thread submits; the writer thread writes) -----------------------------
    def submit(self, signed: bytes | rc.SignedReceipt) -> concurrent.futures.Future[Any]:
        """Queue a receipt; the future resolves to its row id after the commit, or to
        ReceiptRejected / LedgerPaused."""
        return self._enqueue(("receipt", signed))

    def add(self, signed: bytes | rc.SignedReceipt, timeout: float = 30.0) -> int:
        return int(self.submit(signed).result(timeout))

    def decide(self, receipt_id: int, check: bool | None, reason: str = "",
               peer: str = "") -> concurrent.futures.Future[Any]:
        """Record a sampled check's outcome for the credit of receipt `receipt_id` (and for
        the worker's local score)."""
        return self._enqueue(("decide", receipt_id, check, reason, peer))

    def reject_unpaid(self, receipt_id: int, kind: str, units: int, reason: str,
                      peer: str = "") -> concurrent.futures.Future[Any]:
        """Record work a consumer's check found wrong, which it did not sign for: rejected
        credit with the reason (so the gardener sees it), never in the balance. `receipt_id`:
        the receipt settled with it, or 0 when there was none."""
        return self._enqueue(("unpaid", receipt_id, kind, units, reason, peer))

    def add_ruling(self, wire: bytes) -> concurrent.futures.Future[Any]:
        """Record a referee's ruling on work this village did or challenged, once, with the
        credit it moves for us (verified at once); the future resolves to the ruling's row
        id, or ReceiptRejected saying why it was refused."""
        return self._enqueue(("ruling", wire))

    def settle(self, now: float | None = None) -> concurrent.futures.Future[Any]:
        """Verify the pending credits no one challenged within the grace period."""
        return self._enqueue(("settle", time.time() if now is None else now))

    def _writer(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                while len(batch) < BATCH:
                    try:
                        nxt = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._jobs.put(None)
                        break
                    batch.append(nxt)
                try:
                    self._write_batch(batch)
                except Exception as e:  # a bug: its items fail with it, the writer goes on
                    log.exception("ledger: a batch could not be written")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
        finally:
            self._checkers.shutdown()
            self._conn.close()

    def _precheck(self, batch: list[tuple[Any, concurrent.futures.Future[Any]]]
                  ) -> list[Any]:
        """Signatures and shapes of a batch's receipts, checked on two threads (the check
        releases the GIL), in order; the writer then applies them in order."""
        now = time.time()

        def one(job: Any) -> Any:
            if job[0] != "receipt":
                return None
            try:
                return rc.check(job[1], now)
            except rc.ReceiptRejected as e:
                return e

        return list(self._checkers.map(one, [job for job, _ in batch]))

    def _write_batch(self, batch: list[tuple[Any, concurrent.futures.Future[Any]]]) -> None:
        checked = self._precheck(batch)
        results: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            head = c.execute("SELECT hash FROM chain ORDER BY n DESC LIMIT 1").fetchone()
            self._head = head[0] if head else GENESIS
            for (job, fut), pre in zip(batch, checked, strict=True):
                if isinstance(pre, rc.ReceiptRejected):
                    results.append((fut, None, pre))
                    continue
                c.execute("SAVEPOINT one")
                head_before = self._head
                try:
                    result = self._apply(job, pre)
                except sqlite3.OperationalError:
                    raise  # the disk or the file: every item waits (below)
                except Exception as e:  # this item fails with its reason; the batch goes on
                    c.execute("ROLLBACK TO one")
                    c.execute("RELEASE one")
                    self._head = head_before  # the chain rolled back with it
                    if not isinstance(e, rc.ReceiptRejected):
                        log.warning("ledger: an item was refused by the store: %r", e)
                        e = rc.ReceiptRejected(f"the ledger cannot hold it ({e!r:.200})")
                    results.append((fut, None, e))
                    continue
                c.execute("RELEASE one")
                results.append((fut, result, None))
            self._sign_head()
            c.execute("COMMIT")
            self.generation += 1
        except sqlite3.OperationalError as e:
            try:
                c.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass
            why = ("the disk is full" if "full" in str(e) else f"the ledger cannot be written "
                   f"({e})")
            self.paused = f"{why}: crediting is paused until it can write again"
            log.warning("ledger: %s", self.paused)
            for _, fut in batch:
                fut.set_exception(LedgerPaused(self.paused))
            return
        self.paused = ""
        for fut, result, error in results:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    def _sign_head(self) -> None:
        last = self._conn.execute("SELECT n, hash FROM chain ORDER BY n DESC LIMIT 1"
                                  ).fetchone()
        if last is None or self._sign is None:
            return
        n, head = last
        self._conn.execute("INSERT OR REPLACE INTO head (id, n, hash, signature) VALUES "
                           "(1, ?, ?, ?)", (n, head, self._sign(head_message(n, head))))

    def _chain(self, what: str, ref: int, digest: bytes) -> None:
        self._head = link(self._head, what, ref, digest)
        self._conn.execute("INSERT INTO chain (what, ref, digest, hash) VALUES (?, ?, ?, ?)",
                           (what, ref, digest, self._head))

    def _apply(self, job: Any, checked: Any) -> Any:
        if job[0] == "receipt":
            return self._add_receipt(*checked)
        if job[0] == "decide":
            return self._decide(*job[1:])
        if job[0] == "unpaid":
            return self._unpaid(*job[1:])
        if job[0] == "ruling":
            return self._add_ruling(job[1])
        return self._settle(job[1])

    def _add_ruling(self, wire: bytes) -> int:
        now = time.time()
        try:
            r = rulings.check(wire, now)
        except rulings.BadRuling as e:
            raise rc.ReceiptRejected(f"ruling: {e}") from None
        if self.me not in (r.server, r.challenger):
            raise rc.ReceiptRejected("a ruling on someone else's work or challenge")
        c = self._conn
        if c.execute("SELECT 1 FROM rulings WHERE work_key=?", (r.work_key,)).fetchone():
            raise rc.ReceiptRejected("this work's ruling is already recorded")
        cur = c.execute("INSERT INTO rulings (work_key, server, challenger, upheld, stake, wire, "
                        "received_at) VALUES (?,?,?,?,?,?,?)",
                        (r.work_key, r.server, r.challenger, int(r.upheld), r.stake, wire, now))
        rid = int(cur.lastrowid or 0)
        self._chain("ruling", rid, hashlib.sha256(wire).digest())
        why = ("challenge upheld: " if r.upheld else "challenge rejected: ") + r.reason[:150]
        for kind, credits, peer in rulings.moves(r, self.me):
            cur = c.execute("INSERT INTO events (receipt_id, peer, kind, credits, status, "
                            "reason, created_at, decided_at) VALUES (?,?,?,?,?,?,?,?)",
                            (0, peer, kind, credits, "verified", why, now, now))
            eid = int(cur.lastrowid or 0)
            c.execute("INSERT INTO balances (kind, verified, pending, rejected) VALUES "
                      "(?, ?, 0, 0) ON CONFLICT (kind) DO UPDATE SET verified = verified + ?",
                      (kind, credits, credits))
            self._chain("event", eid, event_digest(eid, "verified", why, credits))
        return rid

    def _add_receipt(self, r: rc.Receipt, s: rc.SignedReceipt) -> int:
        now = time.time()
        if self.me not in (r.worker, r.consumer):
            raise rc.ReceiptRejected("someone else's receipt: this village is neither its "
                                     "worker nor its consumer")
        c = self._conn
        last = c.execute("SELECT seq, total FROM pairs WHERE worker=? AND consumer=? AND "
                         "kind=?", (r.worker, r.consumer, r.kind)).fetchone()
        seq, total = last if last else (0, 0)
        if r.seq <= seq:
            raise rc.ReceiptRejected(f"replayed: receipt {r.seq} of this pair is already "
                                     f"recorded (the latest is {seq})")
        if r.total != total + r.units:
            raise rc.ReceiptRejected(f"the running total {r.total} is not {total} + "
                                     f"{r.units}: inflated or out of order")
        wire = rc.encode(s)
        cur = c.execute("INSERT INTO receipts (worker, consumer, kind, units, total, seq, "
                        "context, at, wire, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (r.worker, r.consumer, r.kind, r.units, r.total, r.seq, r.context,
                         r.at, wire, now))
        rid = int(cur.lastrowid or 0)
        c.execute("INSERT INTO pairs (worker, consumer, kind, seq, total) VALUES (?,?,?,?,?) "
                  "ON CONFLICT (worker, consumer, kind) DO UPDATE SET seq=excluded.seq, "
                  "total=excluded.total", (r.worker, r.consumer, r.kind, r.seq, r.total))
        self._chain("receipt", rid, hashlib.sha256(wire).digest())
        if r.worker == self.me:  # our work: credit, pending until verified
            credits = policy.credits(r.kind, r.units)
            cur = c.execute("INSERT INTO events (receipt_id, peer, kind, credits, status, "
                            "reason, created_at) VALUES (?,?,?,?,?,?,?)",
                            (rid, r.consumer, r.kind, credits, "pending", "", now))
            eid = int(cur.lastrowid or 0)
            self._chain("event", eid, event_digest(eid, "pending", "", credits))
            c.execute("INSERT INTO balances (kind, verified, pending, rejected) VALUES "
                      "(?, 0, ?, 0) ON CONFLICT (kind) DO UPDATE SET pending = pending + ?",
                      (r.kind, credits, credits))
        return rid

    def _set_status(self, event_id: int, kind: str, credits: float, old: str, *, new: str,
                    reason: str, now: float) -> None:
        c = self._conn
        c.execute("UPDATE events SET status=?, reason=?, decided_at=? WHERE id=?",
                  (new, reason, now, event_id))
        c.execute(f"UPDATE balances SET {old} = {old} - ?, {new} = {new} + ? WHERE kind=?",
                  (credits, credits, kind))
        self._chain("event", event_id, event_digest(event_id, new, reason, credits))

    def _decide(self, receipt_id: int, check: bool | None, reason: str, peer: str) -> str:
        now = time.time()
        c = self._conn
        if peer:
            c.execute("INSERT INTO checks (peer, passed, failed, last_reason) VALUES "
                      "(?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET passed = passed + "
                      "excluded.passed, failed = failed + excluded.failed, last_reason = "
                      "excluded.last_reason", (peer, int(check is True), int(check is False),
                                               reason))
        row = c.execute("SELECT id, kind, credits, status, created_at FROM events WHERE "
                        "receipt_id=? ORDER BY id LIMIT 1", (receipt_id,)).fetchone()
        if row is None:
            return "no credit"  # a check of work we consumed: the score is what counts
        ev = policy.Event(row[0], row[1], row[2], row[3], row[4])
        new = policy.decide(ev, now, check, reason)
        if new.status != ev.status:
            self._set_status(ev.id, ev.kind, ev.credits, ev.status, new=new.status,
                             reason=new.reason, now=now)
        return new.status

    def _unpaid(self, receipt_id: int, kind: str, units: int, reason: str, peer: str) -> int:
        if kind not in policy.RATES or not 0 < units <= rc.MAX_UNITS[kind]:
            raise rc.ReceiptRejected(f"{units} units of {kind!r} cannot be recorded")
        reason = reason[:200]
        now = time.time()
        credits = policy.credits(kind, units)
        cur = self._conn.execute(
            "INSERT INTO events (receipt_id, peer, kind, credits, status, reason, created_at, "
            "decided_at) VALUES (?,?,?,?,?,?,?,?)",
            (receipt_id, peer, kind, credits, "rejected", reason, now, now))
        eid = int(cur.lastrowid or 0)
        self._conn.execute("INSERT INTO balances (kind, verified, pending, rejected) VALUES "
                           "(?, 0, 0, ?) ON CONFLICT (kind) DO UPDATE SET rejected = rejected "
                           "+ ?", (kind, credits, credits))
        self._chain("event", eid, event_digest(eid, "rejected", reason, credits))
        return eid

    def _settle(self, now: float) -> int:
        rows = self._conn.execute("SELECT id, kind, credits, created_at FROM events WHERE "
                                  "status='pending' AND created_at <= ?",
                                  (now - policy.GRACE,)).fetchall()
        for eid, kind, credits, _created in rows:
            self._set_status(eid, kind, credits, "pending", new="verified",
                             reason="no challenge within the grace period", now=now)
        return len(rows)

    def verify(self) -> VerifyReport:
        """Every receipt's signatures and shape, the hash chain over every entry, the
        balances against the events, and (when this ledger signs) the head's signature; the
        first bad entry, described."""
        return verify_file(self.path, self.me if self._sign is not None else None)


