"""How the benchmarks sum up repeated runs: the median of every number (a goal is held at the
median, never at the best run), with min/median/max of those that varied."""

from __future__ import annotations

import pytest

from bench import over_repeats, spread


def test_numbers_are_the_median_and_their_spread_is_kept() -> None:
    runs = [{"rate": 5852.0, "misses": 0, "ok": True, "name": "a", "p95": None},
            {"rate": 3398.0, "misses": 3, "ok": False, "name": "b", "p95": None},
            {"rate": 5918.0, "misses": 1, "ok": True, "name": "c", "p95": None}]
    out = over_repeats(runs)
    assert out["rate"] == 5852.0 and out["misses"] == 1
    assert out["spread"]["rate"] == {"min": 3398.0, "median": 5852.0, "max": 5918.0}
    assert out["repeats"] == 3
    assert out["ok"] is True and out["name"] == "a" and out["p95"] is None  # the first run's
    assert "ok" not in out["spread"]


def test_one_run_is_itself_and_nothing_varied() -> None:
    out = over_repeats([{"seconds": 1.25, "count": 4}])
    assert out == {"seconds": 1.25, "count": 4, "repeats": 1, "spread": {}}


def test_spread_needs_a_measurement() -> None:
    assert spread([2.0, 1.0, 3.0, 10.0]) == {"min": 1.0, "median": 2.5, "max": 10.0}
    with pytest.raises(ValueError):
        spread([])
