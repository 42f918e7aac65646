"""`grove swarm serve|train|status`: serving spans of a SWARM model's blocks to other villages,
and training that model with this village's data through the villages that serve it.

`serve` turns serving on (or off with `--stop`) in settings.toml; a running node applies it
within a second, and serves once participation is on and the governor allows compute.
`train` does the same for training through the swarm.
`status` shows what the running node serves, its throughput, requests in the last hour, its
queue, and why it is not serving when it is not.

`grove generate "text"` continues a text through the villages serving the model. It runs a
short-lived client village of its own (a throwaway identity in a temporary folder: the
gardener's node, if one runs, keeps its profile), which reaches the swarm through the running
node, `--bootstrap` addresses and the profile's bootstrap settings, and uses the embedding and
head this profile trained (`grove swarm train`) or untrained ones, and says which."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cli_common import setup


def cmd_swarm(args: argparse.Namespace) -> int:
    from core.config import load_settings, save_settings
    from core.status_files import SWARM_FILE

    paths = setup(args)
    settings = load_settings(paths.settings_file).settings
    if args.action == "serve":
        changes: dict[str, object] = {"swarm_serve": not args.stop}
        if args.max_blocks is not None:
            changes["swarm_max_blocks"] = args.max_blocks
        settings = settings.with_changes(**changes)
        save_settings(paths.settings_file, settings)
        if args.stop:
            print("Block serving is off; a running node stops within a second.")
        else:
            limit = (f"at most {settings.swarm_max_blocks} blocks" if settings.swarm_max_blocks
                     else "as many blocks as the memory budget fits")
            print(f"Serving {settings.swarm_model} ({limit}); a running node starts within a "
                  "second." + ("" if settings.participate else
                               " Participation is off: it serves once you turn it on."))
    elif args.action == "train":
        settings = settings.with_changes(swarm_train=not args.stop)
        save_settings(paths.settings_file, settings)
        if args.stop:
            print("Training through the swarm is off; a running node stops within a second.")
        else:
            print(f"Training {settings.swarm_model} through the swarm with this village's "
                  "data; a running node starts within a second." + (
                      "" if settings.participate else
                      " Participation is off: it trains once you turn it on."))
    running = paths.runtime_file.exists()
    view: dict[str, object] = {}
    if running:
        try:
            view = json.loads((paths.data_dir / SWARM_FILE).read_text())[0]
        except (OSError, ValueError, IndexError):
            view = {}
    status = view.get("status") or ("no node running" if not running else "starting")
    out = {"node_running": running, "serve": settings.swarm_serve,
           "train": settings.swarm_train,
           "model": settings.swarm_model, "max_blocks": settings.swarm_max_blocks, **{
               k: v for k, v in view.items() if k != "type"}, "status": status}
    if args.json:
        print(json.dumps(out))
        return 0
    if args.action in ("serve", "train"):
        return 0
    print(f"SWARM {settings.swarm_model}: {status}")
    if view.get("serving"):
        print(f"  blocks {view['start']}..{int(view['end']) - 1}, offering "  # type: ignore[call-overload]
              f"{view['throughput']} samples/s through them (one block computes "
              f"{view['compute_train']} samples/s forward+backward here)")
        print(f"  requests in the last hour {view['requests_last_hour']}, refused "
              f"{view['refused']}, queued now {view['queue']}")
        print(f"  the swarm: {view['swarm_servers']} servers, weakest stage "
              f"{view['swarm_min_throughput']} samples/s")
    if view.get("train_status") and (settings.swarm_train or view.get("train_micro_batches")):
        print(f"Training through the swarm: {view['train_status']}")
        if view.get("train_loss") is not None:
            held = view.get("held_out_loss")
            print(f"  loss {view['train_loss']} (held-out "
                  f"{held if held is not None else 'not measured yet'}; an untrained model: "
                  f"{view.get('chance_loss')}), {view['train_micro_batches']} micro-batches, "
                  f"{view['train_samples_per_s']} samples/s")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from core.config import load_settings
    from core.errors import GardenerError
    from core.swarm import text as codec

    paths = setup(args)
    settings = load_settings(paths.settings_file).settings
    from core.swarm.model import MODELS

    codec.encode(args.text, MODELS[settings.swarm_model].vocab)  # refuse bad text at once
    if args.tokens < 1:
        raise GardenerError("--tokens must be 1 or more.")
    bootstrap = [*args.bootstrap, *settings.bootstrap, *_running_node_addresses(paths)]
    if not bootstrap and (args.no_default_bootstrap or not settings.use_default_bootstrap):
        raise GardenerError("No village to reach the swarm through.",
                            "Start your node (`grove node`), or give --bootstrap MULTIADDR.")
    with tempfile.TemporaryDirectory(prefix="grove-generate-") as tmp:
        result = _generate_in_client_village(args, settings, paths, bootstrap, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n({len(result['tokens'])} characters in {result['seconds']} s through "
              f"{len(result['route'])} server(s); {result['ends']}"
              + (f"; {result['servers_replaced']} server(s) replaced mid-way"
                 if result["servers_replaced"] else "") + ")", file=sys.stderr)
    return 0


def _running_node_addresses(paths: Any) -> list[str]:
    try:
        info = json.loads(paths.runtime_file.read_text())
        return [a if "/p2p/" in a else f"{a}/p2p/{info['peer_id']}"
                for a in info.get("listen_addrs", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _generate_in_client_village(args: argparse.Namespace, settings: Any, paths: Any,
                                bootstrap: list[str], home: Path) -> dict[str, Any]:
    from core.errors import GardenerError
    from core.handle import NodeHandle
    from core.node import NodeConfig
    from core.swarm.trainer import GenerationFailed

    env = {"GROVE_HOME": str(home), "GROVE_KEY_STORE": "file"}
    config = NodeConfig.load("generate", env=env, overrides={
        "listen_host": "127.0.0.1", "listen_port": 0, "participate": False,
        "bootstrap": tuple(dict.fromkeys(bootstrap)),
        "use_default_bootstrap": settings.use_default_bootstrap and not args.no_default_bootstrap,
        "swarm_model": settings.swarm_model})
    ends = paths.data_dir / f"swarm-{settings.swarm_model}-ends.npz"
    if ends.exists():  # what this profile trained
        shutil.copyfile(ends, config.paths.data_dir / ends.name)
    handle = NodeHandle(config)
    handle.start()
    try:
        if not args.json:
            print(args.text, end="", flush=True)
        deadline = time.monotonic() + args.wait
        while True:
            said: list[str] = []

            def on_text(chars: str, said: list[str] = said) -> None:
                said.append(chars)
                if not args.json:
                    print(chars, end="", flush=True)

            try:
                return dict(handle.generate(args.text, args.tokens, on_text).result(
                    args.wait + 120))
            except GenerationFailed:
                if said or time.monotonic() > deadline:  # a session that started: no retry
                    raise
            time.sleep(2.0)  # the directory is still being read: once more
    except GardenerError:
        if not args.json:
            print(file=sys.stderr)
        raise
    finally:
        handle.stop()
