"""The ledger's hash chain: every entry the village writes (a receipt, a credit decision)
extends it, so `verify_file` finds the first entry edited or removed behind its back."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.ledger import receipts as rc

GENESIS = b"\x00" * 32


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    first_bad: str                     # "" when ok


def link(prev: bytes, what: str, ref: int, digest: bytes) -> bytes:
    return hashlib.sha256(prev + what.encode() + ref.to_bytes(8, "big") + digest).digest()


def event_digest(event_id: int, status: str, reason: str, credits: float) -> bytes:
    return hashlib.sha256(f"{event_id}|{status}|{reason}|{credits!r}".encode()).digest()


def verify_file(path: Path) -> VerifyReport:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return _verify(conn)
    except sqlite3.DatabaseError as e:
        return VerifyReport(False, 0, f"the file cannot be read: {e}")


def _verify(conn: sqlite3.Connection) -> VerifyReport:
    """The first bad entry of an open ledger, or ok."""
    got = conn.execute("PRAGMA quick_check").fetchone()[0]
    if got != "ok":
        return VerifyReport(False, 0, f"the file is damaged: {got[:200]}")
    receipts = {rid: wire for rid, wire in conn.execute("SELECT id, wire FROM receipts")}
    events = {eid: (status, reason, credits) for eid, status, reason, credits in
              conn.execute("SELECT id, status, reason, credits FROM events")}
    head = GENESIS
    n_entries = 0
    for n, what, ref, digest, stored in conn.execute(
            "SELECT n, what, ref, digest, hash FROM chain ORDER BY n"):
        n_entries += 1
        if what == "receipt":
            wire = receipts.get(ref)
            if wire is None:
                return VerifyReport(False, n_entries, f"entry {n}: receipt {ref} is missing")
            if hashlib.sha256(wire).digest() != digest:
                return VerifyReport(False, n_entries, f"entry {n}: receipt {ref} was "
                                    "changed after it was recorded")
            try:
                rc.check(wire, now=1e18)  # times were checked when it came in
            except rc.ReceiptRejected as e:
                return VerifyReport(False, n_entries, f"entry {n}: receipt {ref}: {e}")
        elif what == "event" and ref not in events:
            return VerifyReport(False, n_entries, f"entry {n}: credit event {ref} is "
                                "missing")
        head = link(head, what, ref, digest)
        if head != stored:
            return VerifyReport(False, n_entries, f"entry {n}: the hash chain breaks here "
                                "(an entry before it was edited or removed)")
    for eid, (status, reason, credits) in events.items():
        last = conn.execute("SELECT digest FROM chain WHERE what='event' AND ref=? ORDER "
                            "BY n DESC LIMIT 1", (eid,)).fetchone()
        if status != "pending" and (last is None or last[0] != event_digest(
                eid, status, reason, credits)):
            return VerifyReport(False, n_entries, f"credit event {eid} says {status!r} "
                                "but the chain does not")
    return VerifyReport(True, n_entries, "")
