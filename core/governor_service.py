"""The governor service: reads the sensors, asks `core.governor.decide`, sets the gate.

Service layer (trio, node thread). Sensor reads that may block (NVML, X11) run in a worker
thread. The decision is re-taken every second, and at once when poked (a pause, a settings
change), so a pause reaches the workers in well under a second. It also owns the pause file
(`<data>/pause.json`): `grove pause` from another process writes it, the node notices within
`FILE_POLL` seconds, and a pause survives a restart.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from core import platform_state
from core.compute import ComputeGate, CudaFacts
from core.compute import probe_cuda as cuda_probe
from core.config import atomic_write
from core.device import DeviceChoice, choose_device, cuda_ordinals
from core.filewatch import FileWatch
from core.governor import Decision, GovernorMemory, Readings, decide
from core.hardware import HardwareInfo, NvmlReading, probe_hardware, read_battery, read_nvml
from core.idle import idle_seconds
from core.settings_schema import Settings
from core.snapshot import GovernorStatus
from core.tiers import TierDecision, compute_tier

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

TICK = 2.0  # s between decisions (a pause or a settings change re-decides at once)
FILE_POLL = 0.5  # seconds between looks at the pause file (`grove pause`: stops within 1 s)
NVML_EVERY = 5.0  # seconds between GPU readings
NVML_RETRY = 60.0  # seconds between tries while NVML is unavailable (no driver: the CPU case)
BATTERY_EVERY = 5.0  # seconds between battery readings (each costs a sysfs walk)
PRESENCE_IDLE = 300.0  # s without keyboard or mouse after which the gardener is away
PRESENCE_EVERY = 30.0  # s between idle-time readings when idle-only is off
PROGRAMS_EVERY = 5.0   # s between readings of the process list (pause for programs)
METERED_EVERY = 30.0   # s between questions to NetworkManager (pause on metered)
FULLSCREEN_EVERY = 2.0  # s between looks at the active window (pause when full screen)
PAUSE_FILE = "pause.json"


def read_pause_file(path: Path, now: float) -> float | None:
    try:
        data = json.loads(path.read_text())
        until = float(data["until"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("the pause file %s is damaged; ignoring it", path)
        return None
    return until if until > now else None


def write_pause_file(path: Path, until: float | None) -> None:
    if until is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    atomic_write(path, json.dumps({"until": until}).encode())


def check_limits_against_hardware(settings: Settings, hw: HardwareInfo) -> None:
    """Limits that depend on this machine: refused with the valid range (SettingsError)."""
    from core.errors import SettingsError

    gpus = hw.nvml.gpus
    if settings.vram_cap_mb and gpus:
        largest = max(g.vram_total for g in gpus) // 1024**2
        if settings.vram_cap_mb > largest:
            raise SettingsError(
                f"Setting 'vram_cap_mb' = {settings.vram_cap_mb} is above your largest GPU "
                f"({largest} MB).", f"Valid: 0 to {largest} MB (0: all of it).")
    known = {str(g.index) for g in gpus}
    for g in settings.allowed_gpus:
        if g not in known:
            valid = ", ".join(sorted(known)) or "none: no GPU was found"
            raise SettingsError(f"Setting 'allowed_gpus' names GPU {g}, which this machine "
                                f"does not have.", f"Valid indices: {valid}.")


class GovernorService:
    """The one owner of `paused_until` (a pause from the tray, the CLI or the pause file)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.paused_until: float | None = None
        self._gpu_temps: dict[int, float] = {}
        # (seconds since the gardener last touched keyboard or mouse, or None and why not)
        self.idle: tuple[float | None, str] = (None, "not read yet")
        self.programs: tuple[frozenset[str] | None, str] = (None, "not read yet")
        self.metered: tuple[bool | None, str] = (None, "not read yet")
        self.fullscreen: tuple[bool | None, str] = (None, "not read yet")
        self.hardware: HardwareInfo = probe_hardware(NvmlReading(False, "not probed yet"))
        self.tier = self._tier(self.ctx.settings)
        self.memory = GovernorMemory()
        self.decision = self._decide(self.ctx.clock.wall())
        self.gate = ComputeGate(self.decision, ctx.compute)
        self._cuda: tuple[tuple[tuple[int, str], ...], CudaFacts] | None = None
        self.probed = trio.Event()  # set once the hardware was probed (the tier is real)
        self._poke = trio.Event()
        self._decided = trio.Event()  # set (and replaced) whenever the decision changes
        self.pause_file = ctx.data_dir / PAUSE_FILE

    # -- called on the node thread -------------------------------------------------------------
    def poke(self) -> None:
        """Re-decide now (a pause, a settings change)."""
        self._poke.set()

    async def set_pause(self, until: float | None) -> None:
        """Pause compute until `until` (wall clock), or resume (None); kept in the pause file
        so that it survives a restart."""
        self.paused_until = until
        self.poke()
        await trio.to_thread.run_sync(write_pause_file, self.pause_file, until)

    def paused_now(self) -> float | None:
        until = self.paused_until
        return until if until and until > self.ctx.clock.wall() else None

    async def wait_decision_changed(self) -> None:
        await self._decided.wait()

    def view(self) -> GovernorStatus:
        d = self.decision
        return GovernorStatus(d.may_compute, d.rule, d.reason, d.threads, d.duty_cycle,
                              d.cpu_share, d.notes, tuple(sorted(self.memory.hot_gpus)),
                              bool(self.tier.usable_vram))

    def device_for(self, need_bytes: int) -> DeviceChoice:
        """Where a job needing `need_bytes` on its device runs now (any thread): the allowed
        GPU with the most usable memory that is not cooling down, that torch can reach and
        that has room - else the CPU, and why. torch is probed only once a GPU is allowed."""
        tier, hot = self.tier, self.memory.hot_gpus
        if not tier.usable_vram:
            return choose_device({}, hot=hot, ordinals={}, need_bytes=need_bytes,
                                 tier_reason=tier.reason)
        uuids = {g.index: g.uuid for g in self.hardware.nvml.gpus}
        key = tuple(sorted(uuids.items()))
        if self._cuda is None or self._cuda[0] != key:  # probed again when the GPUs change
            self._cuda = (key, cuda_probe())
        facts = self._cuda[1]
        ordinals = cuda_ordinals(uuids, facts.uuids)
        self.gate.ordinals = ordinals
        capability = {i: facts.capability[o] for i, o in ordinals.items()
                      if o < len(facts.capability)}
        return choose_device(tier.usable_vram, hot=hot, ordinals=ordinals,
                             need_bytes=need_bytes, capability=capability)

    def _tier(self, settings: Settings) -> TierDecision:
        return compute_tier(self.hardware.gpu_views(), nvml_reason=self.hardware.nvml.reason,
                            use_gpu=settings.use_gpu, allowed_gpus=settings.allowed_gpus,
                            vram_cap_mb=settings.vram_cap_mb)

    def _readings(self, now: float, idle: tuple[float | None, str]) -> Readings:
        lt = time.localtime(now)
        b = self.hardware.battery
        usable = self.tier.usable_vram
        totals = {g.index: g.vram_total for g in self.hardware.nvml.gpus if g.index in usable}
        return Readings(now=now, weekday=lt.tm_wday, minute_of_day=lt.tm_hour * 60 + lt.tm_min,
                        cores=self.hardware.logical_cores,
                        on_battery=(not b.plugged_in) if b.present and b.plugged_in
                        is not None else None,
                        battery_percent=b.percent, idle_seconds=idle[0],
                        idle_unavailable_reason=idle[1],
                        gpu_temps={i: t for i, t in self._gpu_temps.items() if i in totals},
                        gpu_vram_total=totals, programs=self.programs[0],
                        programs_unavailable_reason=self.programs[1],
                        metered=self.metered[0], metered_unavailable_reason=self.metered[1],
                        fullscreen=self.fullscreen[0],
                        fullscreen_unavailable_reason=self.fullscreen[1])

    def _decide(self, now: float, idle: tuple[float | None, str] = (None, "")) -> Decision:
        s = self.ctx.settings
        decision, self.memory = decide(s, self._readings(now, idle), self.memory,
                                       participating=s.participate,
                                       paused_until=self.paused_until)
        return decision

    def _apply(self, decision: Decision) -> None:
        old = self.decision
        self.decision = decision
        self.gate.set_decision(decision)
        self.ctx.memory.set_cap(decision.ram_cap_bytes)
        if self.ctx.bandwidth is not None:
            self.ctx.bandwidth.set_rates(decision.upload_bps, decision.download_bps,
                                         limit_lan=decision.limit_lan)
        if (old.may_compute, old.reason) != (decision.may_compute, decision.reason):
            self._decided.set()
            self._decided = trio.Event()
            log.info("governor: %s", decision.reason or "compute may run")

    # -- the service ---------------------------------------------------------------------------
    async def run(self) -> None:
        self.hardware = await trio.to_thread.run_sync(probe_hardware)
        self.tier = self._tier(self.ctx.settings)
        self.probed.set()
        log.info("hardware: %s, %d cores; tier %s (%s)", self.hardware.cpu_model,
                 self.hardware.logical_cores, self.tier.tier, self.tier.reason)
        self.paused_until = read_pause_file(self.pause_file, self.ctx.clock.wall())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._decide_loop)
            nursery.start_soon(self._watch_pause_file)

    async def _decide_loop(self) -> None:
        last_nvml = last_battery = last_idle = last_programs = last_metered = -1e9
        last_fullscreen = -1e9
        while True:
            settings = self.ctx.settings
            now_mono = trio.current_time()
            if now_mono - last_battery >= BATTERY_EVERY:
                last_battery = now_mono
                battery = await trio.to_thread.run_sync(read_battery)
                self.hardware = replace(self.hardware, battery=battery)
            every = NVML_EVERY if self.hardware.nvml.available else NVML_RETRY
            if now_mono - last_nvml >= every:
                last_nvml = now_mono
                await self._read_gpus()
            # every tick for idle-only, every PRESENCE_EVERY s for the gardener's presence
            # (on macOS a reading runs a program)
            if settings.idle_only or now_mono - last_idle >= PRESENCE_EVERY:
                last_idle = now_mono
                self.idle = await trio.to_thread.run_sync(idle_seconds)
            idle = self.idle
            if settings.pause_for_programs and now_mono - last_programs >= PROGRAMS_EVERY:
                last_programs = now_mono
                self.programs = await trio.to_thread.run_sync(platform_state.running_programs)
            if settings.pause_when_fullscreen and \
                    now_mono - last_fullscreen >= FULLSCREEN_EVERY:
                last_fullscreen = now_mono
                self.fullscreen = await trio.to_thread.run_sync(platform_state.fullscreen)
            if settings.pause_on_metered and now_mono - last_metered >= METERED_EVERY:
                last_metered = now_mono
                self.metered = await trio.to_thread.run_sync(platform_state.metered)
            self.tier = self._tier(settings)
            self._apply(self._decide(self.ctx.clock.wall(),
                                     idle if settings.idle_only else (None, "")))
            with trio.move_on_after(TICK):
                await self._poke.wait()
            self._poke = trio.Event()

    def presence(self) -> bool | None:
        """Whether the gardener is at this computer: input within PRESENCE_IDLE s; None where
        the desktop cannot say (Wayland, a server, no display): not measured."""
        seconds = self.idle[0]
        return None if seconds is None else seconds < PRESENCE_IDLE

    async def _read_gpus(self) -> None:
        had = self.hardware.nvml.available
        reading = await trio.to_thread.run_sync(read_nvml)
        if had and not reading.available:
            log.warning("GPUs unavailable (%s): continuing on the CPU tier", reading.reason)
        self.hardware = replace(self.hardware, nvml=reading)
        self._gpu_temps = {g.index: g.temperature_c for g in reading.gpus
                           if g.temperature_c is not None}

    async def _watch_pause_file(self) -> None:
        watch = FileWatch(self.pause_file, FILE_POLL)  # inotify where it can, else polled
        watch.open()
        try:
            await self._follow_pause_file(watch)
        finally:
            watch.close()

    async def _follow_pause_file(self, watch: FileWatch) -> None:
        last: Any = None
        while True:
            try:
                st = os.stat(self.pause_file)
                stamp: Any = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != last:
                last = stamp
                until = read_pause_file(self.pause_file, self.ctx.clock.wall())
                if until != self.paused_until:
                    self.paused_until = until
                    self.poke()
            await watch.changed()
