"""The credit ledger: receipts, the store (real SQLite files), policy and trust."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dht.keyspace import peer_id_from_public_key
from core.identity import VillageKey
from core.ledger import policy
from core.ledger import receipts as rc
from core.ledger.chain import verify_file
from core.ledger.reader import LedgerDamaged
from core.ledger.store import Ledger, LedgerPaused

ROOT = Path(__file__).resolve().parents[1]
ME_KEY, THEM_KEY, OTHER_KEY = (VillageKey(bytes([i]) * 32) for i in (1, 2, 3))
ME, THEM, OTHER = (peer_id_from_public_key(k.public_bytes) for k in (ME_KEY, THEM_KEY, OTHER_KEY))


def receipt(seq: int, units: int = 16, total: int | None = None, *, worker=(ME_KEY, ME),
            consumer=(THEM_KEY, THEM), kind: str = "swarm", at: float | None = None,
            worker_signs: bool = True) -> bytes:
    r = rc.Receipt(rc.VERSION, worker[1], consumer[1], kind, units,
                   units * seq if total is None else total, seq, f"{seq:064x}",
                   time.time() if at is None else at)
    s = rc.consumer_sign(r, consumer[0].sign)
    return rc.encode(rc.worker_sign(s, worker[0].sign) if worker_signs else s)


@pytest.fixture
def ledger(tmp_path: Path):
    lg = Ledger(tmp_path / "ledger.db", ME)
    yield lg
    lg.close()


# -- receipts -----------------------------------------------------------------------------


def test_bad_receipts_are_refused_with_the_reason(ledger: Ledger) -> None:
    assert ledger.add(receipt(1)) > 0
    good = receipt(2)
    forged = bytearray(good)
    forged[-5] ^= 1
    signed = rc.SignedReceipt(rc.encode_body(rc.Receipt(
        1, ME, THEM, "swarm", 16, 32, 2, "00" * 32, time.time())), b"x" * 64, b"y" * 64)
    cases = {
        "signature is not valid": bytes(forged),
        "truncated": good[: len(good) // 2],
        "replayed": receipt(1),
        "someone else's receipt": receipt(1, worker=(OTHER_KEY, OTHER)),
        "dated in the future": receipt(2, at=time.time() + 3600),
        "inflated": receipt(2, units=10**9),
        "running total": receipt(2, total=10_000),
        "consumer's signature": rc.encode(signed),
        "worker's signature": receipt(2, worker_signs=False),
        "at most 1024": b"\x93" + b"\0" * 2000,
    }
    for why, data in cases.items():
        with pytest.raises(rc.ReceiptRejected, match=why):
            ledger.add(data)
    assert ledger.add(good) > 0  # the ledger took none of them and goes on
    assert ledger.receipt_count() == 2
    assert ledger.verify().ok


def test_credit_is_pending_until_checked_or_the_grace_period_passes(ledger: Ledger) -> None:
    ids = [ledger.add(receipt(s)) for s in (1, 2, 3)]
    b = ledger.balance()
    assert b.verified == 0 and b.pending == pytest.approx(3 * 16 * policy.RATES["swarm"])
    assert ledger.decide(ids[0], True, peer=THEM).result(5) == "verified"
    assert ledger.decide(ids[1], False, "recomputed output differs by 0.7",
                         peer=THEM).result(5) == "rejected"
    b = ledger.balance()
    assert b.verified == pytest.approx(0.16) and b.rejected == pytest.approx(0.16)
    assert b.by_kind == {"swarm": pytest.approx(0.16)}
    rejected = next(e for e in ledger.events() if e["status"] == "rejected")
    assert rejected["reason"] == "recomputed output differs by 0.7"
    assert ledger.settle(time.time() + policy.GRACE + 1).result(5) == 1
    assert ledger.balance().verified == pytest.approx(0.32)
    assert ledger.scores()[THEM][:2] == (1, 1)
    assert ledger.verify().ok


def test_verify_names_the_first_entry_changed_behind_the_ledgers_back(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    lg = Ledger(path, ME)
    rid = [lg.add(receipt(s)) for s in range(1, 6)]
    lg.decide(rid[0], True).result(5)
    lg.close()
    assert verify_file(path).ok
    with sqlite3.connect(path) as c:
        original = c.execute("SELECT wire FROM receipts WHERE id = ?", (rid[2],)).fetchone()[0]
        c.execute("UPDATE receipts SET wire = ? WHERE id = ?", (receipt(3, units=99,
                                                                          total=99 * 3), rid[2]))
    report = verify_file(path)
    assert not report.ok and f"receipt {rid[2]} was changed" in report.first_bad
    with sqlite3.connect(path) as c:
        c.execute("UPDATE receipts SET wire = ? WHERE id = ?", (original, rid[2]))
        c.execute("UPDATE events SET status = 'verified' WHERE receipt_id = ?", (rid[1],))
    report = verify_file(path)
    assert not report.ok and "says 'verified' but the chain does not" in report.first_bad


def test_a_damaged_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    lg = Ledger(path, ME)
    for s in range(1, 200):
        lg.add(receipt(s))
    lg.close()
    data = bytearray(path.read_bytes())
    for i in range(4096, len(data), 997):  # scribble over the pages
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerDamaged, match="damaged|cannot be read") as e:
        Ledger(path, ME)
    assert str(path) in str(e.value)
    assert path.read_bytes() == bytes(data)  # nothing overwritten
    assert not verify_file(path).ok


def test_a_full_disk_pauses_crediting_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    lg = Ledger(path, ME)
    for s in range(1, 51):
        lg.add(receipt(s))
    pages = lg._conn.execute("PRAGMA page_count").fetchone()[0]
    lg._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    seq, paused = 51, None
    for seq in range(51, 400):
        try:
            lg.add(receipt(seq))
        except LedgerPaused as e:
            paused = e
            break
    assert paused is not None and "disk is full" in str(paused)
    assert "crediting is paused" in lg.paused
    assert lg.receipt_count() == seq - 1  # everything acknowledged is there
    lg._conn.execute("PRAGMA max_page_count = 1073741823")  # space again
    lg.add(receipt(seq))
    assert lg.paused == "" and lg.receipt_count() == seq
    assert lg.verify().ok
    lg.close()


def test_close_writes_everything_queued_and_refuses_what_comes_after(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    lg = Ledger(path, ME)
    futures = [lg.submit(receipt(s)) for s in range(1, 301)]  # queued faster than written
    lg.close()
    assert all(f.done() and f.exception() is None for f in futures)  # none cut off
    late = lg.submit(receipt(301))
    with pytest.raises(LedgerPaused, match="closed"):
        late.result(1)
    again = Ledger(path, ME)
    assert again.receipt_count() == 300
    assert again.verify().ok
    again.close()


def test_kill_9_during_ingestion_never_loses_an_acknowledged_receipt(tmp_path: Path) -> None:
    from tests.ledger_child import ME as CHILD_ME

    path = tmp_path / "ledger.db"
    acked: set[int] = set()
    rng = random.Random(7)
    kills = 0
    while kills < 30:
        proc = subprocess.Popen([sys.executable, "-m", "tests.ledger_child", str(path)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("ready"), first
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=proc: lines.extend(p.stdout))
        reader.start()
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)  # mid-ingestion, at a random moment
        proc.wait()
        reader.join()
        # a kill can cut the last line short ("ack 1" of "ack 12"): complete lines only
        acked |= {int(line.split()[1]) for line in lines
                  if line.startswith("ack ") and line.endswith("\n")}
        kills += 1
    assert len(acked) > 100  # it did ingest between the kills
    report = verify_file(path)
    assert report.ok, report.first_bad
    with sqlite3.connect(path) as c:
        stored = {s for (s,) in c.execute("SELECT seq FROM receipts WHERE worker = ?",
                                          (CHILD_ME,))}
    assert acked <= stored
    assert stored == set(range(1, max(stored) + 1))  # no gaps: each run went on from the last


# -- policy and trust ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(policy.RATES)), st.integers(1, 10_000),
                          st.sampled_from([True, False, None]), st.floats(0, 2000)),
                max_size=40))
def test_balance_is_the_sum_of_verified_events_and_nothing_else(raw) -> None:
    events = [policy.Event(i, kind, policy.credits(kind, units), "pending", 0.0)
              for i, (kind, units, _c, _t) in enumerate(raw)]
    decided = [policy.decide(e, t, c) for e, (_k, _u, c, t) in zip(events, raw, strict=True)]
    bal = policy.balance(decided)
    assert sum(bal.values()) == pytest.approx(sum(e.credits for e in decided
                                                  if e.status == "verified"))
    assert sum(bal.values()) <= sum(e.credits for e in events) + 1e-9  # no credit from nowhere
    for e, (_k, _u, c, t) in zip(decided, raw, strict=True):
        if c is False:
            assert e.status == "rejected"
        elif c is None and t < policy.GRACE:
            assert e.status == "pending"
        else:
            assert e.status == "verified"
    again = [policy.decide(e, 1e9, True) for e in decided]  # decided events stay decided
    assert all(a.status == d.status for a, d in zip(again, decided, strict=True)
               if d.status != "pending")


def test_a_ring_vouching_for_itself_earns_little_trust_and_little_credit() -> None:
    edges = {}
    honest = [f"h{i}" for i in range(20)]
    ring = [f"s{i}" for i in range(10)]
    rng = random.Random(1)
    for c in honest:
        for w in rng.sample([h for h in honest if h != c], 5):
            edges[(c, w)] = 100.0
    for c in ring:
        for w in ring:
            if c != w:
                edges[(c, w)] = 10_000.0
    trust = policy.global_trust(edges, pretrusted=honest[:2])
    assert sum(trust.values()) == pytest.approx(1.0)
    assert sum(trust[s] for s in ring) < 0.01  # no edge into the ring: nothing reaches it
    raw = {w: sum(v for (c, ww), v in edges.items() if ww == w) for w in honest + ring}
    honoured = policy.honoured(raw, trust)
    assert sum(honoured[s] for s in ring) < 0.05 * sum(honoured.values())
    assert sum(honoured[h] for h in honest) > 0.5 * sum(raw[h] for h in honest)


def test_a_ledger_from_before_the_signed_head_is_brought_forward_and_signed(
        tmp_path: Path) -> None:
    """A schema-1 ledger (pending events not chained, no head) opens as schema 2: its
    pending events are chained, the head is signed, and it verifies against the key."""
    import sqlite3

    path = tmp_path / "ledger.db"
    lg = Ledger(path, ME)
    lg.add(receipt(1))
    lg.close()
    with sqlite3.connect(path) as c:
        c.execute("DELETE FROM chain WHERE what = 'event'")
        c.execute("DROP TABLE head")
        c.execute("PRAGMA user_version = 1")
    assert not verify_file(path).ok  # the pending event is not in the chain
    lg = Ledger(path, ME, ME_KEY.sign)
    report = lg.verify()
    assert report.ok and report.entries == 2, report
    lg.add(receipt(2))
    assert lg.verify().ok
    lg.close()
    unsigned = Ledger(path, ME)  # a writer without the key leaves the head behind
    unsigned.add(receipt(3))
    unsigned.close()
    assert "added or removed without the key" in verify_file(path, ME).first_bad
    assert verify_file(path, THEM).first_bad.startswith("the chain's head is not signed by")


def test_trust_from_what_this_village_measured_and_the_credit_it_honours() -> None:
    scores = {"good": (3, 1, ""), "bad": (1, 2, "differs"), "even": (1, 1, ""),
              "pre-but-bad": (0, 1, "differs"), "refused": (5, 0, "")}
    trusted = policy.trusted_peers(scores, {"pre", "pre-but-bad"}, refused={"refused"})
    assert trusted == frozenset({"good", "pre"})
    earned = {"good": 1.0, "pre": 0.5, "bad": 2.0, "ring": 40.0}
    assert policy.honoured_credit(earned, trusted) == pytest.approx(1.5)
    from core.resources import pretrusted_villages

    assert pretrusted_villages() == frozenset()  # none shipped yet (resources/pretrusted.txt)
