"""The governor's decisions as pure functions, with an injected clock."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SettingsError
from core.governor import GovernorMemory, Readings, decide, threads_and_duty
from core.ratelimit import TokenBucket
from core.settings_schema import Settings

NOW = 1_800_000_000.0
WED_NOON = Readings(now=NOW, weekday=2, minute_of_day=12 * 60, cores=8)


def run(limits: Settings = Settings(), r: Readings = WED_NOON, *, participating: bool = True,
        paused_until: float | None = None, memory: GovernorMemory = GovernorMemory()):
    return decide(limits, r, memory, participating=participating, paused_until=paused_until)


def test_runs_when_nothing_says_no() -> None:
    d, _ = run()
    assert d.may_compute and d.rule == "" and d.reason == ""


def test_participation_off_comes_first() -> None:
    d, _ = run(participating=False, paused_until=NOW + 60)
    assert not d.may_compute and d.rule == "participation"


def test_pause_until() -> None:
    d, _ = run(paused_until=NOW + 3600)
    assert not d.may_compute and d.rule == "pause" and "paused until" in d.reason
    assert run(paused_until=NOW - 1)[0].may_compute  # a pause that has ended


def test_battery_rules() -> None:
    on_battery = replace(WED_NOON, on_battery=True, battery_percent=38.0)
    d, _ = run(r=on_battery)
    assert d.rule == "battery" and d.reason == "paused: on battery (38%)"
    resume_above_30 = Settings().with_changes(battery_resume_percent=30)
    assert run(resume_above_30, on_battery)[0].may_compute
    resume_above_50 = Settings().with_changes(battery_resume_percent=50)
    assert run(resume_above_50, on_battery)[0].rule == "battery"
    assert run(Settings().with_changes(pause_on_battery=False), on_battery)[0].may_compute
    assert run(r=replace(on_battery, on_battery=False))[0].may_compute  # plugged in
    assert run(r=replace(WED_NOON, on_battery=None))[0].may_compute  # no battery at all


@pytest.mark.parametrize(("weekday", "minute", "allowed"), [
    (2, 12 * 60, False),  # Wednesday noon
    (2, 19 * 60, True),  # Wednesday evening
    (3, 7 * 60, True),  # Thursday early morning: Wednesday's window runs past midnight
    (5, 7 * 60 + 59, True),  # Saturday 07:59: Friday's window
    (5, 8 * 60, False),
    (6, 23 * 60, True),  # Sunday night: the week-end window wraps into Monday
    (0, 1 * 60, True),
    (0, 9 * 60, False),
])
def test_schedule_across_midnight_and_week_end(weekday: int, minute: int,
                                               allowed: bool) -> None:
    limits = Settings().with_changes(schedule="mon-fri 18:00-08:00; sun 22:00-02:00")
    d, _ = run(limits, replace(WED_NOON, weekday=weekday, minute_of_day=minute))
    assert d.may_compute is allowed
    if not allowed:
        assert d.reason == "paused: outside your schedule"


def test_idle_only() -> None:
    limits = Settings().with_changes(idle_only=True, idle_minutes=5)
    unknown = replace(WED_NOON, idle_seconds=None, idle_unavailable_reason="Wayland")
    d, _ = run(limits, unknown)
    assert d.rule == "idle" and "cannot tell" in d.reason and "Wayland" in d.reason
    assert run(limits, replace(WED_NOON, idle_seconds=120))[0].rule == "idle"
    assert run(limits, replace(WED_NOON, idle_seconds=301))[0].may_compute
    assert run(limits, replace(WED_NOON, idle_seconds=0.5))[0].reason == \
        "paused: the computer is in use (idle-only)"


def test_pause_while_a_chosen_program_runs() -> None:
    limits = Settings().with_changes(pause_for_programs=("Steam", "zoom.exe"))
    d, _ = run(limits, replace(WED_NOON, programs=frozenset({"bash", "steam"})))
    assert d.rule == "program" and d.reason == "paused: Steam is running"
    # Windows names end in .exe whether or not the gardener typed it
    assert run(limits, replace(WED_NOON, programs=frozenset({"zoom"})))[0].rule == "program"
    assert run(Settings().with_changes(pause_for_programs=("zoom",)),
               replace(WED_NOON, programs=frozenset({"zoom.exe"})))[0].rule == "program"
    assert run(limits, replace(WED_NOON, programs=frozenset({"bash"})))[0].may_compute
    unknown = run(limits, replace(WED_NOON, programs=None,
                                  programs_unavailable_reason="no /proc"))[0]
    assert unknown.may_compute and any("no /proc" in n for n in unknown.notes)
    assert run(Settings(), replace(WED_NOON, programs=frozenset({"steam"})))[0].may_compute


def test_pause_on_a_metered_network() -> None:
    limits = Settings().with_changes(pause_on_metered=True)
    d, _ = run(limits, replace(WED_NOON, metered=True))
    assert d.rule == "metered" and d.reason == "paused: the network connection is metered"
    assert run(limits, replace(WED_NOON, metered=False))[0].may_compute
    unknown = run(limits, replace(WED_NOON, metered=None,
                                  metered_unavailable_reason="NetworkManager is not running"))[0]
    assert unknown.may_compute  # said, not guessed
    assert any("cannot tell" in n and "NetworkManager" in n for n in unknown.notes)
    assert run(Settings(), replace(WED_NOON, metered=True))[0].may_compute


def test_pause_while_a_program_is_full_screen() -> None:
    limits = Settings().with_changes(pause_when_fullscreen=True)
    d, _ = run(limits, replace(WED_NOON, fullscreen=True))
    assert d.rule == "fullscreen" and d.reason == "paused: a program is full screen"
    assert run(limits, replace(WED_NOON, fullscreen=False))[0].may_compute
    unknown = run(limits, replace(WED_NOON, fullscreen=None, fullscreen_unavailable_reason=(
        "Wayland does not let one program see another's windows")))[0]
    assert unknown.may_compute  # said, not guessed
    assert any("cannot tell" in n and "Wayland" in n for n in unknown.notes)
    assert run(Settings(), replace(WED_NOON, fullscreen=True))[0].may_compute  # off: no rule


@pytest.mark.parametrize("bad", [("a/b",), ("x" * 65,), tuple(f"p{i}" for i in range(33)),
                                 ("",)])
def test_program_names_are_bounded(bad: tuple[str, ...]) -> None:
    from core.settings_schema import validate

    settings, problems = validate({"pause_for_programs": bad})
    assert problems and settings.pause_for_programs == ()


def test_the_governor_pauses_for_a_program_full_screen_and_metered_through_the_seam(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The governor's own loop, the platform faked at core.platform_state: a chosen program
    starts, compute stops within a few ticks with the reason; it quits, compute resumes; the
    same for a program going full screen and for a metered connection."""
    import random

    import trio

    from core import governor_service as gs
    from core import platform_state
    from core.ports import ServiceContext, SystemClock
    from core.settings_service import FixedSettings

    running = {"bash"}
    full = [False]
    monkeypatch.setattr(platform_state, "running_programs",
                        lambda: (frozenset(running), ""))
    metered = [False]
    monkeypatch.setattr(platform_state, "fullscreen", lambda: (full[0], ""))
    monkeypatch.setattr(platform_state, "metered", lambda: (metered[0], ""))
    monkeypatch.setattr(gs, "PROGRAMS_EVERY", 0.2)
    monkeypatch.setattr(gs, "FULLSCREEN_EVERY", 0.2)
    monkeypatch.setattr(gs, "METERED_EVERY", 0.2)
    settings = Settings(participate=True, pause_for_programs=("steam",),
                        pause_when_fullscreen=True, pause_on_metered=True)
    ctx = ServiceContext("me", lambda b: b, tmp_path, random.Random(0), SystemClock(),  # type: ignore[arg-type]
                         FixedSettings(settings), lambda p, r: None, None)
    governor = gs.GovernorService(ctx)

    async def main() -> None:
        async def until(want: bool) -> None:
            with trio.fail_after(10):
                while governor.decision.may_compute is not want:
                    await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(governor._decide_loop)
            await until(True)
            running.add("steam")
            await until(False)
            assert governor.decision.reason == "paused: steam is running"
            running.discard("steam")
            await until(True)
            full[0] = True  # a film goes full screen, then leaves it
            await until(False)
            assert governor.decision.reason == "paused: a program is full screen"
            full[0] = False
            await until(True)
            metered[0] = True  # the laptop joins a phone's hotspot, then leaves it
            await until(False)
            assert governor.decision.reason == "paused: the network connection is metered"
            metered[0] = False
            await until(True)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_gpu_temperature_hysteresis() -> None:
    limits = Settings().with_changes(gpu_temp_limit_c=80, gpu_temp_hysteresis_c=5)
    base = replace(WED_NOON, gpu_vram_total={0: 8 * 1024**3, 1: 8 * 1024**3})
    memory = GovernorMemory()
    seen = []
    for t0 in (70, 81, 78, 76, 75, 79, 81):
        d, memory = run(limits, replace(base, gpu_temps={0: t0, 1: 60}), memory=memory)
        seen.append(0 in d.gpus)
        assert 1 in d.gpus and d.may_compute  # CPU work and the cool GPU go on
    assert seen == [True, False, False, False, True, True, False]
    hot, _ = run(limits, replace(base, gpu_temps={0: 90, 1: 60}))
    assert any("GPU 0 is cooling down (90 °C" in n for n in hot.notes)


def test_vram_fraction_and_bandwidth() -> None:
    limits = Settings().with_changes(vram_cap_mb=4096, upload_kbps=100, download_kbps=0)
    d, _ = run(limits, replace(WED_NOON, gpu_vram_total={0: 8 * 1024**3}))
    assert d.vram_fraction == {0: 0.5}
    assert d.upload_bps == 100_000 and d.download_bps is None
    assert run(limits.with_changes(use_gpu=False),
               replace(WED_NOON, gpu_vram_total={0: 8 * 1024**3}))[0].gpus == ()


def test_bandwidth_schedule_swaps_the_caps_in_its_hours_and_lan_is_exempt_by_default() -> None:
    limits = Settings().with_changes(upload_kbps=500, download_kbps=0,
                                     bandwidth_schedule="mon-fri 09:00-18:00",
                                     scheduled_upload_kbps=50, scheduled_download_kbps=200)
    office = run(limits)[0]  # Wednesday noon: the scheduled caps
    assert (office.upload_bps, office.download_bps) == (50_000, 200_000)
    assert office.may_compute and any("bandwidth schedule" in n for n in office.notes)
    evening = run(limits, replace(WED_NOON, minute_of_day=20 * 60))[0]
    assert (evening.upload_bps, evening.download_bps) == (500_000, None)
    assert not any("bandwidth schedule" in n for n in evening.notes)
    weekend = run(limits, replace(WED_NOON, weekday=5))[0]
    assert weekend.upload_bps == 500_000
    assert not office.limit_lan and run(limits.with_changes(limit_lan=True))[0].limit_lan
    with pytest.raises(SettingsError):
        limits.with_changes(bandwidth_schedule="someday 25:00")


@pytest.mark.parametrize(("share", "cores", "max_threads", "threads", "duty"), [
    (25, 2, 0, 1, 0.5), (50, 2, 0, 1, 1.0), (75, 2, 0, 2, 0.75), (100, 2, 0, 2, 1.0),
    (5, 16, 0, 1, 0.8), (50, 16, 4, 4, 1.0), (30, 1, 0, 1, 0.3),
])
def test_threads_and_duty(share: int, cores: int, max_threads: int, threads: int,
                          duty: float) -> None:
    assert threads_and_duty(share, cores, max_threads) == (threads, pytest.approx(duty))


@given(st.integers(5, 100), st.integers(1, 256))
def test_threads_times_duty_is_the_share(share: int, cores: int) -> None:
    t, d = threads_and_duty(share, cores, 0)
    assert 1 <= t <= cores and 0 < d <= 1
    assert t * d / cores == pytest.approx(share / 100)


def test_token_bucket() -> None:
    b = TokenBucket(rate=1000, burst=500, now=0.0)
    assert b.take(500, 0.0) == 0  # the burst
    assert b.take(1000, 0.0) == pytest.approx(1.0)  # then the rate
    assert b.take(100, 2.0) == 0  # refilled meanwhile
    b.set_rate(None, 2.0)
    assert b.take(10**9, 2.0) == 0


def test_the_gardeners_presence_is_measured_input_or_not_measured(tmp_path: Path) -> None:
    """Present: keyboard or mouse within PRESENCE_IDLE s; away after; None (not measured)
    where the desktop cannot say - never the participation switch."""
    import random

    from core import governor_service as gs
    from core.ports import ServiceContext, SystemClock
    from core.settings_schema import Settings
    from core.settings_service import FixedSettings

    ctx = ServiceContext("me", lambda b: b, tmp_path, random.Random(0), SystemClock(),  # type: ignore[arg-type]
                         FixedSettings(Settings(participate=True)), lambda p, r: None, None)
    governor = gs.GovernorService(ctx)
    assert governor.presence() is None  # nothing read yet
    governor.idle = (12.0, "")
    assert governor.presence() is True
    governor.idle = (gs.PRESENCE_IDLE + 1, "")
    assert governor.presence() is False
    governor.idle = (None, "no X11 display")
    assert governor.presence() is None


def test_the_platform_readings_say_what_they_see_or_why_not() -> None:
    from core import platform_state

    names, why = platform_state.running_programs()
    assert names is not None and not why
    assert any(n.startswith("python") for n in names)  # this test's own process
    value, why = platform_state.metered()  # here: no NetworkManager, so it says why
    assert (value is None) == bool(why)


def test_the_node_threads_own_compute_comes_out_of_the_workers_share() -> None:
    """Reductions and packing on the node's thread are counted (NodeCompute) and the gate's
    workers give up as much: the share of the machine covers both."""
    from core.compute import CHARGE_WINDOW, MIN_DUTY, ComputeGate, NodeCompute

    node = NodeCompute()
    d, _ = run(Settings().with_changes(cpu_share=50), replace(WED_NOON, cores=2))
    assert (d.threads, d.duty_cycle) == (1, 1.0)
    gate = ComputeGate(d, node)
    t = 1000.0
    assert gate.worker_duty(now=t) == 1.0
    node.add(1.5, now=t)  # 1.5 CPU-seconds in the 5 s window: 0.3 of a core
    assert gate.worker_duty(now=t) == pytest.approx(0.7)
    node.add(20.0, now=t)  # more than the share: the workers nearly stop
    assert gate.worker_duty(now=t) == MIN_DUTY
    assert gate.worker_duty(now=t + CHARGE_WINDOW + 0.1) == 1.0  # spent long ago
    two, _ = run(Settings().with_changes(cpu_share=75), replace(WED_NOON, cores=4))
    node.add(1.5, now=t + 100)  # shared by every worker: 0.3 cores over 3 threads
    assert ComputeGate(two, node).worker_duty(now=t + 100) == pytest.approx(
        two.duty_cycle - 0.3 / two.threads)
    before = node.total
    with node.counted():  # the calling thread's own CPU time
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
    assert node.total - before >= 0.05
