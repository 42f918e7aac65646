"""`grove swarm serve|train|status`: serving spans of a SWARM model's blocks to other villages,
and training that model with this village's data through the villages that serve it.

`serve` turns serving on (or off with `--stop`) in settings.toml; a running node applies it
within a second, and serves once participation is on and the governor allows compute.
`train` does the same for training through the swarm.
`status` shows what the running node serves, its throughput, requests in the last hour, its
queue, and why it is not serving when it is not."""

from __future__ import annotations

import argparse
import json

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
