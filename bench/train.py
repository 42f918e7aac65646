"""Collaborative training over real hosts: `python -m bench.train --villages 4 --json`.

`--villages` full Grove nodes on loopback in one process (real DHT, progress records,
averaging with the project's rule) opt in to the digits project and train it for `--steps`
collaboration steps of `--period` seconds. Reported: samples per second over all villages,
the final test accuracy, and the same for one process training the same model with plain SGD
on the same number of samples (the batch the collaboration processed per step, in one place).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import trio


async def collaborate(args: argparse.Namespace) -> dict[str, float]:
    from tests.nodes import trio_villages, trio_wait_for

    over = {"participate": True, "training_period_s": args.period, "cpu_share": 100}
    async with trio_villages(Path(tempfile.mkdtemp(prefix="grove-bench-train-")),
                             args.villages, prefix="t", **over) as nodes:
        await trio_wait_for(lambda: all(len(n.dht.table or ()) >= min(3, len(nodes) - 1)
                                        for n in nodes), 60, "routing tables")
        for n in nodes:
            await n.settings_service.change({"training_projects": ("digits",)})
        states = [n.training.projects["digits"] for n in nodes]
        t0 = time.monotonic()
        said = 0.0
        while min(s.epoch for s in states) < args.steps:
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"only {min(s.epoch for s in states)} steps in "
                                 f"{args.timeout:g} s")
            if time.monotonic() - said > 10:
                said = time.monotonic()
                print(f"  {said - t0:5.0f} s: steps {[s.epoch for s in states]}, accuracy "
                      f"{[round(s.accuracy or 0, 3) for s in states]}", file=sys.stderr)
            await trio.sleep(0.2)
        seconds = time.monotonic() - t0
        samples = sum(s.samples_total for s in states)
        return {"seconds": seconds, "samples": samples,
                "accuracy": min(s.accuracy or 0.0 for s in states),
                "members_last_step": min(s.last_members for s in states)}


def single_process(samples_per_step: int, steps: int, seed: int) -> dict[str, float]:
    import torch

    from core.training.collab import PROJECTS
    from core.training.demo import accuracy, digits_model, load_digits

    spec = PROJECTS["digits"]
    data = load_digits(spec.seed)
    model = digits_model(spec.seed)
    opt = torch.optim.SGD(model.parameters(), lr=spec.local_lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    total = 0
    for _ in range(steps * max(1, samples_per_step // spec.batch)):
        idx = torch.randint(len(data.y_train), (spec.batch,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
        total += spec.batch
    seconds = time.monotonic() - t0
    return {"seconds": seconds, "samples": total,
            "accuracy": accuracy(model, data.x_test, data.y_test)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train")
    ap.add_argument("--villages", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--period", type=float, default=5.0, help="seconds per step")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    collab = trio.run(collaborate, args)
    per_step = int(collab["samples"] // args.steps)
    single = single_process(per_step, args.steps, seed=1)
    out = {
        "villages": args.villages, "processes": 1, "steps": args.steps,
        "period_s": args.period, "rule": "centered_clip",
        "samples_per_second": round(collab["samples"] / collab["seconds"], 1),
        "final_accuracy": round(collab["accuracy"], 4),
        "members_last_step": collab["members_last_step"],
        "samples_per_step": per_step,
        "single_process": {"samples_per_second": round(single["samples"] / single["seconds"], 1),
                           "final_accuracy": round(single["accuracy"], 4)},
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
