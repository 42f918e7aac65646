"""`grove personas`: the village's personas and their conversations.

    grove personas [list] [--json]
    grove personas add NAME [--description D] [--backend B] [--availability A]
                            [--capacity N] [--status S]
    grove personas edit ID FIELD=VALUE ...
    grove personas remove ID
    grove personas conversations [--json]
    grove personas transcript CONVERSATION [--json]
    grove personas talk OURS THEIRS [--village V] [--turns N] [--no-follow]

Edits go to the registry file; a running node takes them within a second (and republishes
its village record). Conversations are read from the village's conversation store. `talk`
asks the running node (through the registry file) to start a conversation between one of
this village's personas and a neighbour's open one, then prints the transcript as it grows
(Ctrl-C stops following; the conversation goes on)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from typing import Any

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
    if action == "talk":
        return _talk(args, paths)
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
    speaker = _speakers(Path(str(data_dir)), {p.peer for c in convs for p in c.participants
                                               if p.persona == c.persona})
    if args.action == "transcript":
        want = args.rest[0] if args.rest else ""
        c = next((c for c in convs if c.id.startswith(want) and want), None)
        if c is None:
            raise SettingsError(f"There is no conversation {want!r} here.",
                                "grove personas conversations lists them.")
        lines = [{"at": e.at, "speaker": speaker(e.author, e.persona), "village": e.author,
                  "persona": e.persona, "kind": e.kind, "text": e.text}
                 for e in c.log.transcript()]
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
             "partners": [speaker(p.peer, p.persona) for p in c.participants[1:]],
             "partner_ids": [[p.peer, p.persona] for p in c.participants[1:]],
             "entries": len(c.log.entries),
             "last_checkpoint": c.log.final.checkpoint.count if c.log.final else 0,
             "equivocators": sorted(c.log.forked_at)} for c in convs]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("No conversations yet.")
    for r in rows:
        print(f"{r['id'][:12]}  {r['entries']} entries, checkpointed {r['last_checkpoint']}, "
              f"with {', '.join(r['partners'])}")  # type: ignore[arg-type]
    return 0


def _speakers(data_dir: object, mine: set[str]) -> Any:
    """(village, persona id) -> "Ada at Mossy Heron", offline: our personas' names from the
    registry, others' from the villages the node last wrote down (their signed records)."""
    from pathlib import Path

    from core.names import display_name, speaker
    from core.peers_file import read_villages
    from core.personas.registry import PersonaRegistry

    ours: dict[str, str] = {}
    reg = PersonaRegistry(Path(str(data_dir)) / "personas.db")
    try:
        ours.update({p.id: p.name for p in reg.list()})
    finally:
        reg.close()
    theirs: dict[tuple[str, str], str] = {}
    villages: dict[str, str] = {}
    for v in read_villages(Path(str(data_dir)), time.time()):
        villages[v.peer_id] = v.name
        theirs.update({(v.peer_id, pid): name for pid, name in v.open_personas})

    def label(peer: str, persona: str) -> str:
        if peer in mine:
            return speaker(ours.get(persona, ""), persona)
        return speaker(theirs.get((peer, persona), ""), persona,
                       villages.get(peer) or display_name(peer))
    return label


def _find_partner(data_dir: Any, theirs: str, village: str) -> tuple[str, str, str]:
    """(village id, persona id, "Bo at Mossy Heron") of a neighbour's open persona, from the
    villages the running node last wrote down (their signed records)."""
    from pathlib import Path

    from core.peers_file import read_villages

    found = []
    for v in read_villages(Path(str(data_dir)), time.time()):
        if village and village.lower() not in (v.name.lower(), v.peer_id.lower()) \
                and not v.peer_id.startswith(village) \
                and village.lower() not in v.name.lower():
            continue
        for pid, name in v.open_personas:
            if theirs.lower() in (name.lower(), pid.lower()):
                found.append((v.peer_id, pid, f"{name} at {v.name}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SettingsError(f"No neighbour's persona called {theirs!r} is open to a "
                            "conversation" + (f" at {village!r}" if village else "") + ".",
                            "Personas are known from the villages' signed records while "
                            "the node runs; `grove peers` lists the villages.")
    raise SettingsError(f"{len(found)} open personas are called {theirs!r}: "
                        + ", ".join(label for _, _, label in found) + ".",
                        "Name the village with --village.")


def _talk(args: argparse.Namespace, paths: Any) -> int:
    from core.personas.registry import PersonaRegistry

    if len(args.rest) != 2:
        raise SettingsError("grove personas talk OURS THEIRS (persona names or ids)")
    if not paths.runtime_file.exists():
        raise SettingsError("The village is not running.", "Start it (`grove node` or the "
                            "tray), then ask again.")
    ours, theirs = args.rest
    village, partner, label = _find_partner(paths.data_dir, theirs, args.village)
    reg = PersonaRegistry(paths.data_dir / "personas.db")
    try:
        mine = [p for p in reg.list() if ours.lower() in (p.name.lower(), p.id)]
        if len(mine) != 1:
            raise SettingsError(f"This village has no persona {ours!r}." if not mine else
                                f"Several personas here are called {ours!r}: use its id.")
        number = reg.request_talk(mine[0].id, village, partner, args.turns)
        deadline = time.monotonic() + 60
        request = reg.talk_request(number)
        while request is not None and request.state == "waiting":
            if time.monotonic() > deadline:
                raise SettingsError("The village did not take the request within 60 s.",
                                    "Is it running for this profile?")
            time.sleep(0.2)
            request = reg.talk_request(number)
    finally:
        reg.close()
    assert request is not None
    if request.state == "failed":
        raise SettingsError(f"The conversation did not start: {request.error}")
    if args.json:
        print(json.dumps({"conversation": request.conversation, "with": label,
                          "village": village, "persona": partner}))
    else:
        print(f"{mine[0].name} is talking with {label} (conversation "
              f"{request.conversation[:12]}).")
    if not args.no_follow and not args.json:
        _follow(paths.data_dir, request.conversation)
    return 0


def _follow(data_dir: Any, cid: str) -> None:
    """Print the transcript as it grows, until nobody will say more (each persona said its
    turns, or has the last word with nobody left to answer) and everyone agreed on it (a
    final checkpoint over every entry), or Ctrl-C."""
    from pathlib import Path

    from core.personas.store import ConversationStore
    from core.personas.talk import DB_FILE

    speaker = None
    shown = 0
    store = ConversationStore(Path(str(data_dir)) / DB_FILE)
    try:
        while True:
            convs = store.load()
            c = next((c for c in convs if c.id == cid), None)
            if c is not None:
                if speaker is None:
                    speaker = _speakers(data_dir, {p.peer for p in c.participants
                                                   if p.persona == c.persona})
                lines = [e for e in c.log.transcript() if e.kind == "message"]
                for e in lines[shown:]:
                    print(f"{time.strftime('%H:%M:%S', time.localtime(e.at))} "
                          f"{speaker(e.author, e.persona)}: {e.text}", flush=True)
                shown = len(lines)
                final = c.log.final
                if c.over() and final is not None \
                        and final.checkpoint.count == len(c.log.entries):
                    print(f"(finished: {shown} messages, agreed by everyone)")
                    return
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\n(stopped following; the conversation goes on)")
    finally:
        store.close()
