"""Hostile villages over the simulated network (`bench.hostile`), one behaviour per test: each
shows that the attack fails and that the honest villages keep working while it runs. Under
MockClock, seeded: no sleeps, one seed one run."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing

from bench.hostile import MUST_REFUSE, attack_in_new_world

VILLAGES = 30
# behaviours that only answer (badly): once refused, they are not asked again
ANSWERS_ONLY = {"dht: garbage answers", "dht: inserted provider ids", "dht: forged records",
                "telemetry: inflated figures", "telemetry: lying reducer"}


def _attack(name: str, seed: int = 5) -> Any:
    return trio.run(functools.partial(attack_in_new_world, name, villages=VILLAGES, seed=seed,
                                      nat=0.3, watch=60, gets=40),
                    clock=trio.testing.MockClock(autojump_threshold=0))


@functools.cache
def _clean_accuracy() -> float:
    """Honest test accuracy after the same 20 digits steps in the same network, no attacker."""
    out, _ = _attack("")
    assert out.honest_avg_success is not None and out.honest_avg_success >= 0.95, out
    assert out.honest_accuracy is not None and out.honest_accuracy > 0.8, out  # it learns
    return float(out.honest_accuracy)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(MUST_REFUSE))
def test_a_village_that_breaks_a_protocol_is_refused_within_a_minute(name: str) -> None:
    out, counts = _attack(name)
    assert out.offended > 0, out  # it did reach honest villages
    assert out.refused_by == out.offended, out  # every one of them refused it...
    assert out.seconds_to_refuse is not None and out.seconds_to_refuse <= 60, out  # ...fast
    assert out.honest_get_success >= 0.99, out  # and the honest DHT kept working
    assert not out.succeeded
    assert counts.get("handler bugs", 0) == 0
    if name not in ANSWERS_ONLY:  # its streams are reset unread once refused
        assert counts.get("streams refused: refused", 0) + counts.get("dials refused", 0) \
            > 0, counts
    if name == "streams: held open":  # past the cap its streams were reset unread
        assert counts.get("streams refused: too many streams", 0) > 0, counts


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["averaging: unreachable leader", "averaging: silent leader",
                                  "averaging: duplicate parts", "averaging: wrong slices",
                                  "averaging: phantom members", "training: poisoned updates",
                                  "averaging: lying reducer in range",
                                  "averaging: framing member"])
def test_a_leader_that_cannot_be_reached_or_breaks_the_all_reduce_costs_at_most_one_round(
        name: str) -> None:
    """20 rounds whose keys rank the attacker first: an unreachable one costs one dial; a
    silent one (it takes the Joins and never answers) costs its first round, then is shunned;
    one that sends its parts twice, or to the wrong reducers, is dropped from its first
    group (the reducers it cut off are not left out on its word) and shunned by every reducer
    it offended, so no later round follows it; one that lists 5 made-up members with the
    largest shares costs each round a wait for their slices, which are then averaged again
    among the real members; one that sends its training update reversed and scaled 20 times
    is clipped by the project's rule. Throughout, the honest villages learn the digits as
    well as with no attacker (within 2 points)."""
    out, counts = _attack(name)
    assert out.honest_avg_success is not None and out.honest_avg_success >= 0.95, out
    assert out.honest_accuracy is not None and \
        out.honest_accuracy >= _clean_accuracy() - 0.02, (out, _clean_accuracy())
    if name in ("averaging: duplicate parts", "averaging: wrong slices"):
        assert out.offended > 0 and out.refused_by == out.offended, out
    assert not out.succeeded, out
    assert out.honest_get_success >= 0.99, out
    assert counts.get("handler bugs", 0) == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["dht: stream churn", "dht: slow answers",
                                  "dht: sybil providers"])
def test_what_cannot_be_told_from_honest_trouble_does_not_hurt_honest_lookups(
        name: str) -> None:
    """Streams reset at once, answers 14 s late, 40 re-announcing identities: none is an
    offence an honest village never commits, so none is refused - and honest lookups, and
    the honest providers of the flooded key, still all succeed."""
    out, counts = _attack(name)
    assert not out.succeeded, out
    assert out.honest_get_success >= 0.99, out
    assert counts.get("handler bugs", 0) == 0


@pytest.mark.timeout(300)
def test_a_village_that_lies_about_the_network_size_moves_no_count_far() -> None:
    """It says, within the round's bounds, that 16.7 million villages exist, in every telemetry
    round: nothing an honest village can tell from a true measurement, so no one refuses it -
    but every honest village holds the averaged count to what its own routing table measures,
    so the median count stays within 1.5x of the truth (2.3x without that hold, in this
    network; one village claiming to be the old counting "seed" halved every count)."""
    out, counts = _attack("telemetry: false count")
    assert not out.succeeded, out
    assert "(median)" in out.note and out.honest_get_success >= 0.99, out
    assert counts.get("handler bugs", 0) == 0
