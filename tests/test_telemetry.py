"""Village health telemetry: the pure parts, and eight real villages counting themselves."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import pytest

from core.snapshot import status_line
from core.telemetry import (
    FIELDS,
    SEED,
    Aggregate,
    Health,
    estimate_count,
    grid_side,
    health_vector,
    privatize,
    round_key,
    settle,
    start_coords,
)
from tests.nodes import run_villages, trio_villages, trio_wait_for


def test_health_vector_is_bounded_and_versioned() -> None:
    h = Health(tier="consumer-gpu", cpu_util=2.0, contributing=True, reachability="relay-only",
               personas_active=40, median_latency_ms=50)
    v = health_vector(h, seed=True)
    assert v.shape == (len(FIELDS),) and v.dtype == np.float32
    assert v.min() >= 0 and v.max() <= 1  # clipped: one village cannot swamp an average
    d = dict(zip(FIELDS, v.tolist(), strict=True))
    assert d["tier_consumer_gpu"] == 1 and d["tier_cpu"] == 0 and d["relay_only"] == 1
    assert d["cpu_util"] == 1 and d["personas_active"] == 1 and v[SEED] == 1
    assert "/v1/" in round_key(3, "network", 0, (1, 2), 4)


def test_privacy_noise_scales_with_epsilon_and_keeps_the_seed() -> None:
    v = health_vector(Health(), seed=True)
    assert np.array_equal(privatize(v, 0.0, random.Random(1)), v)
    spreads = []
    for eps in (0.5, 5.0):
        noisy = np.stack([privatize(v, eps, random.Random(i)) for i in range(400)])
        assert (noisy[:, SEED] == 1).all()
        spreads.append(float(noisy[:, 0].std()))
    assert spreads[0] > 5 * spreads[1]  # smaller epsilon: more noise


def test_count_estimate_and_grid() -> None:
    assert estimate_count(1 / 32) == 32 and estimate_count(0) == 0
    assert grid_side(0) == 2 and grid_side(1000) == 32 and grid_side(64) == 8
    coords = {start_coords(f"p{i}", 7, 4) for i in range(200)}
    assert len(coords) == 16  # villages spread over the whole grid


def test_a_period_that_missed_the_counting_village_keeps_the_last_good_count() -> None:
    good = Aggregate({"online": 1.0}, 32.0, 0.01, 8, 3, at=100.0)
    missed = Aggregate({"online": 1.0}, 0.0, 1.0, 2, 3, at=160.0)
    shown, error = settle(good, missed)
    assert shown is good and "did not reach the counting village (2 in the last group)" in error
    fresher = Aggregate({"online": 1.0}, 31.0, 0.03, 8, 3, at=220.0)
    assert settle(good, fresher) == (fresher, "")
    first, error = settle(None, missed)  # nothing better to show yet: say so
    assert first is missed and "has not reached" in error


@pytest.mark.timeout(300)
def test_eight_villages_count_themselves_and_report_health() -> None:
    async def main() -> None:
        home = Path(tempfile.mkdtemp())
        async with trio_villages(home, 8, telemetry_period_s=10) as nodes:
            def counted() -> bool:
                return all(n.telemetry.state.network is not None
                           and abs(n.telemetry.state.network.villages - 8) < 0.4
                           for n in nodes)

            # ~2 rounds of 10 s when the machine is free; a loaded 2-core runner needs more
            await trio_wait_for(counted, 200, "every village to estimate 8 villages")
            for n in nodes:
                agg = n.telemetry.state.network
                assert agg is not None
                assert abs(agg.means["online"] - 1.0) < 1e-5
                assert abs(agg.means["tier_cpu"] - 1.0) < 1e-5  # no GPU here
                assert agg.rounds >= 2 and agg.members_last_round >= 2
            snap = nodes[0].snapshot()
            assert snap.telemetry.network is not None
            assert "network ~8 villages" in status_line(snap)

    run_villages(main, timeout=240)
