"""`grove hardware | pause | resume | limits`: what this computer lends, and when."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from app.cli_common import setup
from core.errors import SettingsError

TOMORROW_HOUR = 8


def cmd_hardware(args: argparse.Namespace) -> int:
    from core.config import load_settings
    from core.hardware import probe_hardware
    from core.tiers import compute_tier

    paths = setup(args)
    hw = probe_hardware()
    s = load_settings(paths.settings_file).settings
    tier = compute_tier(hw.gpu_views(), nvml_reason=hw.nvml.reason, use_gpu=s.use_gpu,
                        allowed_gpus=s.allowed_gpus, vram_cap_mb=s.vram_cap_mb)
    data = {"tier": tier.tier, "tier_reason": tier.reason,
            "allows": {"services": list(tier.spec.services),
                       "max_model_params_m": tier.spec.max_model_params_m},
            "cpu": {"model": hw.cpu_model, "physical_cores": hw.physical_cores,
                    "logical_cores": hw.logical_cores},
            "ram": {"total": hw.ram_total, "available": hw.ram_available},
            "gpus": [vars(g) for g in hw.nvml.gpus],
            "nvml": {"available": hw.nvml.available, "reason": hw.nvml.reason,
                     "driver": hw.nvml.driver, "cuda_version": hw.nvml.cuda_version},
            "battery": vars(hw.battery)}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"tier:    {tier.tier} ({tier.reason})")
    print(f"CPU:     {hw.cpu_model}, {hw.physical_cores} cores / {hw.logical_cores} threads")
    print(f"RAM:     {hw.ram_total / 1024**3:.1f} GiB ({hw.ram_available / 1024**3:.1f} free)")
    for g in hw.nvml.gpus:
        print(f"GPU {g.index}:   {g.name}, {g.vram_total / 1024**3:.1f} GiB, "
              f"{g.temperature_c} °C")
    if not hw.nvml.gpus:
        print(f"GPUs:    none ({hw.nvml.reason})")
    b = hw.battery
    print("battery: " + (f"{b.percent:.0f}%, {'plugged in' if b.plugged_in else 'on battery'}"
                         if b.present else "none"))
    return 0


def parse_duration(text: str) -> float:
    import re

    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", text.strip())
    if not m or not text.strip() or not (m.group(1) or m.group(2)):
        raise SettingsError(f"'{text}' is not a duration.", "Write it like 30m, 1h or 2h30m.")
    seconds = int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60
    if not 60 <= seconds <= 7 * 24 * 3600:
        raise SettingsError(f"A pause of {text} is out of range.", "Choose 1m to 168h.")
    return seconds


def cmd_pause(args: argparse.Namespace) -> int:
    from core.clock import tomorrow_at
    from core.governor_service import PAUSE_FILE, write_pause_file

    paths = setup(args)
    now = time.time()
    until = tomorrow_at(TOMORROW_HOUR, now) if args.until_tomorrow else \
        now + parse_duration(args.duration)
    write_pause_file(paths.data_dir / PAUSE_FILE, until)
    print(f"Paused until {time.strftime('%a %H:%M', time.localtime(until))}. "
          "`grove resume` ends it.")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from core.governor_service import PAUSE_FILE, write_pause_file

    paths = setup(args)
    write_pause_file(paths.data_dir / PAUSE_FILE, None)
    print("Resumed: the network may use this computer again, within your limits.")
    return 0


LIMIT_NAMES = ("cpu_share", "max_threads", "ram_cap_mb", "vram_cap_mb", "allowed_gpus",
               "use_gpu", "upload_kbps", "download_kbps", "limit_lan", "bandwidth_schedule",
               "scheduled_upload_kbps", "scheduled_download_kbps", "idle_only",
               "idle_minutes", "pause_on_battery", "battery_resume_percent", "schedule",
               "pause_for_programs", "pause_when_fullscreen", "pause_on_metered",
               "gpu_temp_limit_c", "gpu_temp_hysteresis_c")


def _parse_change(text: str) -> tuple[str, Any]:
    from core.settings_schema import parse_assignment

    return parse_assignment(text, allowed=LIMIT_NAMES, kind="limit")


def cmd_limits(args: argparse.Namespace) -> int:
    from core.config import load_settings, save_settings
    from core.settings_schema import BY_NAME

    paths = setup(args)
    settings = load_settings(paths.settings_file).settings
    if args.action == "set":
        if not args.changes:
            raise SettingsError("Nothing to set.", "Give NAME=VALUE, e.g. cpu_share=30.")
        from core.governor_service import check_limits_against_hardware
        from core.hardware import probe_hardware

        settings = settings.with_changes(**dict(_parse_change(c) for c in args.changes))
        check_limits_against_hardware(settings, probe_hardware())
        save_settings(paths.settings_file, settings)
        print("Saved; a running node applies it within a second.")
    if args.action == "test":
        return _limits_test(args)
    rows = {n: getattr(settings, n) for n in LIMIT_NAMES}
    if args.json:
        print(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in rows.items()}))
    else:
        for n, v in rows.items():
            unit = BY_NAME[n].unit
            print(f"{n:<24}{v!s:<10}{unit:<6}{BY_NAME[n].description}")
    return 0


def _limits_test(args: argparse.Namespace) -> int:
    """Run the synthetic job through this profile's limits, in a node of its own."""
    from core.handle import NodeHandle
    from core.node import NodeConfig

    config = NodeConfig.load(args.profile, overrides={"listen_host": "127.0.0.1",
                                                      "listen_port": 0,
                                                      "use_default_bootstrap": False,
                                                      "participate": True})
    handle = NodeHandle(config)
    handle.start()
    try:
        print(f"Running the synthetic job for {args.seconds:g} s within your limits…",
              file=sys.stderr, flush=True)
        result = handle.submit(_run_test_job(args.seconds)).result(args.seconds + 60)
    finally:
        handle.stop()
    if args.json:
        print(json.dumps(result))
    elif result["may_compute"]:
        print(f"Used {result['cpu_share_measured']}% of this computer's CPU "
              f"(limit {result['cpu_share_target']:g}%), {result['threads']} thread(s).")
    else:
        print(f"Compute did not run: {result['reason']}.")
    return 0


def _run_test_job(seconds: float) -> Any:
    from core.commands import RunTestJob

    return RunTestJob(seconds)
