"""Service levels, stake and challenges (core/ledger/levels.py): the pure rules, and their
simulation over a swarm with cheaters (bench.challenge) meeting the levels' goals."""

from __future__ import annotations

import argparse

import pytest

from bench.challenge import simulate
from core.ledger.levels import (
    CHALLENGER_SHARE,
    FALSE_CHALLENGE_FEE,
    MIN_STAKE,
    SLASH_SHARE,
    Reputation,
    check_rate,
    may_serve,
    referee,
    settle_challenge,
)


def test_check_rates_fall_as_a_server_proves_itself_and_stay_high_for_the_caught() -> None:
    for level in ("basic", "checked"):
        rates = [check_rate(Reputation(passed=max(1, h // 10), hops=h), level)
                 for h in range(0, 1000, 25)]
        assert rates == sorted(rates, reverse=True) and rates[0] > 0.4 and rates[-1] < 0.05
        assert check_rate(Reputation(hops=900), level) == rates[0]  # never checked: new
        assert check_rate(Reputation(passed=5, failed=1, hops=900), level) == 1.0
    assert check_rate(Reputation(), "assured") == 0.0  # two servers check each other


def test_stake_admits_and_a_challenge_moves_credit_both_ways() -> None:
    assert may_serve(Reputation(), "basic") and not may_serve(Reputation(), "checked")
    assert may_serve(Reputation(stake=MIN_STAKE["checked"]), "checked")
    assert not may_serve(Reputation(stake=100, failed=1), "basic")  # caught: banned
    upheld = settle_challenge("server", "challenger", 20.0, upheld=True)
    assert dict(upheld.moves) == {"server": -20.0 * SLASH_SHARE,
                                  "challenger": 20.0 * SLASH_SHARE * CHALLENGER_SHARE}
    rejected = settle_challenge("server", "challenger", 20.0, upheld=False)
    assert dict(rejected.moves) == {"challenger": -FALSE_CHALLENGE_FEE,
                                    "server": FALSE_CHALLENGE_FEE}


def test_the_referee_is_chosen_by_the_work_never_a_party() -> None:
    villages = [f"v{i}" for i in range(20)]
    picks = {referee(f"work-{k}".encode(), villages, ("v1", "v2")) for k in range(200)}
    assert "v1" not in picks and "v2" not in picks and len(picks) > 5
    assert referee(b"w", villages, ()) == referee(b"w", list(reversed(villages)), ())
    assert referee(b"w", ["a", "b"], ("a", "b")) is None


@pytest.mark.parametrize("seed", [1, 2])
def test_the_levels_meet_their_goals_against_ten_percent_cheaters(seed: int) -> None:
    """50 servers, 5 wrong on 5 % of their hops, 100,000 hops per level (bench.challenge's
    defaults: 2,000 per server, so newcomers' heavy checking is paid off): assured delivers
    nothing wrong at 2x the work, checked at most 0.1 % wrong for at most 10 % more work,
    basic catches every cheater within its first 100 hops; nobody honest is slashed
    (recomputation is exact in the simulation)."""
    args = argparse.Namespace(servers=50, cheaters=0.1, cheat_prob=0.05, hops=100_000,
                              clusters=4, rate=2.0, seed=seed)
    basic, checked, assured = (simulate(lv, args) for lv in ("basic", "checked", "assured"))
    assert assured["wrong_delivered_fraction"] == 0 and assured["cost_ratio"] <= 2.1
    assert checked["wrong_delivered_fraction"] <= 0.001 and checked["overhead"] <= 0.10
    assert basic["detected_within_100_hops"] == basic["cheaters"] == 5
    for level in (basic, checked, assured):
        assert level["honest_slashed"] == 0 and level["cheaters_detected"] == 5
