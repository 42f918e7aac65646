"""Village health telemetry: the pure parts, and eight real villages counting themselves."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import trio

from core.snapshot import status_line
from core.telemetry import (
    FIELDS,
    SIZE,
    Aggregate,
    Health,
    Work,
    WorkMeter,
    estimate_count,
    grid_side,
    health_of,
    health_vector,
    held_to_own,
    privatize,
    round_key,
    settle,
    start_coords,
)
from tests.nodes import run_villages, trio_villages, trio_wait_for


def test_health_vector_is_bounded_and_versioned() -> None:
    h = Health(tier="consumer-gpu", cpu_util=2.0, contributing=True, reachability="relay-only",
               personas_active=40, median_latency_ms=50)
    v = health_vector(h, size=2.0**12)
    assert v.shape == (len(FIELDS),) and v.dtype == np.float32
    assert v.min() >= 0 and v.max() <= 1  # clipped: one village cannot swamp an average
    d = dict(zip(FIELDS, v.tolist(), strict=True))
    assert d["tier_consumer_gpu"] == 1 and d["tier_cpu"] == 0 and d["relay_only"] == 1
    assert d["cpu_util"] == 1 and d["personas_active"] == 1 and v[SIZE] == 0.5
    assert "/v2/" in round_key(3, "network", 0, (1, 2), 4)
    assert health_vector(h, size=2.0**30)[SIZE] == 1  # held to its range
    assert health_vector(h, size=0.0)[SIZE] == 0


def test_a_villages_work_is_what_it_measured_not_what_it_was_allowed() -> None:
    """CPU use is the node process's CPU time over the period (of all cores), and a village
    contributes only in a period where it finished compute or earned a receipt - being
    allowed to compute is not contributing."""
    meter = WorkMeter(cores=4)
    assert meter.read(100.0, cpu_seconds=50.0, progress=7, receipts=3) == Work(0.0, False)
    w = meter.read(160.0, cpu_seconds=74.0, progress=7, receipts=3)  # 24 s of 240 core-s
    assert w == Work(pytest.approx(0.1), False)
    assert meter.read(220.0, 74.0, progress=8, receipts=3).contributing
    assert meter.read(280.0, 74.0, progress=8, receipts=4) == Work(0.0, True)
    assert meter.read(280.0, 80.0, 8, 4) == Work(0.0, False)  # no time passed: nothing said
    assert meter.read(281.0, 200.0, 8, 4).cpu_util == 1.0  # held to the machine

    class Allowed:  # the governor lets it compute all it wants
        may_compute, duty_cycle, cpu_share = True, 1.0, 1.0

    h = health_of(tier="cpu", governor=Allowed(), reachability="direct", personas=(),
                  rtts=[0.02, 0.04], work=Work(0.0, False), gpu_util=0.0,
                  credits_per_hour=2.5)
    assert not h.contributing and h.cpu_util == 0.0 and h.allowance_in_use == 1.0
    assert h.credits_per_hour == 2.5 and h.median_latency_ms == pytest.approx(30.0)
    assert health_of(tier="cpu", governor=Allowed(), reachability="direct", personas=(),
                     rtts=[], work=Work(0.5, True), gpu_util=0.73,
                     credits_per_hour=0.0).gpu_util == 0.73


def test_a_real_villages_health_is_measured(tmp_path: Path) -> None:
    """One real village: its telemetry's health counts the CPU its process used over the
    period, and it is not contributing while it has done no work."""
    import time

    async def main() -> None:
        async with trio_villages(tmp_path, 1) as (node,):
            health = node.telemetry.health
            health()  # the first reading: the period starts
            until = time.process_time() + 0.3
            while time.process_time() < until:  # CPU time this process spends
                pass
            h = health()
            assert 0.0 < h.cpu_util <= 1.0
            assert not h.contributing and h.credits_per_hour == 0.0

    run_villages(main, timeout=60)


def test_privacy_noise_scales_with_epsilon_and_keeps_the_size() -> None:
    v = health_vector(Health(), size=64.0)
    assert np.array_equal(privatize(v, 0.0, random.Random(1)), v)
    spreads = []
    for eps in (0.5, 5.0):
        noisy = np.stack([privatize(v, eps, random.Random(i)) for i in range(400)])
        assert (noisy[:, SIZE] == v[SIZE]).all()
        spreads.append(float(noisy[:, 0].std()))
    assert spreads[0] > 5 * spreads[1]  # smaller epsilon: more noise


def test_count_estimate_and_grid() -> None:
    assert estimate_count(5 / 24) == pytest.approx(32) and estimate_count(0) == 0
    assert estimate_count(float(health_vector(Health(), size=300.0)[SIZE])) \
        == pytest.approx(300, rel=1e-5)
    assert grid_side(0) == 2 and grid_side(1000) == 32 and grid_side(64) == 8
    coords = {start_coords(f"p{i}", 7, 4) for i in range(200)}
    assert len(coords) == 16  # villages spread over the whole grid


def test_the_count_shown_stays_within_what_the_villages_own_table_measures() -> None:
    assert held_to_own(40.0, 36.0, 0.25) == (40.0, "")  # within 36 x / 1.25: as averaged
    shown, why = held_to_own(120.0, 36.0, 0.25)  # a liar pushed the average up
    assert shown == pytest.approx(45.0) and "outside what this village's own" in why
    assert held_to_own(10.0, 36.0, 0.25)[0] == pytest.approx(28.8)  # or down
    assert held_to_own(10.0, 8.0, 0.1)[0] == pytest.approx(8.8)  # a counted table: tight
    assert held_to_own(50.0, 0.0, 1.0) == (50.0, "")  # nothing measured here: as averaged


def test_the_average_of_the_size_field_gives_the_count_and_one_liar_moves_it_little() -> None:
    honest = [health_vector(Health(), size=n)[SIZE] for n in (45.0, 52.0, 60.0, 48.0)] * 25
    mean = float(np.mean(honest))
    assert estimate_count(mean) == pytest.approx(51, rel=0.05)
    lied = float(np.mean([*honest[:-1], 1.0]))  # one of 100 says 16.7 million villages
    assert estimate_count(lied) / estimate_count(mean) < 1.15


def test_a_period_that_met_no_one_keeps_the_last_good_count() -> None:
    good = Aggregate({"online": 1.0}, 32.0, 0.01, 8, 3, at=100.0)
    missed = Aggregate({"online": 1.0}, 0.0, 1.0, 1, 3, at=160.0)
    shown, error = settle(good, missed)
    assert shown is good and "met no other village" in error
    fresher = Aggregate({"online": 1.0}, 31.0, 0.03, 8, 3, at=220.0)
    assert settle(good, fresher) == (fresher, "")
    first, error = settle(None, missed)  # nothing better to show yet: say so
    assert first is missed and "has not met another" in error


@pytest.mark.xdist_group("heavy-network")  # never beside each other: see Makefile
@pytest.mark.timeout(300)
def test_eight_villages_count_themselves_and_report_health() -> None:
    async def main() -> None:
        home = Path(tempfile.mkdtemp())
        async with trio_villages(home, 8, telemetry_period_s=10) as nodes:
            def counted() -> bool:  # what the gardener reads: "about 8 villages"
                return all(n.telemetry.state.network is not None
                           and round(n.telemetry.state.network.villages) == 8
                           and n.telemetry.state.network.members_last_round >= 2
                           for n in nodes)

            def seen() -> str:  # for a failure: each village's count, round and table
                def one(n: object) -> str:
                    agg = n.telemetry.state.network  # type: ignore[attr-defined]
                    table = len(n.dht.table or ())  # type: ignore[attr-defined]
                    return (f"{agg.villages:.2f} from {agg.members_last_round} (table {table})"
                            if agg else f"none (table {table})")
                return "; ".join(one(n) for n in nodes)

            # ~2 rounds of 10 s when the machine is free; a loaded 2-core runner needs more
            try:
                await trio_wait_for(counted, 200, "every village to estimate 8 villages, "
                                    "averaged with others")
            except AssertionError as e:
                raise AssertionError(f"{e}: {seen()}") from None
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


@pytest.mark.timeout(260)
def test_a_count_is_held_to_the_table_at_the_end_of_the_period_not_its_start() -> None:
    """Two villages begin a telemetry period knowing only each other; a third joins early in
    the period (its own telemetry starts with the next one). The first two average sizes of
    2, but by the end of the period their tables hold 3: the count they show is 3 (it was
    held at 2, the table's size when the period began: the demo's "1 villages" while three
    were up, for a whole period after the start). A busy machine can keep the two from
    meeting in that period: then the scene is played again, at most five times (three in a
    row were seen to miss in a full run on two workers)."""
    period = 10

    async def scene(home: Path) -> tuple[float, float] | None:
        """(count, uncertainty) the first village showed for that period, or None when the
        two did not average together in it."""
        now = time.time()
        await trio.sleep((int(now // period) + 1) * period - now + 2)  # 8 s before the next
        async with trio_villages(home, 2, prefix="early", telemetry_period_s=period) as early:
            boundary = (int(time.time() // period) + 1) * period
            await trio.sleep(boundary - time.time() + 0.3)
            first = early[0]
            assert first.dht.table is not None and first.dht.table.size_measure()[0] == 2
            assert first.host is not None
            async with trio_villages(home, 1, prefix="late", telemetry_period_s=period,
                                     bootstrap=(first.host.listen_addrs()[0],)):
                with trio.move_on_after(period + 15):
                    while True:
                        agg = first.telemetry.state.network
                        if agg is not None and agg.at >= boundary:
                            break
                        await trio.sleep(0.2)
                agg = first.telemetry.state.network
                if agg is None or not boundary <= agg.at < boundary + period \
                        or agg.members_last_round < 2 or not agg.villages:
                    return None
                return agg.villages, agg.uncertainty

    async def main() -> None:
        for _attempt in range(5):
            seen = await scene(Path(tempfile.mkdtemp()))
            if seen is not None:
                assert round(seen[0]) == 3, seen
                return
        raise AssertionError("the two early villages never averaged together in 5 periods")

    run_villages(main, timeout=250)
