"""Work commitments, stake proofs and trust clusters (pure: crypto and rules, no network): a
commitment or a proof that anyone altered, or that names other work, is refused with the
reason; a stake counts only as far as receipts from trusted consumers back it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

from core.dht.keyspace import peer_id_from_public_key
from core.identity import VillageKey
from core.ledger import levels, rulings, stake
from core.ledger import receipts as rc
from core.ledger.store import Ledger
from core.signed import Envelope
from core.swarm import commit, wire

KEYS = [VillageKey(bytes([i]) * 32) for i in (11, 12, 13, 14)]
SERVER, CLIENT, OTHER, SYBIL = (peer_id_from_public_key(k.public_bytes) for k in KEYS)
SERVER_KEY, CLIENT_KEY, OTHER_KEY, SYBIL_KEY = KEYS


def _work(**over: object) -> commit.Work:
    x = wire.encode_tensor(np.ones((2, 3, 4), dtype=np.float32))
    y = wire.encode_tensor(np.zeros((2, 3, 4), dtype=np.float32))
    fields = {"v": commit.VERSION, "server": SERVER, "model": "tiny-lm", "op": "forward",
              "start": 2, "end": 4, "versions": [0, 0],
              "params": [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()],
              "inputs": wire.digest(x), "output": wire.digest(y), "at": time.time()}
    fields.update(over)
    return commit.Work(**fields)  # type: ignore[arg-type]


def test_a_commitment_names_its_work_and_only_its_signer_could_have_made_it() -> None:
    w = _work()
    signed = commit.make(w, SERVER_KEY.sign)
    got = commit.open_signed(signed, time.time())
    assert got == w
    commit.expect(got, server=SERVER, model="tiny-lm", start=2, end=4, inputs=w.inputs,
                  output=w.output)
    wrong = {"server": CLIENT, "start": 1, "inputs": b"\x00" * 32, "output": b"\x01" * 32}
    for name, value in wrong.items():
        args = {"server": SERVER, "model": "tiny-lm", "start": 2, "end": 4,
                "inputs": w.inputs, "output": w.output, name: value}
        with pytest.raises(commit.BadCommit):
            commit.expect(got, **args)  # type: ignore[arg-type]
    # signed by another key, or altered after signing
    forged = commit.make(w, OTHER_KEY.sign)
    with pytest.raises(commit.BadCommit, match="signature"):
        commit.open_signed(forged, time.time())
    s = msgspec.msgpack.decode(signed, type=Envelope)
    altered = msgspec.msgpack.encode(Envelope(
        msgspec.msgpack.encode(_work(output=b"\x02" * 32)), s.sig))
    with pytest.raises(commit.BadCommit, match="signature"):
        commit.open_signed(altered, time.time())
    bad = {"a future date": _work(at=time.time() + 3600),
           "a digest per block": _work(params=[b"\x00" * 32]),
           "short digests": _work(inputs=b"\x00"),
           "an empty span": _work(start=4, end=4, versions=[], params=[])}
    for why, work in bad.items():
        with pytest.raises(commit.BadCommit):
            commit.open_signed(commit.make(work, SERVER_KEY.sign), time.time())
        assert why
    with pytest.raises(commit.BadCommit, match="bytes"):
        commit.open_signed(b"\x00" * (commit.MAX_BYTES + 1), time.time())
    with pytest.raises(commit.BadCommit, match="malformed"):
        commit.open_signed(b"\x93\x01", time.time())
    # a reshape of the same bytes is another tensor
    t = wire.encode_tensor(np.ones((2, 3, 4), dtype=np.float32))
    assert wire.digest(t) != wire.digest(wire.WireTensor(t.dtype, [3, 2, 4], t.data))


def _receipt(worker: tuple[VillageKey, str], consumer: tuple[VillageKey, str], total: int,
             seq: int = 1, units: int | None = None) -> bytes:
    r = rc.Receipt(rc.VERSION, worker[1], consumer[1], "swarm", units or total, total, seq,
                   "0" * 64, time.time())
    return rc.encode(rc.worker_sign(rc.consumer_sign(r, consumer[0].sign), worker[0].sign))


def test_a_stake_counts_only_as_far_as_trusted_consumers_signed_for_the_work() -> None:
    me = (SERVER_KEY, SERVER)
    receipts = [_receipt(me, (CLIENT_KEY, CLIENT), 100),  # 1 credit of swarm work
                _receipt(me, (SYBIL_KEY, SYBIL), 10_000)]  # 100, from a fresh identity
    proof = stake.make(stake.Stake(stake.VERSION, SERVER, 50.0, receipts, time.time()),
                       SERVER_KEY.sign)
    s, backing = stake.check(proof, SERVER, time.time())
    assert s.amount == 50.0 and backing == {CLIENT: 1.0, SYBIL: 100.0}
    assert stake.honoured_stake(s.amount, backing, {CLIENT}) == 1.0
    assert stake.honoured_stake(s.amount, backing, {CLIENT, SYBIL}) == 50.0
    assert stake.honoured_stake(s.amount, backing, {CLIENT, SYBIL}, slashed=45.0) == 5.0
    assert stake.honoured_stake(s.amount, backing, {CLIENT}, slashed=5.0) == 0.0
    now = time.time()
    refused = {
        "another village": (proof, CLIENT, now),
        "stale": (proof, SERVER, now + stake.MAX_AGE + 10),
        "signature": (stake.make(stake.Stake(stake.VERSION, SERVER, 50.0, receipts, now),
                                 OTHER_KEY.sign), SERVER, now),
        "another village's work": (stake.make(stake.Stake(
            stake.VERSION, SERVER, 1.0, [_receipt((OTHER_KEY, OTHER), (CLIENT_KEY, CLIENT),
                                                  5)], now), SERVER_KEY.sign), SERVER, now),
        "two receipts of one pair": (stake.make(stake.Stake(
            stake.VERSION, SERVER, 1.0, [receipts[0], _receipt(me, (CLIENT_KEY, CLIENT), 200,
                                                               2)], now),
            SERVER_KEY.sign), SERVER, now),
        "receipt does not hold": (stake.make(stake.Stake(
            stake.VERSION, SERVER, 1.0, [receipts[0][:-3] + b"abc"], now), SERVER_KEY.sign),
            SERVER, now),
        "not a number": (stake.make(stake.Stake(stake.VERSION, SERVER, float("nan"), [], now),
                                    SERVER_KEY.sign), SERVER, now),
    }
    for why, (data, village, at) in refused.items():
        with pytest.raises(stake.BadStake) as e:
            stake.check(data, village, at)
        assert why in str(e.value) or why in ("stale", "not a number"), (why, str(e.value))


def test_a_ledger_backs_a_stake_with_its_latest_verified_receipt_per_consumer(
        tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "ledger.db", SERVER)
    try:
        me = (SERVER_KEY, SERVER)
        ids = [lg.add(_receipt(me, (CLIENT_KEY, CLIENT), 100 * seq, seq, units=100))
               for seq in (1, 2)]
        third = lg.add(_receipt(me, (OTHER_KEY, OTHER), 50))
        assert lg.backing(SERVER) == []  # nothing verified yet
        lg.decide(ids[0], True).result(10)
        lg.decide(third, True).result(10)
        got = [rc.check(w, time.time())[0] for w in lg.backing(SERVER)]
        assert [(r.consumer, r.total) for r in got] == [(CLIENT, 100), (OTHER, 50)]
        lg.decide(ids[1], True).result(10)  # the later receipt carries the pair's total
        got = [rc.check(w, time.time())[0] for w in lg.backing(SERVER)]
        assert [(r.consumer, r.total) for r in got] == [(CLIENT, 200), (OTHER, 50)]
    finally:
        lg.close()


def test_trust_clusters_are_networks_unless_told_villages() -> None:
    a = levels.cluster("A", ("/ip4/192.0.2.7/tcp/4001/p2p/A",))
    b = levels.cluster("B", ("/ip4/192.0.2.200/tcp/4002/p2p/B",))
    c = levels.cluster("C", ("/ip4/198.51.100.1/tcp/4001/p2p/C",))
    assert a == b != c
    assert levels.cluster("A", ("/ip6/2001:db8:1:2::1/tcp/1",)) == \
        levels.cluster("B", ("/ip6/2001:db8:1:ff::9/tcp/1",))
    relayed = ("/ip4/192.0.2.1/tcp/4001/p2p/R/p2p-circuit/p2p/D",)
    assert levels.cluster("D", relayed) == "village:D"
    assert levels.cluster("A", ("/ip4/192.0.2.7/tcp/1",), by="village") != \
        levels.cluster("B", ("/ip4/192.0.2.7/tcp/1",), by="village")


def _ruling(upheld: bool, *, referee: VillageKey = OTHER_KEY, server: str = SERVER,
            work: bytes = b"w" * 32, stake_: float = 10.0) -> bytes:
    r = rulings.Ruling(rulings.VERSION, work, server, CLIENT,
                       peer_id_from_public_key(referee.public_bytes), upheld, stake_,
                       "recomputed", time.time())
    return rulings.make(r, referee.sign)


def test_a_ruling_moves_credit_once_for_each_party_and_the_chain_keeps_it(
        tmp_path: Path) -> None:
    slash = levels.SLASH_SHARE * 10.0
    server = Ledger(tmp_path / "server.db", SERVER, SERVER_KEY.sign)
    challenger = Ledger(tmp_path / "challenger.db", CLIENT, CLIENT_KEY.sign)
    try:
        upheld = _ruling(True)
        server.add_ruling(upheld).result(10)
        challenger.add_ruling(upheld).result(10)
        assert server.balance().by_kind == {"stake": -slash}
        assert challenger.balance().by_kind == {
            "challenge": pytest.approx(slash * levels.CHALLENGER_SHARE)}
        rejected = _ruling(False, work=b"v" * 32)
        server.add_ruling(rejected).result(10)
        challenger.add_ruling(rejected).result(10)
        assert server.balance().by_kind["challenge"] == levels.FALSE_CHALLENGE_FEE
        assert challenger.balance().by_kind["challenge"] == pytest.approx(
            slash * levels.CHALLENGER_SHARE - levels.FALSE_CHALLENGE_FEE)
        refused = {"already recorded": upheld,
                   "someone else's": _ruling(True, server=SYBIL, work=b"x" * 32),
                   "three villages": _ruling(True, referee=SERVER_KEY, work=b"y" * 32)}
        for why, data in refused.items():
            with pytest.raises(rc.ReceiptRejected, match=why):
                server.add_ruling(data).result(10)
        env = msgspec.msgpack.decode(_ruling(True, work=b"z" * 32), type=Envelope)
        forged = msgspec.msgpack.encode(Envelope(env.body, SYBIL_KEY.sign(b"x")))
        with pytest.raises(rc.ReceiptRejected, match="signature"):
            server.add_ruling(forged).result(10)
        assert server.verify().ok and challenger.verify().ok
    finally:
        server.close()
        challenger.close()
    # a ruling changed behind the ledger's back is found
    import sqlite3
    with sqlite3.connect(tmp_path / "server.db") as conn:
        conn.execute("UPDATE rulings SET wire = ? WHERE id = 1", (_ruling(False),))
    report = Ledger(tmp_path / "server.db", SERVER, SERVER_KEY.sign)
    try:
        got = report.verify()
        assert not got.ok and "ruling 1 was changed" in got.first_bad
    finally:
        report.close()
