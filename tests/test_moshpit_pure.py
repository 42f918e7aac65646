"""Properties of the pure Moshpit core (hypothesis), and convergence at 1024 simulated peers."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.averaging.moshpit import (
    UploadRate,
    complete_members,
    form_groups,
    next_coords,
    partition,
    reduce_slice,
    shares_of,
    simulate,
)

shares = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1,
                  max_size=32).filter(lambda s: sum(s) > 0)


@given(length=st.integers(0, 10**7), shares=shares)
def test_partitions_cover_the_vector_exactly(length: int, shares: list[float]) -> None:
    parts = partition(length, shares)
    assert len(parts) == len(shares)
    assert parts[0].start == 0 and parts[-1].stop == length
    for a, b in itertools.pairwise(parts):
        assert a.stop == b.start and a.start <= a.stop
    for p, s in zip(parts, shares, strict=True):
        if s == 0:  # a client reduces nothing (unless it is the last and others are 0 too)
            assert p.stop - p.start == 0 or p is parts[-1]


def test_partition_refuses_nonsense() -> None:
    for bad in ([], [0, 0], [-1, 2], [float("nan")]):
        with pytest.raises(ValueError):
            partition(10, bad)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), size=st.integers(2, 8), dim=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 6))
def test_complete_rounds_preserve_the_weighted_mean(n: int, size: int, dim: int, seed: int,
                                                    rounds: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    w = rng.uniform(0.5, 3.0, size=n)
    total = (w[:, None] * x).sum(axis=0)
    coords = {i: tuple(int(c) for c in rng.integers(0, size, dim)) for i in range(n)}
    for r in range(rounds):
        for group in form_groups(coords, r, size):
            g = list(group)
            mean = reduce_slice([x[i] for i in g], [w[i] for i in g])
            for j, i in enumerate(g):
                x[i] = mean
                coords[i] = next_coords(coords[i], r, j, size)
    # weighted members all holding the group's weighted mean keep sum(w*x) unchanged
    np.testing.assert_allclose((w[:, None] * x).sum(axis=0), total, rtol=1e-9, atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12), dead=st.integers(0, 11))
def test_a_round_with_failures_yields_the_mean_of_those_that_completed(
        seed: int, n: int, dead: int) -> None:
    rng = random.Random(seed)
    members = [f"p{i}" for i in range(n)]
    gone = set(rng.sample(members, min(dead, n - 1)))
    slices = partition(100, [1.0] * n)
    arrived = [set(members) - gone for _ in slices]
    arrived[0].discard(next(iter(gone), ""))  # a member missing from one slice is dropped too
    ok, dropped = complete_members(members, arrived)
    assert set(ok) == set(members) - gone and set(dropped) == gone
    values = {m: np.full(100, float(i)) for i, m in enumerate(members)}
    out = np.concatenate([reduce_slice([values[m][s.start:s.stop] for m in ok],
                                       [1.0] * len(ok)) for s in slices])
    np.testing.assert_allclose(out, np.mean([values[m] for m in ok], axis=0))


def test_groups_are_disjoint_balanced_and_cover_every_peer() -> None:
    rng = random.Random(3)
    coords = {f"p{i}": (rng.randrange(4), rng.randrange(4)) for i in range(200)}
    groups = form_groups(coords, 0, 8)
    flat = [m for g in groups for m in g]
    assert sorted(flat) == sorted(coords) and len(flat) == len(set(flat))
    assert max(len(g) for g in groups) <= 8


def test_full_grid_is_exact_after_dims_rounds_and_failures_still_converge() -> None:
    values = np.random.default_rng(0).normal(size=(1024, 3))
    exact = simulate(values, dims=2, side=32, rounds=2, fail_prob=0.0, rng=random.Random(0),
                     placement="fill")
    assert exact[-1] < 1e-12
    failing = simulate(values, dims=2, side=32, rounds=10, fail_prob=0.004,
                       rng=random.Random(0), placement="fill")
    assert failing[-1] < 1e-4 and all(b <= a * 1.01 for a, b in itertools.pairwise(failing))


def test_random_regrouping_follows_the_expected_factor() -> None:
    values = np.random.default_rng(1).normal(size=(1024, 8))
    got = simulate(values, dims=2, side=32, rounds=1, fail_prob=0.0, rng=random.Random(1),
                   mode="random")
    expected = (32 - 1) / (1024 - 1)
    assert abs(got[0] ** 2 / expected - 1) < 0.25


def test_a_part_or_result_outside_the_rounds_bounds_is_named() -> None:
    import numpy as np

    from core.averaging.rounds import out_of_range, slice_bounds

    lo, hi = np.zeros(4, np.float32), np.array([1, 1, 1, 51], np.float32)
    assert out_of_range(np.array([0, 1, 0.5, 51], np.float32), (lo, hi)) == ""
    assert out_of_range(np.array([0, 1.0005, 0, 0], np.float32), (lo, hi)) == ""  # rounding
    why = out_of_range(np.array([0, 0, 1e6, 0], np.float32), (lo, hi))
    assert "1e+06 at 2" in why and "outside the round's range" in why
    assert "at 0" in out_of_range(np.array([-0.1, 0, 0, 0], np.float32), (lo, hi))
    assert out_of_range(np.array([9e9], np.float32), None) == ""
    sub = slice_bounds((lo, hi), [slice(3, 4), slice(0, 1)])
    assert sub is not None and sub[1].tolist() == [51, 1]


def test_a_reducer_that_alone_left_members_out_is_singled_out() -> None:
    from core.averaging.rounds import lone_excluders

    ids = ["a", "b", "c", "d", "m1", "m2"]  # a..d reduce; m1, m2 are clients
    honest = set(ids) - {"d"}
    # d (hostile) cut off b and c, then averaged what the clients sent it: alone, it would
    # leave b and c out of every member's set
    got = {"a": honest, "b": honest, "c": honest, "d": {"d", "m1", "m2"}}
    assert lone_excluders(got, ids, failed=[]) == ["d"]
    # a member the others could not reach is not kept in on the lone reducer's account
    got = {"a": set(ids) - {"m1"}, "b": set(ids), "c": set(ids)}
    assert lone_excluders(got, ids, failed=[]) == ["a"]  # m1 came late at a only
    assert lone_excluders({"a": set(ids) - {"d"}, "b": set(ids), "c": set(ids)}, ids,
                          failed=["d"]) == []  # d itself failed us: it may be gone
    # agreement (everyone left the same member out), too few results, or the one skipped
    same = set(ids) - {"m2"}
    assert lone_excluders({"a": same, "b": same, "c": same}, ids, failed=[]) == []
    assert lone_excluders({"a": {"a"}, "b": set(ids)}, ids, failed=[]) == []
    assert lone_excluders({"a": set(ids), "b": set(ids), "c": set(ids), "d": {"d"}}, ids,
                          failed=[], skip=["d"]) == []


def test_shares_follow_measured_bandwidth_and_a_boasting_member_is_capped() -> None:
    # DeDLOC-style: a member's share of the reduction follows its measured upload
    assert shares_of([10.0, 20.0, 40.0], [False, False, False]) == [10.0, 20.0, 40.0]
    # a client reduces nothing, and does not count towards the median
    assert shares_of([10.0, 1e9, 30.0], [False, True, False]) == [10.0, 0.0, 30.0]
    # one member claims a link a million times faster: held to 4x the median (20)
    assert shares_of([10.0, 20.0, 1e7], [False, False, False]) == [10.0, 20.0, 80.0]
    assert shares_of([0.0, 5.0], [False, False])[0] == 1e-3  # everyone reduces something
    assert shares_of([5.0, 5.0], [True, True]) == [0.0, 0.0]


def test_the_upload_rate_is_measured_from_large_transfers_only() -> None:
    r = UploadRate()
    assert not r.measured and r.mbps == UploadRate.DEFAULT  # says it is a default
    r.add(1000, 0.001)  # a small write times the latency, not the link
    assert not r.measured
    r.add(1_000_000, 0.1)  # 80 Mb/s
    assert r.measured and r.mbps == pytest.approx(80.0)
    r.add(1_000_000, 0.1, streams=4)  # one of four parts sharing the upload: 320 Mb/s
    assert r.mbps == pytest.approx(0.7 * 80 + 0.3 * 320)
    r.add(1_000_000, 0.0)  # no time: no sample
    assert r.samples == 2
    slow = UploadRate()
    slow.add(1_000_000, 1e6)
    assert slow.mbps == UploadRate.LOW  # held to its range
