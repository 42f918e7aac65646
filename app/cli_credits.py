"""`grove credits [--json]`, `grove credits export --csv [FILE]`, `grove ledger verify`.

They read the village's ledger file directly (read-only; a running node keeps writing), so
they work with or without a node running."""

from __future__ import annotations

import argparse
import json
import sys
import time

from app.cli_common import setup


def _path(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from core.ledger.service import LEDGER_FILE

    return setup(args).data_dir / LEDGER_FILE


def cmd_credits(args: argparse.Namespace) -> int:
    from core.ledger import policy
    from core.ledger.reader import read_view

    path = _path(args)
    if not path.exists():
        view: dict[str, object] = {"running": False, "balance": 0.0, "pending": 0.0,
                                   "rejected": 0.0, "events": [], "receipts": 0}
    else:
        view = read_view(path)
    if args.action == "export":
        from core.ledger.reader import export_csv

        if not path.exists():
            print("No ledger yet: nothing to export.", file=sys.stderr)
            return 0
        if args.file:
            with open(args.file, "w", newline="") as f:
                n = export_csv(path, f)
            print(f"Wrote {n} credit events to {args.file}.")
        else:
            export_csv(path, sys.stdout)
        return 0
    if args.json:
        print(json.dumps({**view, "rates": policy.RATES}))
        return 0
    print(f"Balance: {view['balance']:.4f} credits verified; {view['pending']:.4f} pending, "
          f"{view['rejected']:.4f} rejected ({view['receipts']} receipts)")
    if view.get("today") is not None and "today" in view:
        print(f"Today {view['today']:.4f}, this week {view['this_week']:.4f}")
    for kind, v in sorted(view.get("by_kind", {}).items()):  # type: ignore[attr-defined]
        print(f"  {kind:<10} {v:.4f}")
    print("What each kind of work earns: " + ", ".join(
        f"{k} {r:g} per unit" for k, r in policy.RATES.items()))
    by_kind = dict(view.get("by_kind", {}))  # type: ignore[call-overload]
    if by_kind.get("stake") or by_kind.get("challenge"):
        print(f"Rulings: {-by_kind.get('stake', 0.0):.4f} credits of stake taken; challenges "
              f"{by_kind.get('challenge', 0.0):+.4f}")
    scores = dict(view.get("scores", {}))  # type: ignore[call-overload]
    if scores:
        print(f"Checks of others' work: {len(scores)} village(s), "
              f"{sum(a for a, _b, _r in scores.values())} passed, "
              f"{sum(b for _a, b, _r in scores.values())} failed")
    for e in list(view.get("events", []))[:10]:  # type: ignore[call-overload]
        why = f" ({e['reason']})" if e["reason"] else ""
        print(f"  {time.strftime('%Y-%m-%d %H:%M', time.localtime(e['created_at']))} "
              f"{e['kind']:<9} {e['credits']:.4f} {e['status']}{why}")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from core.identity import load_or_create_key
    from core.ledger.chain import verify_file
    from core.net.keys import peer_id_from_seed

    path = _path(args)
    if not path.exists():
        print("No ledger yet: this village has not recorded any receipt.")
        return 0
    key, _ = load_or_create_key(setup(args))  # the head must be signed by this village
    report = verify_file(path, peer_id_from_seed(key.seed))
    if args.json:
        print(json.dumps({"ok": report.ok, "entries": report.entries,
                          "first_bad": report.first_bad}))
    elif report.ok:
        print(f"The ledger checks out: {report.entries} entries, every signature and the hash "
              "chain intact, the balances match the events, and the chain's head is signed "
              "by this village's key.")
    else:
        print(f"The ledger does NOT check out after {report.entries} entries: "
              f"{report.first_bad}")
    return 0 if report.ok else 1
