"""What a DHT holder keeps for others, against senders with many ids (pure: core.dht.store).
Re-announcing Sybils cannot push established providers out of a directory key or ahead of
them, and no number of fresh ids resets another sender's put budget."""

from __future__ import annotations

import pytest

from core.dht import records as rec
from core.dht.store import (
    MAX_BUDGETS,
    MAX_PROVIDERS_PER_KEY,
    PUT_BURST,
    Provider,
    RecordStore,
    StoreFull,
)

NOW = 1_800_000_000.0
KEY = b"/grove/dir/avg/round-1"


def test_sybils_cannot_push_established_providers_out_or_ahead() -> None:
    store = RecordStore()
    honest = [f"honest-{i}" for i in range(10)]
    for i, p in enumerate(honest):
        store.add_provider(KEY, Provider(p, (), NOW + 300), p, NOW + i)
    refused = 0
    for r in range(3):  # 500 fresh ids, each announcing three times
        for i in range(500):
            s = f"sybil-{i}"
            try:
                store.add_provider(KEY, Provider(s, (), NOW + 300 + r), s, NOW + 20 + r)
            except StoreFull:
                refused += 1
    listed = [p.peer_id for p in store.get_providers(KEY, NOW + 30)]
    assert len(listed) == MAX_PROVIDERS_PER_KEY
    assert listed[:10] == honest  # still there, and first
    assert refused == 3 * (500 - (MAX_PROVIDERS_PER_KEY - 10))
    # an honest re-announcement keeps its place; once entries expire, newcomers get room
    store.add_provider(KEY, Provider("honest-3", (), NOW + 340), "honest-3", NOW + 40)
    assert [p.peer_id for p in store.get_providers(KEY, NOW + 40)][3] == "honest-3"
    store.add_provider(KEY, Provider("late", (), NOW + 600), "late", NOW + 310)
    assert "late" in [p.peer_id for p in store.get_providers(KEY, NOW + 310)]


def test_many_fresh_ids_do_not_reset_another_senders_budget() -> None:
    store = RecordStore()
    key = b"/grove/dir/tier/cpu"
    refused = 0
    for _ in range(int(PUT_BURST) + 5):  # the attacker's own id runs out of budget
        try:
            store.add_provider(key, Provider("attacker", (), NOW + 300), "attacker", NOW)
        except rec.RecordRejected as e:
            assert "too many" in str(e)
            refused += 1
    assert refused == 5
    # then more fresh ids than the holder keeps budgets for, the attacker still trying now
    # and then (a holder that forgot every budget at the cap let it through here)
    for i in range(MAX_BUDGETS + 500):
        k = b"/grove/dir/x/%d" % (i % 60)
        store.add_provider(k, Provider(f"s{i}", (), NOW + 300), f"s{i}", NOW)
        if i % 1000 == 999:
            with pytest.raises(rec.RecordRejected, match="too many"):  # its limit holds
                store.add_provider(key, Provider("attacker", (), NOW + 300), "attacker", NOW)


def test_a_withdrawal_outvotes_a_stale_holders_copy_at_every_reader() -> None:
    """A village withdraws its record (a higher seq, 5 s to live); a holder that missed the
    withdrawal, or keeps serving the old copy on purpose, cannot make readers believe the
    village is still there: the signer's latest word wins over a longer expiry."""
    from tests.dhtkit import make_record, new_village, signed

    key, pid = new_village()
    k = rec.village_key(pid)
    old = signed(key, make_record(key, pid, now=NOW, ttl=300, seq=1))
    gone = signed(key, make_record(key, pid, now=NOW + 10, ttl=rec.WITHDRAW_TTL, seq=2))
    holder, stale = RecordStore(), RecordStore()
    for s in (holder, stale):
        s.put(k, old, "writer", NOW)
    holder.put(k, gone, "writer", NOW + 10)  # one holder saw the withdrawal
    answers = [s.get(k, NOW + 11) for s in (stale, holder)]
    best = rec.select([a for a in answers if a is not None])
    assert best is not None and best.record.seq == 2  # the reader believes the withdrawal
    with pytest.raises(rec.RecordRejected, match="replayed"):  # no one can put the old back
        holder.put(k, old, "someone", NOW + 12)
    assert holder.get(k, NOW + 16) is None  # and it is gone 5 s later


def test_one_signer_cannot_fill_a_holders_store() -> None:
    """Valid records it signed itself, in ever new training projects, from many senders
    (their put budgets are separate): past MAX_PER_SIGNER the holder has no room for them,
    and still takes other villages' records."""
    from core.dht.store import MAX_PER_SIGNER
    from tests.test_dht_pure import _progress, new_village

    store = RecordStore()
    key, pid = new_village()
    refused = 0
    for i in range(MAX_PER_SIGNER + 20):
        k = rec.progress_key(f"p{i}", pid)
        value = rec.sign_progress(_progress(pid, project=f"p{i}", now=NOW), key.sign)
        try:
            store.put(k, value, f"sender-{i}", NOW)
        except StoreFull as e:
            assert "one signer" in str(e)
            refused += 1
    assert refused == 20 and len(store.records) == MAX_PER_SIGNER
    other_key, other = new_village()
    store.put(rec.progress_key("p0", other), rec.sign_progress(
        _progress(other, project="p0", now=NOW), other_key.sign), "x", NOW)
    # once its records expire, it has room again
    store.expire(NOW + 1000)
    assert not store.records
