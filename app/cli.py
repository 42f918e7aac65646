"""`grove`: the one console command. Qt is imported only by `grove tray`.

Exit codes: 0 done, 1 the node failed while running, 2 the command cannot go on (bad
arguments or an environment problem, said in one plain sentence without a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from core.errors import GardenerError, SettingsError

EXIT_FAILED = 1
EXIT_USAGE = 2
TOMORROW_HOUR = 8
RELAY_PORT = 4001


def _add_node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, metavar="N",
                   help="TCP port to listen on, this run only (0: any free port)")
    p.add_argument("--listen-host", metavar="ADDR", help="address to listen on, this run only")
    p.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=[],
                   help="a peer to dial first, /ip4/…/tcp/…/p2p/<id> (repeatable)")
    p.add_argument("--no-default-bootstrap", action="store_true",
                   help="do not dial the Foundation bootstrap nodes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grove", description="Grove Village: lend your computer to Grove's P2P AI network.")
    parser.add_argument("--profile", default="default",
                        help="which node on this machine (each has its own identity and state)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    tray = sub.add_parser("tray", help="the tray app (default where a system tray exists)")
    _add_node_flags(tray)
    node = sub.add_parser("node", help="run the node headless, one status line every few s")
    _add_node_flags(node)
    node.add_argument("--status-interval", type=float, metavar="S",
                      help="seconds between status lines")
    node.add_argument("--json-status", action="store_true",
                      help="status lines as JSON snapshots")
    relay = sub.add_parser("relay", help="run a public relay: circuit relay v2, DHT server, "
                                         "bootstrap node (headless)")
    _add_node_flags(relay)
    relay.add_argument("--status-interval", type=float, metavar="S")
    relay.add_argument("--json-status", action="store_true")
    demo = sub.add_parser("demo", help="a local demo village of N nodes on loopback")
    demo.add_argument("--villages", type=int, default=3, metavar="N", help="how many (2-16)")
    demo.add_argument("--headless", action="store_true", help="never show the tray")
    ident = sub.add_parser("identity", help="print this village's peer id")
    ident.add_argument("--json", action="store_true")
    doctor = sub.add_parser("doctor", help="report what this machine offers the node")
    doctor.add_argument("--json", action="store_true")
    hw = sub.add_parser("hardware", help="CPU, RAM, battery, GPUs and the compute tier")
    hw.add_argument("--json", action="store_true")
    pause = sub.add_parser("pause", help="pause lending this computer (the running node obeys)")
    when = pause.add_mutually_exclusive_group()
    when.add_argument("--for", dest="duration", default="1h", metavar="DURATION",
                      help="how long: 30m, 1h, 2h30m (default 1h)")
    when.add_argument("--until-tomorrow", action="store_true",
                      help=f"until {TOMORROW_HOUR:02d}:00 tomorrow")
    sub.add_parser("resume", help="end a pause")
    peers = sub.add_parser("peers", help="villages the running node knows, from their records")
    peers.add_argument("--json", action="store_true")
    limits = sub.add_parser("limits", help="show, change or test what this computer lends")
    limits.add_argument("action", nargs="?", choices=("show", "set", "test"), default="show")
    limits.add_argument("changes", nargs="*", metavar="NAME=VALUE",
                        help="for `set`: e.g. cpu_share=30 idle_only=true")
    limits.add_argument("--seconds", type=float, default=10.0,
                        help="for `test`: how long to run the synthetic job")
    limits.add_argument("--json", action="store_true")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "port", None) is not None:
        out["listen_port"] = args.port
    if getattr(args, "listen_host", None):
        out["listen_host"] = args.listen_host
    if getattr(args, "bootstrap", None):
        from core.net.host import parse_peer_address

        for b in args.bootstrap:
            try:
                parse_peer_address(b)
            except ValueError as e:
                raise SettingsError(f"The bootstrap address {e}.",
                                    "Give /ip4/<ip>/tcp/<port>/p2p/<peer id>.") from None
        out["bootstrap"] = tuple(args.bootstrap)
    if getattr(args, "no_default_bootstrap", False):
        out["use_default_bootstrap"] = False
    if getattr(args, "status_interval", None) is not None:
        out["status_interval"] = args.status_interval
    return out


def _setup(args: argparse.Namespace) -> Any:
    from core.logsetup import setup_logging
    from core.paths import node_paths

    paths = node_paths(args.profile).ensure()
    setup_logging(paths.log_dir, stderr_level="INFO" if args.verbose else "WARNING")
    return paths


def cmd_identity(args: argparse.Namespace) -> int:
    from core.identity import load_or_create_key
    from core.net.keys import peer_id_from_seed

    paths = _setup(args)
    key, info = load_or_create_key(paths)
    pid = peer_id_from_seed(key.seed)
    if args.json:
        print(json.dumps({"peer_id": pid, "profile": paths.profile, "key_store": info.kind,
                          "key_store_note": info.note}))
    else:
        print(pid)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.traycheck import probe_tray
    from core.doctor import doctor_report, doctor_text

    paths = _setup(args)
    report = doctor_report(paths, tray_probe=probe_tray)
    print(json.dumps(report, indent=2) if args.json else doctor_text(report))
    return 0


class _StopSignal:
    """SIGINT/SIGTERM set an event instead of raising inside arbitrary code."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        self.count += 1
        self.event.set()


def cmd_relay(args: argparse.Namespace) -> int:
    return cmd_node(args, relay=True)


def cmd_node(args: argparse.Namespace, relay: bool = False) -> int:
    from core.handle import NodeHandle
    from core.node import NodeConfig
    from core.snapshot import NodeState, status_line, to_jsonable

    _setup(args)
    overrides = _overrides(args)
    if relay:
        overrides["relay_enabled"] = True
        overrides.setdefault("listen_port", RELAY_PORT)
    config = NodeConfig.load(args.profile, overrides=overrides)
    for note in config.notices:
        print(f"grove: {note}", file=sys.stderr)
    stop = _StopSignal()
    stop.install()
    handle = NodeHandle(config)
    what = "relay" if relay else "village"
    print(f"grove: starting {what} '{config.paths.profile}'…", file=sys.stderr, flush=True)
    handle.start()
    print("grove: listening on " + " ".join(handle.snapshot().listen_addrs), file=sys.stderr,
          flush=True)
    interval = config.settings.status_interval
    try:
        while not stop.event.is_set():
            snap = handle.snapshot()
            if args.json_status:
                print(json.dumps(to_jsonable(snap)), flush=True)
            else:
                print(status_line(snap), flush=True)
            if snap.state is NodeState.FAILED:
                print(f"grove: the node stopped: {snap.error}", file=sys.stderr)
                return EXIT_FAILED
            stop.event.wait(interval)
    finally:
        began = time.monotonic()
        clean = handle.stop()
        if not args.json_status:
            print(f"grove: stopped {'cleanly' if clean else 'with a timeout'} in "
                  f"{time.monotonic() - began:.1f} s", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import DemoChildren, demo_env
    from core.handle import NodeHandle
    from core.logsetup import setup_logging
    from core.node import NodeConfig
    from core.paths import node_paths

    if not 2 <= args.villages <= 16:
        raise SettingsError(f"--villages {args.villages} is out of range.",
                            "Choose 2 to 16 villages.")
    env = demo_env(os.environ)
    paths = node_paths("demo-1", env).ensure()
    setup_logging(paths.log_dir, stderr_level="INFO" if args.verbose else "WARNING")
    config = NodeConfig.load("demo-1", env=env, overrides={
        "listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
        "bootstrap": ()})
    handle = NodeHandle(config)
    print(f"grove demo: starting {args.villages} villages under {env['GROVE_HOME']}…",
          flush=True)
    handle.start()
    children = DemoChildren(args.villages - 1, handle.snapshot().listen_addrs[0], env)
    children.start()
    use_tray = not args.headless and _tray_possible()
    try:
        if use_tray:
            from app.main import run_tray

            return run_tray(handle, demo_children=children)
        return _demo_terminal(handle, children)
    finally:
        began = time.monotonic()
        deadline = began + 5.0
        handle.stop(timeout=5.0)
        killed = children.stop(deadline)
        took = time.monotonic() - began
        if killed:
            print(f"grove demo: had to kill {', '.join(killed)} after {took:.1f} s", flush=True)
        else:
            print(f"grove demo: all {args.villages} villages stopped cleanly in {took:.1f} s",
                  flush=True)


def _demo_terminal(handle: Any, children: Any) -> int:
    from core.demo_view import demo_status_lines

    stop = _StopSignal()
    stop.install()
    print("grove demo: live status every 2 s; Ctrl-C stops all villages.", flush=True)
    while not stop.event.is_set():
        failed = children.failed()
        if failed:
            for c in failed:
                print(f"grove demo: village {c.profile} exited: "
                      + " | ".join(c.stderr_tail[-3:]), file=sys.stderr)
            return EXIT_FAILED
        for line in demo_status_lines(handle.snapshot(), children.children):
            print(line)
        print(flush=True)
        stop.event.wait(2.0)
    return 0


def _tray_possible() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and \
            sys.platform.startswith("linux"):
        return False
    from app.traycheck import probe_tray

    return bool(probe_tray()["available"])


def cmd_tray(args: argparse.Namespace) -> int:
    from core.handle import NodeHandle
    from core.node import NodeConfig

    _setup(args)
    if not _tray_possible():
        print("grove: no system tray is available here; running headless as `grove node` "
              "(Ctrl-C stops).", file=sys.stderr)
        args.status_interval = None
        args.json_status = False
        return cmd_node(args)
    from app.main import run_tray

    config = NodeConfig.load(args.profile, overrides=_overrides(args))
    return run_tray(NodeHandle(config))


def cmd_hardware(args: argparse.Namespace) -> int:
    from core.config import load_settings
    from core.hardware import probe_hardware
    from core.tiers import compute_tier

    paths = _setup(args)
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

    paths = _setup(args)
    now = time.time()
    until = tomorrow_at(TOMORROW_HOUR, now) if args.until_tomorrow else \
        now + parse_duration(args.duration)
    write_pause_file(paths.data_dir / PAUSE_FILE, until)
    print(f"Paused until {time.strftime('%a %H:%M', time.localtime(until))}. "
          "`grove resume` ends it.")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from core.governor_service import PAUSE_FILE, write_pause_file

    paths = _setup(args)
    write_pause_file(paths.data_dir / PAUSE_FILE, None)
    print("Resumed: the network may use this computer again, within your limits.")
    return 0


LIMIT_NAMES = ("cpu_share", "max_threads", "ram_cap_mb", "vram_cap_mb", "allowed_gpus",
               "use_gpu", "upload_kbps", "download_kbps", "idle_only", "idle_minutes",
               "pause_on_battery", "battery_resume_percent", "schedule", "gpu_temp_limit_c",
               "gpu_temp_hysteresis_c")


def _parse_change(text: str) -> tuple[str, Any]:
    from core.settings_schema import BY_NAME

    if "=" not in text:
        raise SettingsError(f"'{text}' is not NAME=VALUE.", "For example: cpu_share=30.")
    name, raw = (p.strip() for p in text.split("=", 1))
    decl = BY_NAME.get(name)
    if decl is None or name not in LIMIT_NAMES:
        raise SettingsError(f"'{name}' is not a limit.", "Limits: " + ", ".join(LIMIT_NAMES))
    value: Any = raw
    bad = SettingsError(f"'{raw}' is not valid for {name}.", f"Valid: {decl.range_text()}.")
    if decl.type is bool:
        if raw.lower() not in ("true", "false", "on", "off", "yes", "no"):
            raise bad
        return name, raw.lower() in ("true", "on", "yes")
    try:
        if decl.type is int:
            value = int(raw)
        elif decl.type is float:
            value = float(raw)
        elif decl.type is tuple:
            value = tuple(v.strip() for v in raw.split(",") if v.strip())
    except ValueError:
        raise bad from None
    return name, value


def cmd_limits(args: argparse.Namespace) -> int:
    from core.config import load_settings, save_settings
    from core.settings_schema import BY_NAME

    paths = _setup(args)
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


def cmd_peers(args: argparse.Namespace) -> int:
    from core.peers_file import read_villages
    from core.snapshot import format_duration, short_id

    paths = _setup(args)
    now = time.time()
    running = paths.runtime_file.exists()
    villages = read_villages(paths.data_dir, now)
    if args.json:
        print(json.dumps({"node_running": running, "villages": [
            {**vars(v), "age_s": round(now - v.issued_at, 1)} for v in villages]}))
        return 0
    if not running:
        print(f"No node is running for profile '{paths.profile}': start one with "
              "`grove node` or the tray.", file=sys.stderr)
    if not villages:
        print("No villages known yet.")
        return 0
    print(f"{'village':<14}{'tier':<14}{'reach':<8}{'region':<10}{'age':<8}personas")
    for v in villages:
        print(f"{short_id(v.peer_id):<14}{v.tier:<14}{v.reachability:<8}{v.region or '-':<10}"
              f"{format_duration(now - v.issued_at):<8}{', '.join(v.personas) or '-'}")
    return 0


COMMANDS = {"identity": cmd_identity, "doctor": cmd_doctor, "node": cmd_node,
            "demo": cmd_demo, "tray": cmd_tray, "hardware": cmd_hardware,
            "pause": cmd_pause, "resume": cmd_resume, "limits": cmd_limits,
            "peers": cmd_peers, "relay": cmd_relay}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["_probe-tray"]:
        from app.traycheck import probe_in_process

        print(json.dumps(probe_in_process()))
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "tray"])
    try:
        return COMMANDS[args.command](args)
    except GardenerError as e:
        print(f"grove: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
