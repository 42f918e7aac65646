"""Byzantine robustness of the aggregation rules: `python -m bench.robust --json`.

The digits demo project trained by `--villages` simulated villages in one process (the
rules' arithmetic, not the network, is what is measured here; bench.train runs real hosts).
Each step every village computes a gradient on a batch of its own shard and keeps worker
momentum (as Karimireddy et al. do); the Byzantine share of them (the last villages) send what
the attack says instead; the rule aggregates all the vectors (tolerating f = the number of
Byzantine villages; the mean tolerates none) and every village takes the same step. Reported:
test accuracy after `--steps` steps, clean and for each attack x rule.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch.func import functional_call, grad, vmap

from bench.attacks import (
    ATTACKS,
    GAUSSIAN_RMS,
    IPM_EPSILON,
    SCALED,
    SIGN_FLIP_SCALE,
    attack,
    flip_labels,
)
from core.robust import RULES, aggregate
from core.training.demo import DIGITS_CLASSES, Dataset, accuracy, digits_model, load_digits


def train(data: Dataset, rule: str, attack_name: str | None, args: argparse.Namespace,
          ) -> tuple[float, set[str]]:
    """Final test accuracy, and the fallbacks the rule took (none expected at n = 16). A run
    whose parameters stop being finite ends there, measured with its last finite ones and
    noted as diverged."""
    n, f = args.villages, (args.byzantine if attack_name else 0)
    model = digits_model(args.seed)
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflat(v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: t.reshape(s) for k, t, s in zip(names, v.split(sizes), shapes, strict=True)}

    def loss(v: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, unflat(v), (x,))
        return torch.nn.functional.cross_entropy(out, y)

    per_village = vmap(grad(loss), in_dims=(None, 0, 0))
    shards = [data.shard(i, n) for i in range(n)]
    byz = list(range(n - f, n))
    honest = list(range(n - f))
    gen = torch.Generator().manual_seed(args.seed + 1)
    momentum = torch.zeros(n, flat.numel())
    prev = torch.zeros(flat.numel())
    notes: set[str] = set()
    for _ in range(args.steps):
        xs, ys = [], []
        for i, (x, y) in enumerate(shards):
            idx = torch.randint(len(y), (args.batch,), generator=gen)
            xs.append(x[idx])
            ys.append(flip_labels(y[idx], DIGITS_CLASSES)
                      if attack_name == "label_flip" and i in byz else y[idx])
        g = per_village(flat, torch.stack(xs), torch.stack(ys))
        if not torch.isfinite(g).all():
            notes.add("diverged")
            break
        momentum = args.momentum * momentum + (1 - args.momentum) * g
        sent = momentum.clone()
        if attack_name and f:
            sent[byz] = attack(attack_name, momentum[byz], momentum[honest], gen)
        params: dict[str, object] = {"center": prev} if rule == "centered_clip" else {}
        agg, _used, why = aggregate(rule, sent, 0 if rule == "mean" else f, **params)
        if why:
            notes.add(why)
        step = flat - args.lr * agg
        if not torch.isfinite(step).all():
            notes.add("diverged")
            break
        prev, flat = agg, step
    for k, t in unflat(flat).items():
        dict(model.named_parameters())[k].data.copy_(t)
    return accuracy(model, data.x_test, data.y_test), notes


def run(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_digits(args.seed)
    began = time.monotonic()
    clean, _ = train(data, "mean", None, args)
    clean_rules = {r: round(train(data, r, None, args)[0], 4) for r in args.rules}
    print(f"clean: mean {clean:.4f}; {clean_rules}", file=sys.stderr)
    table: dict[str, dict[str, float]] = {}
    fallbacks: dict[str, list[str]] = {}
    for a in args.attacks:
        table[a] = {}
        for r in args.rules:
            acc, notes = train(data, r, a, args)
            table[a][r] = round(acc, 4)
            if notes:
                fallbacks[f"{a}/{r}"] = sorted(notes)
        print(f"{a:>10}: " + "  ".join(f"{r} {v:.3f}" for r, v in table[a].items()),
              file=sys.stderr)
    return {
        "project": "digits", "villages": args.villages, "byzantine": args.byzantine,
        "steps": args.steps, "batch": args.batch, "lr": args.lr,
        "worker_momentum": args.momentum, "seed": args.seed,
        "clean_accuracy": round(clean, 4), "clean_accuracy_by_rule": clean_rules,
        "accuracy": table, "fallbacks": fallbacks,
        "attack_settings": {"sign_flip_scale": SIGN_FLIP_SCALE, "scaled": SCALED,
                            "gaussian_rms": GAUSSIAN_RMS, "ipm_epsilon": IPM_EPSILON},
        "seconds": round(time.monotonic() - began, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.robust")
    ap.add_argument("--villages", type=int, default=16)
    ap.add_argument("--byzantine", type=int, default=3, help="Byzantine villages (3 of 16: ~20%%)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--momentum", type=float, default=0.9, help="worker momentum")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run(args)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
