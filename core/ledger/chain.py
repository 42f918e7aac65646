"""The ledger's hash chain: every entry the village writes (a receipt, a credit event as it
is created and as it is decided) extends it, so `verify_file` finds the first entry edited
or removed behind its back. The chain's head is signed by the village key after every write
(`head` table), so rewriting the whole chain without the key is found too; and the balances
table is checked against the events it sums, pending ones included."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.ledger import receipts as rc
from core.ledger import rulings as rl

GENESIS = b"\x00" * 32
HEAD_DOMAIN = b"grove-ledger-head:v1\x00"


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    first_bad: str                     # "" when ok


def link(prev: bytes, what: str, ref: int, digest: bytes) -> bytes:
    return hashlib.sha256(prev + what.encode() + ref.to_bytes(8, "big") + digest).digest()


def head_message(n: int, head: bytes) -> bytes:
    return HEAD_DOMAIN + n.to_bytes(8, "big") + head


def event_digest(event_id: int, status: str, reason: str, credits: float) -> bytes:
    return hashlib.sha256(f"{event_id}|{status}|{reason}|{credits!r}".encode()).digest()


def verify_file(path: Path, signer: str | None = None) -> VerifyReport:
    """The first bad entry, or ok. `signer`: the village's peer id, whose key must have
    signed the chain's head (None: the head's signature is not checked)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            report = _verify(conn)
            if report.ok:
                report = _balances(conn, report)
            if report.ok and signer is not None:
                report = _signed_head(conn, signer, report)
            return report
    except sqlite3.DatabaseError as e:
        return VerifyReport(False, 0, f"the file cannot be read: {e}")


def _balances(conn: sqlite3.Connection, report: VerifyReport) -> VerifyReport:
    sums: dict[tuple[str, str], float] = {}
    for kind, status, total in conn.execute(
            "SELECT kind, status, SUM(credits) FROM events GROUP BY kind, status"):
        sums[(kind, status)] = total
    for kind, *held in conn.execute("SELECT kind, verified, pending, rejected FROM balances"):
        for status, value in zip(("verified", "pending", "rejected"), held, strict=True):
            want = sums.get((kind, status), 0.0)
            if abs(value - want) > 1e-6 * max(1.0, abs(want)):
                return VerifyReport(False, report.entries, f"the balances say {value:.6f} "
                                    f"{status} credits for {kind}; the events add up to "
                                    f"{want:.6f}")
    return report


def _signed_head(conn: sqlite3.Connection, signer: str, report: VerifyReport
                 ) -> VerifyReport:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from core.dht.keyspace import ed25519_public_key

    last = conn.execute("SELECT n, hash FROM chain ORDER BY n DESC LIMIT 1").fetchone()
    if last is None:
        return report
    row = conn.execute("SELECT n, hash, signature FROM head WHERE id = 1").fetchone()
    if row is None:
        return VerifyReport(False, report.entries, "the chain's head is not signed")
    n, head, signature = row
    public = ed25519_public_key(signer) or b""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, head_message(n, head))
    except (InvalidSignature, ValueError):
        return VerifyReport(False, report.entries, "the chain's head is not signed by this "
                            "village's key (the ledger was rewritten without it)")
    if n != last[0]:
        return VerifyReport(False, report.entries, f"the signed head is entry {n}, the chain "
                            f"ends at entry {last[0]} (entries were added or removed without "
                            "the key)")
    if head != last[1]:
        return VerifyReport(False, report.entries, "the chain differs from the one this "
                            "village signed (it was rewritten without the key)")
    return report


def _verify(conn: sqlite3.Connection) -> VerifyReport:
    """The first bad entry of an open ledger, or ok."""
    got = conn.execute("PRAGMA quick_check").fetchone()[0]
    if got != "ok":
        return VerifyReport(False, 0, f"the file is damaged: {got[:200]}")
    receipts = {rid: wire for rid, wire in conn.execute("SELECT id, wire FROM receipts")}
    rulings = dict(conn.execute("SELECT id, wire FROM rulings")) if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name='rulings'").fetchone() else {}
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
        elif what == "ruling":
            wire = rulings.get(ref)
            if wire is None:
                return VerifyReport(False, n_entries, f"entry {n}: ruling {ref} is missing")
            if hashlib.sha256(wire).digest() != digest:
                return VerifyReport(False, n_entries, f"entry {n}: ruling {ref} was changed "
                                    "after it was recorded")
            try:
                rl.check(wire, now=1e18)
            except rl.BadRuling as e:
                return VerifyReport(False, n_entries, f"entry {n}: ruling {ref}: {e}")
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
        if last is None or last[0] != event_digest(eid, status, reason, credits):
            return VerifyReport(False, n_entries, f"credit event {eid} says {status!r} "
                                "but the chain does not")
    return VerifyReport(True, n_entries, "")
