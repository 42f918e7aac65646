"""Network trust: the pure EigenTrust over trust views, the signed view record's bounds, and
the real DHT and trust services over the simulated network (a village comes to trust one
whose work a village it trusts has checked; a ring of strangers vouching for each other
gains nothing)."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from core.dht import records as rec
from core.ledger import policy
from core.ledger.trust import NetworkTrust
from core.simnet.world import World
from tests.dhtkit import new_village

# -- pure ---------------------------------------------------------------------------------


def test_a_trust_view_counts_checked_work_only_normalised_and_capped():
    scores = {"a": (3, 1, ""), "b": (1, 0, ""), "c": (0, 2, "wrong"), "me": (5, 0, ""),
              "d": (2, 2, "")}
    assert policy.local_trust(scores, "me", 32) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert policy.local_trust(scores, "me", 1) == {"a": 1.0}
    assert policy.local_trust({"c": (0, 2, "")}, "me", 32) == {}


def _ring(n: int, prefix: str = "sybil") -> dict[str, dict[str, float]]:
    ids = [f"{prefix}{i}" for i in range(n)]
    return {p: {q: 1 / (n - 1) for q in ids if q != p} for p in ids}


def test_trust_reaches_through_checked_work_and_a_ring_of_strangers_gets_none():
    views = {"me": {"b": 1.0}, "b": {"c": 0.5, "d": 0.5}, "c": {}, **_ring(40)}
    trust, vouched = policy.network_trust("me", views, anchors=())
    assert {"b", "c", "d"} <= vouched
    assert not any(p.startswith("sybil") for p in vouched)
    assert sum(t for p, t in trust.items() if p.startswith("sybil")) == 0.0
    # a ring one of whose members did checked work for b: its trust is what b's edge
    # carries in, below what b's honest neighbours hold; only the member whose work b
    # checked is vouched for - the ring keeps the trust flowing in (nothing leaves it), so
    # without the hop bound all 40 would clear the floor
    views["b"] = {"c": 0.45, "d": 0.45, "sybil0": 0.1}
    trust, vouched = policy.network_trust("me", views, anchors=())
    ring = sum(t for p, t in trust.items() if p.startswith("sybil"))
    assert ring < trust["c"]
    assert {p for p in vouched if p.startswith("sybil")} == {"sybil0"}
    _t, unbounded = policy.network_trust("me", views, anchors=(), hops=99)
    assert sum(1 for p in unbounded if p.startswith("sybil")) == 40
    # a pre-trusted village's word counts like our own
    trust, vouched = policy.network_trust("me", {"me": {}, "f": {"g": 1.0}}, anchors={"f"})
    assert {"f", "g"} <= vouched
    # far hops fade below the floor: a chain of 32-way splits
    views = {"me": {f"h1-{i}": 1 / 32 for i in range(32)}}
    for i in range(32):
        views[f"h1-{i}"] = {f"h2-{i}-{j}": 1 / 32 for j in range(32)}
    for i in range(32):
        for j in range(32):
            views[f"h2-{i}-{j}"] = {f"h3-{i}-{j}-{k}": 1 / 32 for k in range(32)}
    _trust, vouched = policy.network_trust("me", views, anchors=())
    assert all(f"h1-{i}" in vouched and f"h2-{i}-0" in vouched for i in range(32))
    assert not any(p.startswith("h3-") for p in vouched)


def test_views_are_read_from_the_anchors_outwards_most_vouched_first():
    views: dict[str, dict[str, float]] = {"me": {"b": 0.25, "c": 0.75}}
    assert policy.next_views(views, {"me", "f"}, {"me"}, 10) == ["f", "c", "b"]
    assert policy.next_views(views, {"me", "f"}, {"me"}, 2) == ["f", "c"]
    views.update({"b": {"d": 1.0}, "c": {"d": 0.5, "e": 0.5}})
    assert policy.next_views(views, {"me"}, {"me", "b", "c"}, 10) == ["d", "e"]
    assert policy.next_views(views, {"me"}, {"me", "b", "c"}, 0) == []
    # only what a view read names is ever read: nothing names the ring's members
    assert policy.next_views({"me": {"b": 1.0}, "b": {}}, {"me"}, {"me", "b"}, 10) == []


def test_own_checks_outrank_the_networks_word():
    scores = {"x": (0, 3, "wrong"), "y": (2, 0, "")}
    trusted = policy.trusted_peers(scores, {"p"}, vouched={"x", "z"})
    assert trusted == {"p", "y", "z"}
    assert policy.trusted_peers(scores, (), refused={"z"}, vouched={"z"}) == {"y"}


# -- the record ---------------------------------------------------------------------------


def _view(key: Any, pid: str, vouches: list[tuple[str, float]], **over: Any) -> bytes:
    now = time.time()
    fields: dict[str, Any] = dict(v=rec.VERSION, peer_id=pid, vouches=vouches,
                                  seq=1, issued_at=now, expires_at=now + 600)
    fields.update(over)
    return rec.sign_trust(rec.TrustRecord(**fields), key.sign)


def test_trust_views_are_signed_and_every_figure_is_bounded():
    key, pid = new_village()
    others = [new_village()[1] for _ in range(rec.MAX_VOUCHES + 1)]
    now = time.time()
    good = rec.validate(rec.trust_key(pid), _view(key, pid, [(others[0], 0.5),
                                                             (others[1], 0.5)]), now)
    assert dict(good.record.vouches) == {others[0]: 0.5, others[1]: 0.5}
    cases = {
        "at most 32": [(p, 1 / 33) for p in others],
        "twice": [(others[0], 0.2), (others[0], 0.2)],
        "its own signer": [(pid, 0.5)],
        "not an Ed25519 peer id": [("12D3KooWnotanid", 0.5)],
        "weights out of range": [(others[0], 0.7), (others[1], 0.7)],
    }
    for why, vouches in cases.items():
        with pytest.raises(rec.RecordRejected, match=why):
            rec.validate(rec.trust_key(pid), _view(key, pid, vouches), now)
    for bad in (0.0, -0.1, math.nan, math.inf, 1.5):
        with pytest.raises(rec.RecordRejected, match="weights out of range"):
            rec.validate(rec.trust_key(pid), _view(key, pid, [(others[0], bad)]), now)
    with pytest.raises(rec.RecordRejected, match="expires too far"):
        rec.validate(rec.trust_key(pid), _view(key, pid, [], expires_at=now + 5000), now)
    with pytest.raises(rec.RecordRejected, match="version"):
        rec.validate(rec.trust_key(pid), _view(key, pid, [], v=9), now)
    # one village cannot publish a view under another's key
    other_key, other = new_village()
    with pytest.raises(rec.RecordRejected, match="another peer|bad signature"):
        rec.validate(rec.trust_key(other), _view(key, pid, []), now)
    forged = msgspec.msgpack.decode(_view(key, other, []), type=rec.SignedRecord)
    with pytest.raises(rec.RecordRejected, match="bad signature"):
        rec.validate(rec.trust_key(other), msgspec.msgpack.encode(forged), now)
    del other_key


# -- over the simulated network ----------------------------------------------------------


def test_a_village_trusts_whom_its_trusted_villages_checked_and_no_ring_of_strangers():
    """Twelve villages over the simulated network. a checked b's work, b checked c's; five
    more identities vouch heavily for each other (their checks of each other are the only
    "work" they did) and one of them vouches for a. a comes to trust b and c and none of the
    ring; a village nobody vouches for trusts only itself."""
    async def main() -> dict[str, Any]:
        w = World(5)
        World.seed_scheduler(5)
        async with trio.open_nursery() as nursery:
            await w.start(12, nursery, stagger=0.2)
            await trio.sleep(15)
            v = w.alive()
            a, b, c, loner, ring = v[0], v[1], v[2], v[3], v[4:9]
            scores: dict[str, dict[str, tuple[int, int, str]]] = {
                a.peer_id: {b.peer_id: (4, 0, "")},
                b.peer_id: {c.peer_id: (3, 1, "")},
                c.peer_id: {},
                loner.peer_id: {},
            }
            for r in ring:
                scores[r.peer_id] = {q.peer_id: (50, 0, "") for q in ring if q is not r}
            scores[ring[0].peer_id][a.peer_id] = (50, 0, "")  # flattery reads nothing

            got: dict[str, Any] = {}

            def trust_of(village: Any) -> NetworkTrust:
                async def read() -> dict[str, tuple[int, int, str]]:
                    return scores[village.peer_id]

                def keep(trust: dict[str, float], vouched: frozenset[str]) -> None:
                    got[village.peer_id] = vouched

                return NetworkTrust(village.ctx, village.dht, read, keep, frozenset)

            services = {x.peer_id: trust_of(x) for x in (a, b, c, loner, *ring)}
            for x in (c, b, loner, *ring):  # their views are in the DHT first
                await services[x.peer_id].refresh()
            vouched = await services[a.peer_id].refresh()
            out = {"a": vouched, "views_read": services[a.peer_id].views_read,
                   "loner": got[loner.peer_id], "ring0": got[ring[0].peer_id],
                   "b": b.peer_id, "c": c.peer_id, "ring": {r.peer_id for r in ring}}
            nursery.cancel_scope.cancel()
        return out

    out = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert {out["b"], out["c"]} <= out["a"]
    assert not out["a"] & out["ring"]
    assert out["views_read"] >= 2  # b's view was read from the DHT, and c's
    assert out["loner"] == frozenset()
    # the ring's opinion of itself is its own, and moves no one else
    assert out["ring"] - out["ring0"] == set(out["ring"]) - set(out["ring0"])
    assert len(out["ring0"] & out["ring"]) == 4
