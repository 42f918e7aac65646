"""DHT pure logic: routing table, lookups simulated at scale, records, the store."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.dht import records as rec
from core.dht.keyspace import (
    bucket_index,
    ed25519_public_key,
    kad_id,
    peer_id_from_public_key,
    peer_kad_id,
)
from core.dht.lookup import Candidate, Lookup
from core.dht.routing import RoutingTable
from core.dht.store import PUT_BURST, Provider, RecordStore, store_pacer
from core.errors import PeerMisbehaviour
from core.net import kad
from core.peers_file import read_villages
from core.snapshot import VillageView, live_villages
from tests.dhtkit import make_record, new_village, signed

NOW = 1_800_000_000.0


def _fake_peer(rng: random.Random) -> str:
    return peer_id_from_public_key(rng.randbytes(32))


def test_peer_id_embeds_the_public_key() -> None:
    key, pid = new_village()
    assert ed25519_public_key(pid) == key.public_bytes
    assert peer_id_from_public_key(key.public_bytes) == pid
    assert ed25519_public_key("not-base58-0OIl") is None


def test_routing_table_buckets_replacements_and_closest() -> None:
    rng = random.Random(1)
    own = _fake_peer(rng)
    table = RoutingTable(own, k=4)
    peers = [_fake_peer(rng) for _ in range(300)]
    for i, p in enumerate(peers):
        table.add(p, (f"/ip4/127.0.0.1/tcp/{i}",), now=float(i))
    assert not table.add(own, (), 0.0) and own not in table
    for b in table.buckets:
        assert len(b.contacts) <= 4 and len(b.replacements) <= 5
    target = kad_id(b"x")
    got = [c.peer_id for c in table.closest(target, 4)]
    inside = sorted((c for c in table.all()), key=lambda c: c.kid ^ target)
    assert got == [c.peer_id for c in inside[:4]]
    # the farthest bucket is full: a failed member is replaced from the replacement cache
    far = max(range(256), key=lambda i: len(table.buckets[i].replacements))
    bucket = table.buckets[far]
    victim = bucket.contacts[0].peer_id
    waiting = bucket.replacements[-1].peer_id
    table.failed(victim)
    assert victim in table
    table.failed(victim)
    assert victim not in table and waiting in table
    assert all(bucket_index(table.own, c.kid) == far for c in bucket.contacts)


def test_a_routing_table_measures_the_network_size() -> None:
    rng = random.Random(3)
    small = RoutingTable(_fake_peer(rng))
    for _ in range(11):
        small.add(_fake_peer(rng), (), 0.0)
    assert small.size_measure() == (12.0, 0.1)  # no bucket turned anyone away: counted
    for contacts in range(3):  # 1, 2 and 3 villages: real numbers (telemetry compares them)
        tiny = RoutingTable(_fake_peer(rng))
        for _ in range(contacts):
            tiny.add(_fake_peer(rng), (), 0.0)
        est, unc = tiny.size_measure()
        assert isinstance(est, float) and isinstance(unc, float), (contacts, est, unc)
        assert est == contacts + 1
    for seed in range(3000):  # a few contacts say nothing about density: their count stands
        r = random.Random(seed)
        few = RoutingTable(_fake_peer(r))
        contacts = 2 + seed % 4
        for _ in range(contacts):
            few.add(_fake_peer(r), (), 0.0)
        assert few.size_measure() == (contacts + 1.0, 0.1), (seed, contacts)
    for n in (200, 3000):
        ids = [_fake_peer(rng) for _ in range(n)]
        estimates = []
        for me in ids[:40]:
            t = RoutingTable(me)
            mine = peer_kad_id(me)
            for other in rng.sample(ids, 100) + sorted(
                    ids, key=lambda o: peer_kad_id(o) ^ mine)[1:40]:  # and its neighbourhood
                t.add(other, (), 0.0)
            est, unc = t.size_measure()
            assert unc == pytest.approx(1 / 14**0.5)
            assert n / 4 < est < n * 4
            estimates.append(est)
        mean_log = sum(math.log2(e) for e in estimates) / len(estimates)
        assert abs(mean_log - math.log2(n)) < 0.3  # averaged over villages: within ~23%
        # a newcomer that knows only its 12 nearest (its own lookup), no bucket full yet:
        # the density says the network is far larger than its count
        newcomer = RoutingTable(ids[0])
        for other in sorted(ids, key=lambda o: peer_kad_id(o) ^ peer_kad_id(ids[0]))[1:13]:
            newcomer.add(other, (), 0.0)
        est, unc = newcomer.size_measure()
        assert n / 4 < est < n * 4 and unc == pytest.approx(1 / 10**0.5)


def test_lookup_finds_the_true_closest_in_a_simulated_network_of_1000() -> None:
    rng = random.Random(7)
    ids = [_fake_peer(rng) for _ in range(1000)]
    tables = {}
    for pid in ids:
        t = RoutingTable(pid, k=20)
        for other in rng.sample(ids, 60):
            t.add(other, (), 0.0)
        tables[pid] = t
    # Kademlia's invariant: each node knows its own neighbourhood
    for pid in ids:
        mine = peer_kad_id(pid)
        for other in sorted(ids, key=lambda o: peer_kad_id(o) ^ mine)[1:21]:
            tables[pid].add(other, (), 0.0)
    hops_total = 0
    for trial in range(30):
        me = rng.choice(ids)
        target = kad_id(rng.randbytes(8))
        lk = Lookup(target, [Candidate(c.peer_id, (), c.kid) for c in
                             tables[me].closest(target)], own_peer_id=me)
        rounds = 0
        while not lk.done:
            batch = lk.next_queries()
            assert batch or lk.in_flight
            for c in batch:
                lk.answered(c.peer_id, [Candidate(x.peer_id, (), x.kid) for x in
                                        tables[c.peer_id].closest(target)])
            rounds += 1
        hops_total += rounds
        truth = sorted((p for p in ids if p != me), key=lambda p: peer_kad_id(p) ^ target)[:20]
        assert [c.peer_id for c in lk.closest_answered()] == truth
    assert hops_total / 30 < 15


def test_lookup_survives_failures() -> None:
    rng = random.Random(3)
    target = kad_id(b"t")
    seeds = [Candidate(p, (), peer_kad_id(p)) for p in (_fake_peer(rng) for _ in range(10))]
    lk = Lookup(target, seeds, k=5, alpha=3)
    while not lk.done:
        for c in lk.next_queries():
            if rng.random() < 0.5:
                lk.failed(c.peer_id)
            else:
                lk.answered(c.peer_id, [])
    assert all(lk.state[c.peer_id] == "answered" for c in lk.closest_answered())


def test_one_answer_adds_at_most_a_few_peers_to_dial() -> None:
    from core.dht.lookup import MAX_NEW_PER_ANSWER

    rng = random.Random(4)
    target = kad_id(b"crowd")
    seed = Candidate(_fake_peer(rng), (), 0)
    lk = Lookup(target, [seed], k=20, alpha=3)
    assert [c.peer_id for c in lk.next_queries()] == [seed.peer_id]
    crowd = [Candidate(p, (), peer_kad_id(p)) for p in (_fake_peer(rng) for _ in range(60))]
    lk.answered(seed.peer_id, crowd + crowd[:5])  # 60 made-up peers (and some twice)
    assert len(lk.known) == 1 + MAX_NEW_PER_ANSWER
    closest = sorted(crowd, key=lambda c: c.kid ^ target)[:MAX_NEW_PER_ANSWER]
    assert set(lk.known) == {seed.peer_id, *(c.peer_id for c in closest)}
    asked = set()
    while not lk.done:  # every one of them fails: the lookup ends having dialled only those
        for c in lk.next_queries():
            asked.add(c.peer_id)
            lk.failed(c.peer_id)
    assert asked == {c.peer_id for c in closest}


# -- records -------------------------------------------------------------------------------
def test_a_good_record_validates_and_round_trips() -> None:
    key, pid = new_village()
    value = signed(key, make_record(key, pid, now=NOW))
    got = rec.validate(rec.village_key(pid), value, NOW)
    assert got.record.peer_id == pid and got.record.tier == "cpu"


def _reject(key: bytes, value: bytes, words: str, now: float = NOW) -> None:
    with pytest.raises(rec.RecordRejected, match=words):
        rec.validate(key, value, now)


def test_every_bad_record_is_rejected_with_a_reason() -> None:
    key, pid = new_village()
    other_key, other = new_village()
    good = make_record(key, pid, now=NOW)
    k = rec.village_key(pid)
    # forged: signed by someone else
    _reject(k, signed(other_key, good), "bad signature")
    # tampered body under a valid signature (the region's value alone: a bare b"eu" may
    # stand inside the random peer id too, and that is another rejection)
    env = msgspec.msgpack.decode(signed(key, good), type=rec.SignedRecord)
    body = env.body.replace(b"\xa6region\xa2eu", b"\xa6region\xa2us")
    assert body != env.body
    tampered = msgspec.msgpack.encode(rec.SignedRecord(body, env.signature))
    _reject(k, tampered, "bad signature")
    # a record for another peer's key
    _reject(rec.village_key(other), signed(key, good), "another peer")
    # oversized
    _reject(k, signed(key, make_record(key, pid, now=NOW, software="x" * 5000)), "exceeds")
    # malformed
    _reject(k, b"\x93garbage", "malformed")
    # far-future expiry, expired, issued in the future
    _reject(k, signed(key, make_record(key, pid, now=NOW, ttl=3600)), "too far")
    _reject(k, signed(key, make_record(key, pid, now=NOW - 400, ttl=300)), "expired")
    _reject(k, signed(key, make_record(key, pid, now=NOW, issued=NOW + 120, ttl=300)),
            "issued in the future|seq or times")
    # unknown namespace, unknown tier, wrong version
    _reject(b"/ipfs/x/" + pid.encode(), signed(key, good), "unknown namespace")
    _reject(k, signed(key, make_record(key, pid, now=NOW, tier="quantum")), "unknown tier")
    _reject(k, signed(key, make_record(key, pid, now=NOW, v=9)), "version")


def _progress(pid: str, *, now: float = NOW, ttl: float = 30, project: str = "digits",
              **fields: object) -> rec.ProgressRecord:
    base = dict(v=rec.VERSION, peer_id=pid, project=project, epoch=3, samples=640,
                samples_per_second=900.0, state_hash="ab" * 32, seq=7, issued_at=now,
                expires_at=now + ttl)
    base.update(fields)
    return rec.ProgressRecord(**base)  # type: ignore[arg-type]


def test_training_progress_records_are_signed_and_checked_like_village_records() -> None:
    key, pid = new_village()
    other_key, other = new_village()
    k = rec.progress_key("digits", pid)
    got = rec.validate(k, rec.sign_progress(_progress(pid), key.sign), NOW)
    assert got.record.epoch == 3 and got.record.samples == 640
    _reject(k, rec.sign_progress(_progress(pid), other_key.sign), "bad signature")
    _reject(rec.progress_key("digits", other), rec.sign_progress(_progress(pid), key.sign),
            "another peer")
    _reject(rec.progress_key("other", pid), rec.sign_progress(_progress(pid), key.sign),
            "bad signature|does not match")  # the key names another project
    _reject(rec.progress_key("Bad Name", pid), b"x", "bad project name")
    _reject(k, rec.sign_progress(_progress(pid, ttl=600), key.sign), "too far")
    _reject(k, rec.sign_progress(_progress(pid, now=NOW - 100), key.sign), "expired")
    _reject(k, rec.sign_progress(_progress(pid, samples=-1), key.sign), "out of range")
    _reject(k, rec.sign_progress(_progress(pid, state_hash="x"), key.sign), "out of range")
    # a village record's signature does not make a progress record (separate domains)
    village_sig = msgspec.msgpack.decode(signed(key, make_record(key, pid, now=NOW)),
                                         type=rec.SignedRecord)
    body = msgspec.msgpack.encode(_progress(pid))
    _reject(k, msgspec.msgpack.encode(rec.SignedRecord(body, village_sig.signature)),
            "bad signature")
    _reject(b"/grove/other/" + pid.encode(), b"x", "unknown namespace")


def test_selector_highest_seq_then_latest_expiry() -> None:
    """The signer's latest word wins (issue 20: a withdrawal - a higher seq with a short TTL
    - supersedes the record it withdraws at every reader); expiry breaks ties."""
    key, pid = new_village()
    k = rec.village_key(pid)
    a = rec.validate(k, signed(key, make_record(key, pid, now=NOW, ttl=200, seq=9)), NOW)
    b = rec.validate(k, signed(key, make_record(key, pid, now=NOW, ttl=300, seq=1)), NOW)
    c = rec.validate(k, signed(key, make_record(key, pid, now=NOW, ttl=300, seq=2)), NOW)
    d = rec.validate(k, signed(key, make_record(key, pid, now=NOW, ttl=250, seq=9)), NOW)
    assert rec.select([a, b, c]) is a and rec.select([b, c]) is c and rec.select([]) is None
    assert rec.select([a, d]) is d  # same seq: the later expiry


@given(st.permutations(list(range(6))))
def test_selection_does_not_depend_on_arrival_order(order: list[int]) -> None:
    _, pid = _KEY
    k = rec.village_key(pid)
    recs = [rec.validate(k, v, NOW) for v in _VALUES]
    best = rec.select([recs[i] for i in order])
    assert best is not None
    assert (best.record.seq, best.record.expires_at) == max(
        (r.record.seq, r.record.expires_at) for r in recs)


_KEY = new_village()
_VALUES = [signed(_KEY[0], make_record(_KEY[0], _KEY[1], now=NOW, ttl=100 + 50 * (i % 3),
                                       seq=i)) for i in range(6)]


def test_store_replay_flood_and_expiry() -> None:
    key, pid = new_village()
    k = rec.village_key(pid)
    store = RecordStore()
    v2 = signed(key, make_record(key, pid, now=NOW, seq=2))
    store.put(k, v2, "sender", NOW)
    with pytest.raises(rec.RecordRejected, match="replayed old seq"):
        store.put(k, signed(key, make_record(key, pid, now=NOW, seq=1, ttl=320)), "s", NOW)
    assert store.put(k, v2, "sender", NOW).value == v2  # the same record again is fine
    # a clean shutdown's short-lived overwrite (higher seq) replaces it
    withdraw = signed(key, make_record(key, pid, now=NOW, seq=3, ttl=5))
    store.put(k, withdraw, "sender", NOW)
    assert store.get(k, NOW + 4) is not None and store.get(k, NOW + 5) is None
    # a peer flooding stores is cut off, others are not
    flood = RecordStore()
    refused = 0
    for i in range(int(PUT_BURST) + 20):
        try:
            flood.put(k, v2, "flooder", NOW)
        except rec.RecordRejected as e:
            refused += "too many" in str(e)
    assert refused >= 19
    assert flood.put(k, v2, "someone-else", NOW)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3), st.floats(0, 1)), min_size=1, max_size=150))
# the worst case: a burst held up by the network lands among the stores paced after it
@example([(0.0, 1.0)] * int(PUT_BURST) + [(0.01, 0.0)] * 200)
def test_a_sender_that_paces_its_stores_is_never_refused(
        asks: list[tuple[float, float]]) -> None:
    """Whenever the sender wants to store (after `pause` s), it waits what its pacer says;
    the network delays each store by up to 1 s and so bunches and reorders them; the
    receiving store still refuses none."""
    pacer, store = store_pacer(), RecordStore()
    t, arrivals = 0.0, []
    for pause, delay in asks:
        t += pause
        send_at = t + pacer.delay("B", t)
        arrivals.append(send_at + delay)
    for at in sorted(arrivals):
        store._spend("B", NOW + at)  # raises RecordRejected if refused


def test_providers_only_self_deduplicated_and_expiring() -> None:
    store = RecordStore()
    key = b"/grove/dir/tier/cpu"
    store.add_provider(key, Provider("A", (), NOW + 300), "A", NOW)
    store.add_provider(key, Provider("A", (), NOW + 300), "A", NOW)
    store.add_provider(key, Provider("B", (), NOW + 100), "B", NOW)
    assert [p.peer_id for p in store.get_providers(key, NOW)] == ["A", "B"]
    assert [p.peer_id for p in store.get_providers(key, NOW + 200)] == ["A"]
    with pytest.raises(rec.RecordRejected, match="only announce itself"):
        store.add_provider(key, Provider("C", (), NOW + 100), "A", NOW)
    with pytest.raises(rec.RecordRejected, match="unknown directory key"):
        store.add_provider(b"/ipfs/providers", Provider("A", (), NOW + 100), "A", NOW)


def test_expired_villages_are_never_shown(tmp_path) -> None:
    import json

    views = (VillageView("A", "cpu", (), "", (), True, "direct", NOW - 10, NOW + 10),
             VillageView("B", "cpu", (), "", (), True, "direct", NOW - 400, NOW - 1))
    assert [v.peer_id for v in live_villages(views, NOW)] == ["A"]
    assert live_villages(views, NOW + 10) == ()
    from core.snapshot import to_jsonable

    (tmp_path / "villages.json").write_text(json.dumps([to_jsonable(v) for v in views]))
    assert [v.peer_id for v in read_villages(tmp_path, NOW)] == ["A"]
    assert read_villages(tmp_path, NOW + 11) == ()
    (tmp_path / "villages.json").write_text("{broken")
    assert read_villages(tmp_path, NOW) == ()


def test_known_villages_recheck_expiry_on_a_fake_clock() -> None:
    from core.dht.service import DhtService

    svc = DhtService.__new__(DhtService)
    svc.villages = {}
    key, pid = new_village()
    svc.villages[pid] = rec.validate(rec.village_key(pid),
                                     signed(key, make_record(key, pid, now=NOW, ttl=60)), NOW)
    assert [r.record.peer_id for r in svc.known_villages(NOW + 59)] == [pid]
    assert svc.known_villages(NOW + 60) == []


# -- fuzz: every decoder on random bytes -----------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_wire_decoders_never_crash(data: bytes) -> None:
    try:
        kad.decode(data, "fuzz")
    except PeerMisbehaviour:
        pass
    try:
        rec.validate(b"/grove/village/12D3KooWGTDV4DWDGVwBUNjyj6dXrtxduNZpGRtvCb6sCvAVdVZg",
                     data, time.time())
    except rec.RecordRejected:
        pass


def test_a_slow_query_frees_its_place_and_its_late_answer_still_counts() -> None:
    rng = random.Random(5)
    target = kad_id(b"t")
    seeds = [Candidate(p, (), peer_kad_id(p)) for p in (_fake_peer(rng) for _ in range(12))]
    lk = Lookup(target, seeds, k=4, alpha=3)
    first = lk.next_queries()
    assert len(first) == 3 and lk.next_queries() == []  # alpha places taken
    silent = first[0]
    lk.slow(silent.peer_id)  # a vanished village: its query hangs
    assert [c.peer_id for c in lk.next_queries()] != []  # its place went to another
    while not lk.done:  # everyone else answers: done without waiting for the silent one
        for c in lk.next_queries():
            lk.answered(c.peer_id, [])
        for p, s in list(lk.state.items()):
            if s == "waiting":
                lk.answered(p, [])
    assert silent.peer_id not in [c.peer_id for c in lk.closest_answered()]
    lk.answered(silent.peer_id, [])  # it answers after all: counted
    assert silent.peer_id in [c.peer_id for c in lk.closest_answered(12)]


def test_slow_queries_are_bounded() -> None:
    rng = random.Random(6)
    seeds = [Candidate(p, (), peer_kad_id(p)) for p in (_fake_peer(rng) for _ in range(40))]
    lk = Lookup(kad_id(b"u"), seeds, k=20, alpha=3)
    for _ in range(10):  # every query hangs
        for c in lk.next_queries():
            lk.slow(c.peer_id)
    assert sum(1 for s in lk.state.values() if s == "slow") == 9  # alpha * MAX_SLOW_FACTOR


def test_a_lookup_whose_every_query_is_slow_waits_for_them() -> None:
    rng = random.Random(8)
    seeds = [Candidate(p, (), peer_kad_id(p)) for p in (_fake_peer(rng) for _ in range(30))]
    lk = Lookup(kad_id(b"v"), seeds, k=20, alpha=3)
    for _ in range(5):  # a loaded machine: every query exceeds the slow limit
        for c in lk.next_queries():
            lk.slow(c.peer_id)
    assert not lk.done  # giving up now would find nobody
    first_slow = next(p for p, s in lk.state.items() if s == "slow")
    lk.answered(first_slow, [])
    assert lk.closest_answered()[0].peer_id == first_slow


def test_a_provider_proof_holds_only_for_its_signer_key_and_time() -> None:
    from core.dht import providers as proofs
    from core.dht.keyspace import peer_id_from_public_key
    from core.identity import VillageKey

    key, other = VillageKey(b"\x01" * 32), VillageKey(b"\x02" * 32)
    me = peer_id_from_public_key(key.public_bytes)
    them = peer_id_from_public_key(other.public_bytes)
    dir_key = b"/grove/dir/tier/cpu"
    proof = proofs.sign_provider(dir_key, me, NOW + 300, key.sign)
    back = proofs.decode(proofs.encode([proof]))
    assert back == [proof]
    proofs.check(dir_key, back[0], NOW, 330)
    bad = [
        (b"/grove/dir/tier/other", proof, "signature"),              # another key
        (dir_key, proofs.ProviderProof(them, NOW + 300, proof.signature), "signature"),
        (dir_key, proofs.sign_provider(dir_key, them, NOW + 300, key.sign), "signature"),
        (dir_key, proofs.ProviderProof(me, NOW + 301, proof.signature), "signature"),
        (dir_key, proofs.sign_provider(dir_key, me, NOW + 999, key.sign), "out of range"),
        (dir_key, proofs.sign_provider(dir_key, me, NOW - 1, key.sign), "out of range"),
        (dir_key, proofs.ProviderProof("not-an-id", NOW + 300, proof.signature), "signature"),
    ]
    for k, p, why in bad:
        with pytest.raises(proofs.BadProof, match=why):
            proofs.check(k, p, NOW, 330)
    for data, why in [(b"\xc1", "malformed"), (b"x" * 9000, "at most"),
                      (proofs.msgspec.msgpack.encode([[me, 1.0, b""]] * 41), "at most 40")]:
        with pytest.raises(proofs.BadProof, match=why):
            proofs.decode(data)


def test_ids_from_one_subnet_cannot_fill_a_bucket_or_the_table() -> None:
    from core.dht.keyspace import bucket_index
    from core.dht.routing import PER_PREFIX_IN_TABLE, PER_PREFIX_PER_BUCKET, network_prefix

    assert network_prefix(("/ip4/45.33.12.7/tcp/4001",)) == "45.33.12.0/24"
    assert network_prefix(("/ip4/127.0.0.1/tcp/1", "/ip4/10.1.2.3/tcp/1")) == ""
    assert network_prefix(("/ip6/2a01:4f8:1:2::5/tcp/1",)) == "2a01:4f8:1::/48"
    assert network_prefix(("/dns4/example.org/tcp/1",)) == ""
    _, me = new_village()
    table = RoutingTable(me)
    ids = [new_village()[1] for _ in range(400)]
    by_bucket: dict[int, list[str]] = {}
    for pid in ids:
        by_bucket.setdefault(bucket_index(table.own, peer_kad_id(pid)), []).append(pid)
    attacker = [f"/ip4/45.76.100.{i}/tcp/4001" for i in range(256)]
    taken = [pid for i, pid in enumerate(ids) if table.add(pid, (attacker[i % 256],), NOW)]
    per_bucket = {b: sum(p in taken for p in ps) for b, ps in by_bucket.items()}
    assert max(per_bucket.values()) <= PER_PREFIX_PER_BUCKET
    assert len(taken) == PER_PREFIX_IN_TABLE
    # other networks, and a LAN or one machine, are still let in (addresses are strings
    # here: nothing is sent)
    assert table.add(new_village()[1], ("/ip4/81.2.69.9/tcp/4001",), NOW)
    # loopback has no prefix limit: only a full bucket (K contacts) turns one away
    added = 0
    for _ in range(30):
        pid = new_village()[1]
        room = len(table.buckets[bucket_index(table.own, peer_kad_id(pid))].contacts) < table.k
        assert table.add(pid, ("/ip4/127.0.0.1/tcp/4001",), NOW) == room
        added += room
    assert added > PER_PREFIX_IN_TABLE


def test_a_village_record_carries_its_personas_presence_and_profile(tmp_path: Path) -> None:
    """`gardener_online` is the gardener's presence (None where it cannot be measured), not
    the participation switch. What docs/consistency.md says the record holds: status,
    availability, capacity, name,
    description, backend and the profile's seq, each in range (else the record is refused);
    32 personas with the longest names and descriptions still make a record within the size
    cap, the last descriptions left out."""
    import random
    import types

    from core.identity import VillageKey
    from core.net.keys import peer_id_from_seed
    from core.personas.model import MAX_DESCRIPTION, MAX_NAME, Persona
    from core.ports import ServiceContext, SystemClock
    from core.settings_schema import Settings
    from core.settings_service import FixedSettings
    from core.village import VillageRecordSource
    from tests.dhtkit import make_record, signed

    key = VillageKey.generate()
    pid = peer_id_from_seed(key.seed)
    transport = types.SimpleNamespace(listen_addrs=lambda: ["/ip4/127.0.0.1/tcp/4001"],
                                      nat=None, peer_id=pid)
    ctx = ServiceContext(pid, key.sign, tmp_path, random.Random(0), SystemClock(),  # type: ignore[arg-type]
                         FixedSettings(Settings()), lambda p, r: None, transport)
    tier = types.SimpleNamespace(tier="cpu", spec=types.SimpleNamespace(services=()))
    bo = Persona("a1b2c3d4e5f6", "Bo", "Helps with compost.", "openai-compatible", "running",
                 "open", 3, 7)
    made = VillageRecordSource(ctx, tier=lambda: tier, personas=lambda: (bo,)).make(300)
    assert made.record.gardener_online is None  # presence not measured: not claimed
    got = rec.validate(made.key, made.value, time.time()).record.personas
    assert got == [rec.PersonaSummary("a1b2c3d4e5f6", "Bo", "running", "open", 3,
                                      "openai-compatible", 7, "Helps with compost.")]

    for present in (True, False):  # the gardener at the computer, or away
        seen = VillageRecordSource(ctx, tier=lambda: tier, presence=lambda p=present: p).make(60)
        assert rec.validate(seen.key, seen.value, time.time()).record.gardener_online is present

    many = tuple(Persona(f"{i:012x}", "N" * MAX_NAME, "d" * MAX_DESCRIPTION, "scripted",
                         "running", "open", 1024, 2**40) for i in range(32))
    full = VillageRecordSource(ctx, tier=lambda: tier, personas=lambda: many).make(300)
    assert len(full.value) <= rec.MAX_RECORD_BYTES
    kept = rec.validate(full.key, full.value, time.time()).record.personas
    assert len(kept) == 32 and all(p.name == "N" * MAX_NAME for p in kept)
    told = [p.description for p in kept]
    assert 0 < told.count("d" * MAX_DESCRIPTION) < 32  # the first ones keep theirs
    assert told == sorted(told, reverse=True)  # the last ones lost theirs

    for bad in ({"status": "dancing"}, {"availability": "always"}, {"capacity": -1},
                {"description": "x" * (MAX_DESCRIPTION + 1)}, {"name": ""},
                {"backend": "b" * 33}):
        fields = {"id": "a1b2c3d4e5f6", "name": "Bo", "status": "running",
                  "availability": "open", **bad}
        record = make_record(key, pid, personas=[rec.PersonaSummary(**fields)])
        with pytest.raises(rec.RecordRejected, match="persona summary"):
            rec.validate(rec.village_key(pid), signed(key, record), time.time())


def test_a_village_record_carries_its_measured_upload_category_and_memory_for_agents(
        tmp_path: Path) -> None:
    """The seed's capability ad: a bandwidth category from the upload the village measured
    on its own transfers (no more than its upload cap; "not-measured" before the first) and
    the memory free for agents (the RAM cap less what the network's work holds, no more than
    the system has available). Out-of-range values are refused; a version-2 record (before
    the two fields) still reads, as not measured."""
    import random
    import types

    import psutil

    from core.identity import VillageKey
    from core.net.keys import peer_id_from_seed
    from core.ports import ServiceContext, SystemClock
    from core.settings_schema import Settings
    from core.settings_service import FixedSettings
    from core.village import VillageRecordSource
    from tests.dhtkit import make_record, signed

    assert [rec.bandwidth_category(m) for m in (None, 0.5, 1.0, 42.0, 100.0, 9e4)] == [
        "not-measured", "slow", "moderate", "fast", "very-fast", "very-fast"]
    key = VillageKey.generate()
    pid = peer_id_from_seed(key.seed)
    transport = types.SimpleNamespace(listen_addrs=lambda: ["/ip4/127.0.0.1/tcp/4001"],
                                      nat=None, peer_id=pid)
    tier = types.SimpleNamespace(tier="cpu", spec=types.SimpleNamespace(services=()))

    def made(upload: float | None, **settings: object) -> rec.VillageRecord:
        ctx = ServiceContext(pid, key.sign, tmp_path, random.Random(0), SystemClock(),  # type: ignore[arg-type]
                             FixedSettings(Settings().with_changes(**settings)),
                             lambda p, r: None, transport)
        ctx.memory.set_cap(ctx.settings.ram_cap_mb * 2**20)
        ctx.memory.reserve(1000 * 2**20, "four SWARM blocks")
        v = VillageRecordSource(ctx, tier=lambda: tier, upload_mbps=lambda: upload).make(60)
        return rec.validate(v.key, v.value, time.time()).record

    first = made(None, ram_cap_mb=4096)
    assert first.v == rec.VILLAGE_VERSION and first.bandwidth == "not-measured"
    available = psutil.virtual_memory().available // 2**20
    assert first.agent_memory_mb is not None
    assert abs(first.agent_memory_mb - min(3096, available)) <= 64  # the cap less what is held
    assert made(42.0).bandwidth == "fast"
    assert made(42.0, upload_kbps=100).bandwidth == "slow"  # the cap: 0.8 Mb/s offered

    for bad in ({"bandwidth": "warp"}, {"agent_memory_mb": -1},
                {"agent_memory_mb": rec.MAX_AGENT_MEMORY_MB + 1}):
        with pytest.raises(rec.RecordRejected, match="bandwidth category or agent memory"):
            rec.validate(rec.village_key(pid), signed(key, make_record(key, pid, **bad)),
                         time.time())
    # written by a version-2 village: a body without the two fields, signed as it signs
    fields = {k: v for k, v in msgspec.structs.asdict(make_record(key, pid, v=2)).items()
              if k not in ("bandwidth", "agent_memory_mb")}
    body = msgspec.msgpack.encode(fields)
    old = msgspec.msgpack.encode(rec.SignedRecord(
        body, key.sign(rec.DOMAIN + rec.village_key(pid) + body)))
    got = rec.validate(rec.village_key(pid), old, time.time()).record
    assert got.v == 2 and got.bandwidth == "not-measured" and got.agent_memory_mb is None
    assert got.name == ""  # a village that never chose a name


def test_a_village_name_travels_sanitised_and_a_hostile_one_is_refused(tmp_path: Path) -> None:
    """The gardener's chosen name goes into the signed record as plain text (control and
    direction-changing characters gone, at most 32 characters); a record whose name is not
    that is refused. The name is shown beside the derived one, never instead of it."""
    from core.identity import VillageKey
    from core.names import MAX_CHOSEN, display_name, sanitise, village_name
    from core.net.keys import peer_id_from_seed
    from tests.dhtkit import make_record, signed

    key = VillageKey.generate()
    pid = peer_id_from_seed(key.seed)
    assert sanitise("  Anna\u202e's\tdesk\x00 ") == "Anna's desk"
    assert len(sanitise("x" * 100)) == MAX_CHOSEN
    ok = rec.validate(rec.village_key(pid), signed(key, make_record(key, pid, name="Anna's desk")),
                      time.time()).record
    assert ok.name == "Anna's desk"
    assert display_name(pid, ok.name) == f"Anna's desk ({village_name(pid)})"
    assert display_name(pid, village_name("someone else")) == \
        f"{village_name('someone else')} ({village_name(pid)})"  # no passing as another
    for bad in ("evil\u202egnp", "a\nb", "x" * 40, " padded "):
        with pytest.raises(rec.RecordRejected, match="village name"):
            rec.validate(rec.village_key(pid), signed(key, make_record(key, pid, name=bad)),
                         time.time())
    assert village_name(pid) == village_name(pid) and len(village_name(pid).split()) == 2
