"""Interaction logs (pure): whatever the interleaving, drops and duplicates of messages, honest
villages that exchange what they hold end with identical transcripts and checkpoints."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dht.keyspace import peer_id_from_public_key
from core.identity import VillageKey
from core.personas import log as pl

CONV = "c0" * 16
KEYS = [VillageKey(bytes([i + 10]) * 32) for i in range(4)]
IDS = [peer_id_from_public_key(k.public_bytes) for k in KEYS]


def entry(log: pl.Log, who: int, text: str, *, seq: int | None = None,
          parents: list[str] | None = None, at: float = 0.0) -> bytes:
    e = pl.Entry(pl.VERSION, CONV, IDS[who], f"p{who}", log.next_seq(IDS[who]) if seq is None
                 else seq, sorted(log.heads() if parents is None else parents), at, "message",
                 text)
    return pl.sign_entry(e, KEYS[who].sign)


def sync(logs: list[pl.Log]) -> None:
    """Anti-entropy until nothing moves: each log offers every entry it holds to the others."""
    moved = True
    while moved:
        moved = False
        for a in logs:
            for b in logs:
                for w in list(a.wires.values()):
                    try:
                        moved |= bool(b.add(w))
                    except pl.EntryRejected:
                        pass


def cosign(logs: list[pl.Log], proposer: int, participants: list[int]) -> pl.SignedCheckpoint:
    c = logs[proposer].checkpoint_for(logs[proposer].heads())
    sigs = {}
    for i in participants:
        logs[i].check_checkpoint(c)
        sigs[IDS[i]] = KEYS[i].sign(pl.checkpoint_body(c))
    return pl.SignedCheckpoint(c, sigs)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.booleans(),
                          st.booleans()), min_size=1, max_size=40),
       st.integers(0, 10**6))
def test_any_interleaving_drops_and_duplicates_converge(ops, seed) -> None:
    rng = random.Random(seed)
    logs = [pl.Log(CONV) for _ in range(3)]
    flight: list[tuple[int, bytes]] = []  # (to, wire)
    for n, (who, pick, drop, dup) in enumerate(ops):
        w = entry(logs[who], who, f"m{n}")
        logs[who].add(w)
        flight += [(to, w) for to in range(3) if to != who]
        if flight and pick % 3:  # deliver some in-flight message, maybe dropped or twice
            to, m = flight.pop(pick % len(flight))
            if not drop:
                for _ in range(2 if dup else 1):
                    try:
                        logs[to].add(m)
                    except pl.EntryRejected as e:
                        assert "waits for parents" in str(e)
    rng.shuffle(flight)
    for to, m in flight[: len(flight) // 2]:  # half of the rest arrives late, out of order
        try:
            logs[to].add(m)
        except pl.EntryRejected:
            pass
    sync(logs)
    orders = [lg.order() for lg in logs]
    assert orders[0] == orders[1] == orders[2] and len(orders[0]) == len(ops)
    # causal: every parent comes before its child
    pos = {h: i for i, h in enumerate(orders[0])}
    assert all(pos[p] < pos[h] for h in orders[0] for p in logs[0].entries[h].parents)
    # a checkpoint everyone co-signs is final everywhere, and identical
    sc = cosign(logs, seed % 3, [0, 1, 2])
    for lg in logs:
        lg.accept_final(sc, IDS[:3])
    assert len({(lg.final.checkpoint.count, lg.final.checkpoint.root) for lg in logs}) == 1
    # entries after it come after its prefix, everywhere the same
    for who in range(3):
        logs[who].add(entry(logs[who], who, "after"))
    sync(logs)
    assert logs[0].order() == logs[1].order() == logs[2].order()
    assert logs[0].order()[: sc.checkpoint.count] == orders[0][: sc.checkpoint.count]


def test_bad_entries_and_checkpoints_are_refused_with_the_reason() -> None:
    a, b = pl.Log(CONV), pl.Log(CONV)
    first = entry(a, 0, "hello")
    a.add(first)
    forged = bytearray(first)
    forged[-3] ^= 1
    cases = {
        "forged": bytes(forged),
        "malformed": b"\x92garbage",
        "another conversation": pl.sign_entry(
            pl.Entry(1, "d1" * 16, IDS[0], "p0", 2, [], 0, "message", "x"), KEYS[0].sign),
        "waits for parents": entry(a, 1, "reply", parents=["ab" * 32]),
        "out of range": pl.sign_entry(pl.Entry(1, CONV, IDS[1], "p1", 1, [], 0, "shout",
                                               "x"), KEYS[1].sign),
        "at most 8192": b"\x92" + b"\0" * 9000,
    }
    for why, wire in cases.items():
        with pytest.raises(pl.EntryRejected, match=why):
            b.add(wire)
    assert b.add(first) and b.order() == a.order()
    # a checkpoint that does not match the log
    c = a.checkpoint_for(a.heads())
    wrong = pl.Checkpoint(CONV, c.heads, c.count + 1, c.root)
    with pytest.raises(pl.EntryRejected, match="does not match the log"):
        b.check_checkpoint(wrong)
    sc = pl.SignedCheckpoint(c, {IDS[0]: KEYS[0].sign(pl.checkpoint_body(c))})
    with pytest.raises(pl.EntryRejected, match="lacks"):
        b.accept_final(sc, IDS[:2])
    bad = pl.SignedCheckpoint(c, {IDS[0]: KEYS[0].sign(pl.checkpoint_body(c)),
                                  IDS[1]: KEYS[0].sign(pl.checkpoint_body(c))})
    with pytest.raises(pl.EntryRejected, match="not valid"):
        b.accept_final(bad, IDS[:2])


def test_an_equivocator_is_recorded_and_the_conversation_goes_on_without_it() -> None:
    logs = [pl.Log(CONV) for _ in range(3)]
    for i in range(3):
        w = entry(logs[0], i, f"hi from {i}", parents=[])
        for lg in logs:
            lg.add(w)
    # village 2 signs two different entries with the same sequence number, one to each
    fork_a = entry(logs[0], 2, "I agree", seq=2)
    fork_b = entry(logs[1], 2, "I disagree", seq=2)
    logs[0].add(fork_a)
    logs[1].add(fork_b)
    logs[0].add(entry(logs[0], 0, "good"))   # honest replies on top of each fork
    logs[1].add(entry(logs[1], 1, "bad"))
    sync(logs)
    assert logs[0].order() == logs[1].order() == logs[2].order()
    assert all(lg.forked_at == {IDS[2]: 2} for lg in logs)
    texts = [e.text for e in logs[0].transcript()]
    assert "I agree" not in texts and "I disagree" not in texts and "good" in texts
    # checkpoints go on with the honest two
    sc = cosign(logs, 0, [0, 1])
    for lg in logs:
        lg.accept_final(sc, IDS[:3])
    assert logs[2].final == sc


def test_a_conversation_is_over_when_nobody_is_left_to_answer_the_last_word() -> None:
    """A persona speaks when the last word is another's, up to its turns. So one whose
    village was away while the others said all theirs can answer only once: after that it
    has the last word, nobody answers, and the conversation is over (its tail gets its final
    checkpoint) although that persona has turns left."""
    from core.personas.messages import Conversation, Participant, members

    parts = [Participant(IDS[i], f"p{i}") for i in range(3)]
    c = Conversation(CONV, "p0", parts, 2, pl.Log(CONV, members(parts)), 0.0)
    assert [c.may_speak(p.peer) for p in parts] == [True, False, False]  # the starter first
    assert not c.over()
    for who in (0, 1, 0, 1):                 # villages 0 and 1 say their two; 2 is away
        c.log.add(entry(c.log, who, f"{who} speaks"))
    assert [c.may_speak(p.peer) for p in parts] == [False, False, True]
    assert not c.over()                      # 2 may still answer the last word
    c.log.add(entry(c.log, 2, "back"))
    assert c.said(IDS[2]) == 1 < c.turns and not c.may_speak(IDS[2])
    assert c.over()
    # two with turns left answer each other: not over
    d = Conversation(CONV, "p0", parts, 3, pl.Log(CONV, members(parts)), 0.0)
    for who in (0, 1, 0, 1):
        d.log.add(entry(d.log, who, f"{who} speaks"))
    d.log.add(entry(d.log, 2, "2 speaks"))
    assert not d.over() and d.may_speak(IDS[0]) and d.may_speak(IDS[1])
    # an equivocator with turns left keeps nobody waiting
    e = Conversation(CONV, "p0", parts, 3, pl.Log(CONV, members(parts)), 0.0)
    for who in (0, 1, 0, 1):
        e.log.add(entry(e.log, who, f"{who} speaks"))
    e.log.add(entry(e.log, 2, "fork a", seq=1))
    e.log.add(entry(e.log, 2, "fork b", seq=1, parents=[]))
    e.log.add(entry(e.log, 0, "0 ends"))
    e.log.add(entry(e.log, 1, "1 ends"))
    assert IDS[2] in e.log.forked_at and e.said(IDS[2]) == 2 and e.may_speak(IDS[2])
    assert e.over()
