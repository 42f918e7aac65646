"""The `grove` commands that run a village: `node` (and `relay`, with `--web`), `tray` (a
window where the desktop shows no tray, `grove node` where there is no display) and `demo`;
their flags and this run's setting overrides. Split from app/cli.py."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from app.cli_common import setup
from core.errors import GardenerError, SettingsError

EXIT_FAILED = 1
RELAY_PORT = 4001


def add_node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, metavar="N",
                   help="TCP port to listen on, this run only (0: any free port)")
    p.add_argument("--listen-host", metavar="ADDR", help="address to listen on, this run only")
    p.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=[],
                   help="a peer to dial first, /ip4/…/tcp/…/p2p/<id> (repeatable)")
    p.add_argument("--no-default-bootstrap", action="store_true",
                   help="do not dial the Foundation bootstrap nodes")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a setting for this run only (repeatable; see `grove limits`)")


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
    for item in getattr(args, "set", None) or []:
        from core.settings_schema import parse_assignment

        name, value = parse_assignment(item)  # SettingsError names the field and the range
        out[name] = value
    return out


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


def add_web_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web", metavar="HOST:PORT",
                   help="also serve a small web dashboard there (e.g. 127.0.0.1:8642; off "
                   "by default; the address printed carries this profile's token)")
    p.add_argument("--web-remote", action="store_true",
                   help="let --web bind an address other computers can reach")


def cmd_gateway(args: argparse.Namespace) -> int:
    """A village (as `grove node`) that also serves completions over HTTP (app/gateway.py)."""
    from app.gateway import load_keys, new_key
    from app.web import parse_address

    paths = setup(args)
    if args.new_key:
        print(new_key(paths.data_dir))
        print(f"grove: added to {paths.data_dir / 'gateway-keys'}", file=sys.stderr)
        return 0
    if not load_keys(paths.data_dir):
        raise GardenerError("The gateway has no API keys yet.",
                            "Run `grove gateway --new-key` to make one.")
    at = parse_address(args.listen, remote=args.remote, flag="--listen",
                       remote_flag="--remote", guard="the API key")
    return cmd_node(args, gateway_at=at)


def cmd_node(args: argparse.Namespace, relay: bool = False,
             gateway_at: tuple[str, int] | None = None) -> int:
    from app.web import WebDashboard, load_token, parse_address
    from core.handle import NodeHandle
    from core.node import NodeConfig
    from core.snapshot import NodeState, status_line, to_jsonable

    setup(args)
    overrides = _overrides(args)
    if relay:
        overrides["relay_enabled"] = True
        overrides.setdefault("listen_port", RELAY_PORT)
    config = NodeConfig.load(args.profile, overrides=overrides)
    for note in config.notices:
        print(f"grove: {note}", file=sys.stderr)
    web_at = parse_address(args.web, remote=args.web_remote) \
        if getattr(args, "web", None) else None
    stop = _StopSignal()
    stop.install()
    handle = NodeHandle(config)
    what = "relay" if relay else "village"
    print(f"grove: starting {what} '{config.paths.profile}'…", file=sys.stderr, flush=True)
    handle.start()
    print("grove: listening on " + " ".join(handle.snapshot().listen_addrs), file=sys.stderr,
          flush=True)
    interval = config.settings.status_interval
    web = gateway = None
    try:
        if gateway_at is not None:
            from app.gateway import Gateway, load_keys

            def complete(prompt: str, tokens: int, level: str) -> dict:
                return dict(handle.complete(prompt, tokens, level).result(600))

            try:
                gateway = Gateway(complete, lambda: load_keys(config.paths.data_dir),
                                  config.settings.swarm_model, *gateway_at).start()
            except OSError as e:
                raise GardenerError(f"The gateway cannot listen on {args.listen}: "
                                    f"{e.strerror or e}.", "Choose another port.") from None
            print(f"grove: gateway at {gateway.url} (API keys in "
                  f"{config.paths.data_dir / 'gateway-keys'})", file=sys.stderr, flush=True)
        if web_at is not None:
            try:
                web = WebDashboard(handle, *web_at, load_token(config.paths.data_dir)).start()
            except OSError as e:
                raise GardenerError(f"The web dashboard cannot listen on {args.web}: "
                                    f"{e.strerror or e}.", "Choose another port.") from None
            print(f"grove: web dashboard at {web.url}", file=sys.stderr, flush=True)
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
        for server in (web, gateway):
            if server is not None:
                server.stop()
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
    from core.demo import DEMO_TELEMETRY_PERIOD

    config = NodeConfig.load("demo-1", env=env, overrides={
        "listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
        "bootstrap": (), "telemetry_period_s": DEMO_TELEMETRY_PERIOD})
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
    if not _display():
        return False
    from app.traycheck import probe_tray

    return bool(probe_tray()["available"])


def _display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or \
        not sys.platform.startswith("linux")


def cmd_tray(args: argparse.Namespace) -> int:
    setup(args)
    window = False
    if not _tray_possible() and os.environ.get("GROVE_TRAY_FORCE") != "1":
        if not _display() or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
            print("grove: no display here; running headless as `grove node` (Ctrl-C stops).",
                  file=sys.stderr)
            args.status_interval = None
            args.json_status = False
            return cmd_node(args)
        print("grove: this desktop shows no system tray; Grove opens as a window (closing "
              "it stops Grove).", file=sys.stderr)
        window = True
    from app.main import launch

    return launch(args.profile, _overrides(args), page=args.show, window=window)
