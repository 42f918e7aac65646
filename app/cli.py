"""`grove`: the one console command. Qt is imported only by `grove tray`.

Exit codes: 0 done, 1 the node failed while running, 2 the command cannot go on (bad
arguments or an environment problem, said in one plain sentence without a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from app.cli_common import setup
from app.cli_credits import cmd_credits, cmd_ledger
from app.cli_governor import (
    TOMORROW_HOUR,
    cmd_hardware,
    cmd_limits,
    cmd_pause,
    cmd_resume,
)
from app.cli_node import (
    add_node_flags,
    add_web_flags,
    cmd_demo,
    cmd_gateway,
    cmd_node,
    cmd_relay,
    cmd_tray,
)
from app.cli_personas import cmd_personas
from app.cli_release import add_parsers as add_release_parsers
from app.cli_release import cmd_update, cmd_verify
from app.cli_swarm import cmd_generate, cmd_swarm
from app.cli_train import cmd_train
from core.errors import GardenerError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grove", description="Grove Village: lend your computer to Grove's P2P AI network.")
    parser.add_argument("--profile", default="default",
                        help="which node on this machine (each has its own identity and state)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    parser.add_argument("--smoke-test", action="store_true",
                        help="check this build: start a throwaway node and the UI offscreen, "
                        "check they talk, print one JSON object, exit 0 if all is well")
    parser.add_argument("--require-torch", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    tray = sub.add_parser("tray", help="the tray app (default where a system tray exists)")
    add_node_flags(tray)
    tray.add_argument("--show", metavar="PAGE", default="",
                      help="open the dashboard at PAGE (overview, resources, training, "
                      "personas, health, credits, log); with Grove already running, that one "
                      "is brought forward")
    node = sub.add_parser("node", help="run the node headless, one status line every few s")
    add_node_flags(node)
    node.add_argument("--status-interval", type=float, metavar="S",
                      help="seconds between status lines")
    node.add_argument("--json-status", action="store_true",
                      help="status lines as JSON snapshots")
    add_web_flags(node)
    relay = sub.add_parser("relay", help="run a public relay: circuit relay v2, DHT server, "
                                         "bootstrap node (headless)")
    add_node_flags(relay)
    relay.add_argument("--status-interval", type=float, metavar="S")
    relay.add_argument("--json-status", action="store_true")
    add_web_flags(relay)
    gateway = sub.add_parser("gateway", help="run a village that serves the swarm's "
                                             "completions over HTTP to API-key holders")
    add_node_flags(gateway)
    gateway.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8480",
                         help="where to serve /v1/completions (default 127.0.0.1:8480)")
    gateway.add_argument("--remote", action="store_true",
                         help="let --listen bind an address other computers can reach")
    gateway.add_argument("--new-key", action="store_true",
                         help="make a new API key, print it and exit")
    gateway.add_argument("--status-interval", type=float, metavar="S")
    gateway.add_argument("--json-status", action="store_true")
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
    train = sub.add_parser("train", help="training projects: progress, and opting in or out")
    train.add_argument("project", nargs="?", default="", help="a project, e.g. digits")
    train.add_argument("action", nargs="?", choices=("on", "off"), default=None)
    train.add_argument("--json", action="store_true")
    credits = sub.add_parser("credits", help="credits earned, pending and rejected; export")
    credits.add_argument("action", nargs="?", choices=("show", "export"), default="show")
    credits.add_argument("--csv", action="store_true", help="for `export`: CSV (the format)")
    credits.add_argument("--file", default="", help="for `export`: write here, not stdout")
    credits.add_argument("--json", action="store_true")
    add_release_parsers(sub)
    ledger = sub.add_parser("ledger", help="check the ledger's signatures and hash chain")
    ledger.add_argument("action", choices=("verify",))
    ledger.add_argument("--json", action="store_true")
    personas = sub.add_parser("personas", help="this village's personas and conversations")
    personas.add_argument("action", nargs="?", default="list", choices=(
        "list", "add", "edit", "remove", "conversations", "transcript", "talk"))
    personas.add_argument("rest", nargs="*", help="NAME, ID [FIELD=VALUE ...], CONVERSATION, "
                          "or for `talk`: OURS THEIRS (persona names or ids)")
    personas.add_argument("--village", default="",
                          help="for `talk`: the village of THEIRS, when several have one "
                          "of that name (its name or id)")
    personas.add_argument("--turns", type=int, default=5,
                          help="for `talk`: messages each persona says (default 5)")
    personas.add_argument("--no-follow", action="store_true",
                          help="for `talk`: start it and return (do not print the transcript)")
    personas.add_argument("--description")
    personas.add_argument("--backend", choices=("scripted", "openai-compatible"))
    personas.add_argument("--availability", choices=("open", "invitation", "closed"))
    personas.add_argument("--status", choices=("running", "sleeping", "paused", "error"))
    personas.add_argument("--capacity", type=int)
    personas.add_argument("--json", action="store_true")
    swarm = sub.add_parser("swarm", help="serve blocks of a SWARM model, and how it goes")
    swarm.add_argument("action", choices=("serve", "train", "status"))
    swarm.add_argument("--max-blocks", type=int, default=None,
                       help="for `serve`: most blocks to hold (0: as many as memory fits)")
    swarm.add_argument("--stop", action="store_true",
                       help="for `serve`: stop serving; for `train`: stop training")
    swarm.add_argument("--json", action="store_true")
    gen = sub.add_parser("generate", help="continue a text through the villages serving the "
                         "SWARM model (greedy, one character at a time)")
    gen.add_argument("text", help="the text to continue")
    gen.add_argument("--tokens", type=int, default=8, metavar="N",
                     help="characters to add (at most what the model's context has room for)")
    gen.add_argument("--bootstrap", action="append", metavar="MULTIADDR", default=[],
                     help="a village to reach the swarm through, /ip4/…/tcp/…/p2p/<id> "
                     "(repeatable; this computer's running node is used when there is one)")
    gen.add_argument("--no-default-bootstrap", action="store_true",
                     help="do not dial the Foundation bootstrap nodes")
    gen.add_argument("--wait", type=float, default=60.0, metavar="S",
                     help="how long to look for servers of every block before giving up")
    gen.add_argument("--json", action="store_true")
    return parser


def cmd_identity(args: argparse.Namespace) -> int:
    from core.identity import load_or_create_key
    from core.net.keys import peer_id_from_seed

    paths = setup(args)
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

    paths = setup(args)
    report = doctor_report(paths, tray_probe=probe_tray)
    print(json.dumps(report, indent=2) if args.json else doctor_text(report))
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    from core.peers_file import read_villages
    from core.snapshot import format_duration, short_id

    paths = setup(args)
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
            "gateway": cmd_gateway,
            "demo": cmd_demo, "tray": cmd_tray, "hardware": cmd_hardware,
            "pause": cmd_pause, "resume": cmd_resume, "limits": cmd_limits,
            "peers": cmd_peers, "relay": cmd_relay, "train": cmd_train,
            "swarm": cmd_swarm, "generate": cmd_generate,
            "credits": cmd_credits, "ledger": cmd_ledger,
            "personas": cmd_personas, "verify": cmd_verify, "update": cmd_update}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["_probe-tray"]:
        from app.traycheck import probe_in_process

        print(json.dumps(probe_in_process()))
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke_test:
        from app.smoke import run_smoke

        return run_smoke(require_torch=args.require_torch)
    if args.command is None:
        args = parser.parse_args([*argv, "tray"])
    try:
        return COMMANDS[args.command](args)
    except GardenerError as e:
        print(f"grove: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `grove … | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
