"""Reading a ledger file (any thread, any process; a writer may be writing meanwhile): the
figures, the events, the CSV export."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class LedgerDamaged(Exception):
    """The ledger file cannot be trusted or read; `str()` says why. The file is left as is."""


@dataclass(frozen=True)
class Balance:
    verified: float
    pending: float
    rejected: float
    by_kind: dict[str, float]          # verified, by kind of work


class LedgerReader:
    """Read-only queries on a ledger file (any thread; a writer may be writing meanwhile)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paused = ""

    # -- reading (any thread) ---------------------------------------------------------------
    def _read(self) -> contextlib.closing[sqlite3.Connection]:
        """A read-only connection, closed on leaving the `with` (sqlite3's own context
        manager only commits)."""
        return contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True))

    def balance(self) -> Balance:
        with self._read() as conn:
            rows = conn.execute("SELECT kind, verified, pending, rejected FROM balances"
                                ).fetchall()
        return Balance(verified=sum(r[1] for r in rows), pending=sum(r[2] for r in rows),
                       rejected=sum(r[3] for r in rows),
                       by_kind={r[0]: r[1] for r in rows})

    def earned_since(self, since: float) -> float:
        with self._read() as conn:
            got = conn.execute("SELECT COALESCE(SUM(credits), 0) FROM events WHERE "
                               "status='verified' AND created_at >= ?", (since,)).fetchone()
        return float(got[0])

    def history(self, days: int = 30, now: float | None = None) -> list[tuple[str, float]]:
        """Verified credit per day (UTC), oldest first."""
        since = (time.time() if now is None else now) - days * 86400
        with self._read() as conn:
            rows = conn.execute("SELECT date(created_at, 'unixepoch'), SUM(credits) FROM "
                                "events WHERE status='verified' AND created_at >= ? GROUP BY 1 "
                                "ORDER BY 1", (since,)).fetchall()
        return [(d, float(v)) for d, v in rows]

    def events(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute("SELECT e.id, e.kind, e.credits, e.status, e.reason, "
                                "e.created_at, e.peer, r.units, r.context FROM events e LEFT JOIN "
                                "receipts r ON r.id = e.receipt_id ORDER BY e.id DESC LIMIT ?",
                                (limit,)).fetchall()
        keys = ("id", "kind", "credits", "status", "reason", "created_at", "consumer", "units",
                "context")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def receipt_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0])

    def verified_by_consumer(self) -> dict[str, float]:
        """Verified credit per village we worked for."""
        with self._read() as conn:
            rows = conn.execute("SELECT peer, SUM(credits) FROM events WHERE status = "
                                "'verified' GROUP BY peer").fetchall()
        return {p or "": float(c or 0.0) for p, c in rows}

    def scores(self) -> dict[str, tuple[int, int, str]]:
        """Per peer: sampled checks passed, failed, and the last failure's reason."""
        with self._read() as conn:
            rows = conn.execute("SELECT peer, passed, failed, last_reason FROM checks"
                                ).fetchall()
        return {p: (a, b, r or "") for p, a, b, r in rows}

    def backing(self, worker: str, limit: int = 16) -> list[bytes]:
        """The latest doubly-signed receipt of `worker`'s verified work from each village
        and kind (its running total proves the pair's work so far), largest first: what a
        stake proof shows."""
        return [bytes(r[0]) for r in self._backing(worker, limit, "wire")]

    def backing_credit(self, worker: str, limit: int = 16) -> float:
        """The credit the receipts of `backing` prove (checked when they were recorded)."""
        from core.ledger.policy import credits

        return sum(credits(k, t) for k, t in self._backing(worker, limit, "kind, total"))

    def _backing(self, worker: str, limit: int, columns: str) -> list[Any]:
        with self._read() as conn:
            return conn.execute(
                f"SELECT {columns} FROM receipts WHERE id IN (SELECT MAX(r.id) FROM receipts r "
                "JOIN events e ON e.receipt_id = r.id WHERE r.worker = ? AND e.status = "
                "'verified' GROUP BY r.consumer, r.kind) ORDER BY total DESC LIMIT ?",
                (worker, limit)).fetchall()

    def received(self) -> dict[tuple[str, str], float]:
        """Accepted work between pairs, for trust: (consumer, worker) -> units (latest
        running totals), less what failed checks rejected."""
        with self._read() as conn:
            rows = conn.execute("SELECT consumer, worker, SUM(total) FROM pairs GROUP BY "
                                "consumer, worker").fetchall()
        return {(c, w): float(t) for c, w, t in rows}



def read_view(path: Path) -> dict[str, Any]:
    """The ledger's figures for the gardener, read-only (a running node may be writing)."""
    from core.ledger.service import ledger_view

    try:
        return ledger_view(LedgerReader(path))
    except sqlite3.DatabaseError as e:
        raise LedgerDamaged(f"the ledger file cannot be read ({e}); it is kept as it is at "
                            f"{path}") from None


CSV_HEADER = ("id", "time_utc", "kind", "units", "credits", "status", "reason", "consumer",
              "context")


def export_csv(path: Path, out: Any, limit: int = 10_000_000) -> int:
    """Write the credit events (newest first) as CSV to the open text file `out`; returns
    how many."""
    import csv

    w = csv.writer(out)
    w.writerow(CSV_HEADER)
    rows = LedgerReader(path).events(limit)
    for e in rows:
        w.writerow([e["id"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["created_at"])),
                    e["kind"], e["units"] if e["units"] is not None else "",
                    f"{e['credits']:.6f}", e["status"], e["reason"] or "", e["consumer"] or "",
                    e["context"] or ""])
    return len(rows)
