"""The governor's decisions: may network compute run now, how much, and if not, why not.

Pure: takes the limits, sensor readings (with the time in them) and the little memory it
needs for hysteresis; returns a `Decision` and the new memory. No clocks, no threads, no I/O —
`core.governor_service` reads the sensors and `core.compute` enforces the decision.

Order of the rules (the first that says no names the reason): participation, a pause the
gardener asked for, battery, schedule, idle-only, programs, a full-screen program, a metered
connection. GPU temperature takes hot GPUs out of use (with hysteresis) without stopping CPU
work. The bandwidth caps come from the settings, or from the scheduled caps during the
bandwidth schedule's hours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.schedule import parse_schedule
from core.settings_schema import Settings


@dataclass(frozen=True)
class Readings:
    now: float  # wall-clock seconds
    weekday: int  # local, 0 = Monday
    minute_of_day: int  # local, 0..1439
    cores: int  # logical cores
    on_battery: bool | None = None  # None: no battery
    battery_percent: float | None = None
    idle_seconds: float | None = None  # None: this system cannot tell
    idle_unavailable_reason: str = ""
    gpu_temps: Mapping[int, float] = field(default_factory=dict)
    gpu_vram_total: Mapping[int, int] = field(default_factory=dict)  # usable GPUs only
    programs: frozenset[str] | None = None  # running program names, lower case; None: unknown
    programs_unavailable_reason: str = ""
    metered: bool | None = None  # the connection is metered; None: this system cannot tell
    metered_unavailable_reason: str = ""
    fullscreen: bool | None = None  # a program fills the screen; None: this system cannot tell
    fullscreen_unavailable_reason: str = ""


@dataclass(frozen=True)
class GovernorMemory:
    hot_gpus: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decision:
    may_compute: bool
    rule: str  # "" when it may; else participation|pause|battery|schedule|idle|program|
    # fullscreen|metered
    reason: str  # plain words: "paused: on battery (38%)"
    threads: int
    duty_cycle: float  # of each thread, 0..1
    cpu_share: float  # target share of the whole machine, 0..1
    gpus: tuple[int, ...]  # GPUs work may use now
    vram_fraction: Mapping[int, float]
    upload_bps: int | None
    download_bps: int | None
    ram_cap_bytes: int
    limit_lan: bool = False  # the caps apply to local-network traffic too
    notes: tuple[str, ...] = ()  # things to tell the gardener that do not stop compute


def _program_runs(name: str, running: frozenset[str]) -> bool:
    """`name` as the gardener typed it (any case, with or without .exe) is running."""
    n = name.strip().lower()
    return bool(n) and (n in running or f"{n}.exe" in running
                        or (n.endswith(".exe") and n[:-4] in running))


def threads_and_duty(cpu_share_pct: int, cores: int, max_threads: int) -> tuple[int, float]:
    """T threads at duty d so that T·d/cores = share; T ≤ cores, T ≤ max_threads (if set)."""
    cores = max(1, cores)
    want = cpu_share_pct / 100 * cores
    threads = max(1, min(cores, math.ceil(want - 1e-9)))
    if max_threads:
        threads = min(threads, max_threads)
    return threads, min(1.0, want / threads)


def _because(text: str, why: str) -> str:
    """`text`, with why in brackets when there is a why."""
    return f"{text} ({why})" if why else text


def _kbps(kbps: int) -> str:
    return f"{kbps} kB/s" if kbps else "no cap"


def _hhmm(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def decide(limits: Settings, r: Readings, memory: GovernorMemory, *, participating: bool,
           paused_until: float | None) -> tuple[Decision, GovernorMemory]:
    threads, duty = threads_and_duty(limits.cpu_share, r.cores, limits.max_threads)
    notes: list[str] = []

    # GPU temperature, with hysteresis: hot above the limit, cool again below limit - band.
    hot = set(memory.hot_gpus)
    for idx, temp in r.gpu_temps.items():
        if temp > limits.gpu_temp_limit_c:
            hot.add(idx)
        elif temp <= limits.gpu_temp_limit_c - limits.gpu_temp_hysteresis_c:
            hot.discard(idx)
    hot &= set(r.gpu_temps)
    for idx in sorted(hot):
        notes.append(f"GPU {idx} is cooling down ({r.gpu_temps[idx]:.0f} °C; resumes at "
                     f"{limits.gpu_temp_limit_c - limits.gpu_temp_hysteresis_c} °C)")
    gpus = tuple(sorted(i for i in r.gpu_vram_total if i not in hot)) if limits.use_gpu else ()
    cap = limits.vram_cap_mb * 1024**2
    vram = {i: (1.0 if cap == 0 else min(1.0, cap / r.gpu_vram_total[i])) for i in gpus}

    rule, reason = "", ""
    if not participating:
        rule, reason = "participation", "off: participation is switched off"
    elif paused_until is not None and paused_until > r.now:
        rule, reason = "pause", f"paused until {_hhmm(paused_until)} (you asked)"
    elif limits.pause_on_battery and r.on_battery:
        pct = r.battery_percent
        resume = limits.battery_resume_percent
        if not (resume and pct is not None and pct > resume):
            rule = "battery"
            reason = f"paused: on battery ({pct:.0f}%)" if pct is not None else \
                "paused: on battery"
    if not rule and limits.schedule:
        try:
            allowed = parse_schedule(limits.schedule).allows(r.weekday, r.minute_of_day)
        except ValueError:
            allowed = True  # validated on entry; an old file cannot stop the node
            notes.append("the schedule could not be read; it is ignored")
        if not allowed:
            rule, reason = "schedule", "paused: outside your schedule"
    if not rule and limits.idle_only:
        if r.idle_seconds is None:
            rule = "idle"
            reason = _because("paused: idle-only is on, but this system cannot tell when it "
                              "is idle", r.idle_unavailable_reason)
        elif r.idle_seconds < limits.idle_minutes * 60:
            rule, reason = "idle", "paused: the computer is in use (idle-only)"
    if not rule and limits.pause_for_programs:
        if r.programs is None:
            notes.append(_because("pausing for programs is on, but this system cannot list "
                                  "them", r.programs_unavailable_reason))
        else:
            running = [p for p in limits.pause_for_programs if _program_runs(p, r.programs)]
            if running:
                rule, reason = "program", f"paused: {running[0]} is running"
    # the yes/no rules read from the desktop: (on, reading, why not read, the rule, what)
    for on, seen, why, name, what in (
            (limits.pause_when_fullscreen, r.fullscreen, r.fullscreen_unavailable_reason,
             "fullscreen", ("pausing while a program is full screen", "a program is full screen")),
            (limits.pause_on_metered, r.metered, r.metered_unavailable_reason, "metered",
             ("pausing on a metered network", "the network connection is metered"))):
        if rule or not on:
            continue
        if seen is None:
            notes.append(_because(f"{what[0]} is on, but this system cannot tell", why))
        elif seen:
            rule, reason = name, f"paused: {what[1]}"

    kbps = limits.upload_kbps, limits.download_kbps
    if limits.bandwidth_schedule:
        try:
            scheduled = parse_schedule(limits.bandwidth_schedule).allows(r.weekday,
                                                                         r.minute_of_day)
        except ValueError:
            scheduled = False
            notes.append("the bandwidth schedule could not be read; it is ignored")
        if scheduled:
            kbps = limits.scheduled_upload_kbps, limits.scheduled_download_kbps
            notes.append("the bandwidth schedule's caps apply now: "
                         f"{_kbps(kbps[0])} up, {_kbps(kbps[1])} down")
    decision = Decision(
        may_compute=not rule, rule=rule, reason=reason, threads=threads, duty_cycle=duty,
        cpu_share=limits.cpu_share / 100, gpus=gpus, vram_fraction=vram,
        upload_bps=kbps[0] * 1000 or None, download_bps=kbps[1] * 1000 or None,
        ram_cap_bytes=limits.ram_cap_mb * 1024**2, limit_lan=limits.limit_lan,
        notes=tuple(notes))
    return decision, GovernorMemory(frozenset(hot))
