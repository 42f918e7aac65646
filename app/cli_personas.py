"""`grove personas`: the village's personas and their conversations.

    grove personas [list] [--json]
    grove personas add NAME [--description D] [--backend B] [--availability A]
                            [--capacity N] [--status S]
    grove personas edit ID FIELD=VALUE ...
    grove personas remove ID
    grove personas conversations [--json]
    grove personas transcript CONVERSATION [--json]

Edits go to the registry file; a running node takes them within a second (and republishes
its village record). Conversations are read from the village's conversation store."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from app.cli_common import setup
from core.errors import SettingsError


def _fields(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("description", "backend", "availability", "status"):
        if getattr(args, name, None) is not None:
            out[name] = getattr(args, name)
    if getattr(args, "capacity", None) is not None:
        out["capacity"] = args.capacity
    return out


def cmd_personas(args: argparse.Namespace) -> int:
    from core.personas.registry import PersonaRegistry

    paths = setup(args)
    action = args.action or "list"
    if action in ("conversations", "transcript"):
        return _conversations(args, paths.data_dir)
    reg = PersonaRegistry(paths.data_dir / "personas.db")
    try:
        if action == "add":
            if not args.rest:
                raise SettingsError("Name the persona: grove personas add NAME")
            p = reg.add(" ".join(args.rest), **_fields(args))
            print(f"Added {p.name} ({p.id}).")
        elif action == "edit":
            if not args.rest:
                raise SettingsError("grove personas edit ID FIELD=VALUE ...")
            changes: dict[str, object] = _fields(args)
            for item in args.rest[1:]:
                key, sep, value = item.partition("=")
                if not sep:
                    raise SettingsError(f"{item!r} is not FIELD=VALUE.")
                changes[key] = int(value) if key == "capacity" and value.isdigit() else value
            p = reg.update(args.rest[0], **changes)
            print(f"{p.name} ({p.id}) is now at version {p.seq}.")
        elif action == "remove":
            if not args.rest:
                raise SettingsError("grove personas remove ID")
            reg.remove(args.rest[0])
            print(f"Removed {args.rest[0]}.")
        personas = reg.list()
    finally:
        reg.close()
    if action != "list":
        return 0
    if args.json:
        print(json.dumps([asdict(p) for p in personas]))
        return 0
    if not personas:
        print("No personas yet: grove personas add NAME")
    for p in personas:
        print(f"{p.id}  {p.name:<20} {p.status:<9} {p.availability:<11} "
              f"{p.backend:<18} up to {p.capacity} conversation(s)")
    return 0


def _conversations(args: argparse.Namespace, data_dir: object) -> int:
    from pathlib import Path

    from core.personas.store import ConversationStore
    from core.personas.talk import DB_FILE

    path = Path(str(data_dir)) / DB_FILE
    convs = ConversationStore(path).load() if path.exists() else []
    if args.action == "transcript":
        want = args.rest[0] if args.rest else ""
        c = next((c for c in convs if c.id.startswith(want) and want), None)
        if c is None:
            raise SettingsError(f"There is no conversation {want!r} here.",
                                "grove personas conversations lists them.")
        lines = [{"at": e.at, "speaker": f"{e.persona}@{e.author[-6:]}", "kind": e.kind,
                  "text": e.text} for e in c.log.transcript()]
        if args.json:
            print(json.dumps({"id": c.id, "entries": lines,
                              "final_checkpoint": c.log.final.checkpoint.count
                              if c.log.final else 0}))
            return 0
        for x in lines:
            print(f"{time.strftime('%H:%M:%S', time.localtime(x['at']))} {x['speaker']}: "
                  f"{x['text']}")
        return 0
    rows = [{"id": c.id, "persona": c.persona,
             "partners": [f"{p.persona}@{p.peer[-6:]}" for p in c.participants[1:]],
             "entries": len(c.log.entries),
             "last_checkpoint": c.log.final.checkpoint.count if c.log.final else 0,
             "equivocators": sorted(a[-8:] for a in c.log.forked_at)} for c in convs]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("No conversations yet.")
    for r in rows:
        print(f"{r['id'][:12]}  {r['entries']} entries, checkpointed {r['last_checkpoint']}, "
              f"with {', '.join(r['partners'])}")  # type: ignore[arg-type]
    return 0
