"""The persona registry: one SQLite file per village.

Each change is one committed transaction (WAL journal, synchronous=FULL), so a kill -9 loses
nothing that was acknowledged. The node calls it off the trio thread.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import SettingsError
from core.personas.model import EDITABLE, MAX_PERSONAS, Persona, check

MAX_TURNS = 50  # messages per persona in a conversation asked for from the command line


class PersonaRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS personas (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "description TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL, "
            "availability TEXT NOT NULL, capacity INTEGER NOT NULL, seq INTEGER NOT NULL, "
            "updated_at REAL NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS talk_requests (id INTEGER PRIMARY KEY, "
            "persona TEXT NOT NULL, village TEXT NOT NULL, partner TEXT NOT NULL, "
            "turns INTEGER NOT NULL, created_at REAL NOT NULL, state TEXT NOT NULL, "
            "conversation TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '')")

    def close(self) -> None:
        self._db.close()

    def list(self) -> list[Persona]:
        rows = self._db.execute(
            "SELECT id, name, description, backend, status, availability, capacity, seq, "
            "updated_at FROM personas ORDER BY name COLLATE NOCASE, id").fetchall()
        return [Persona(*row) for row in rows]

    def get(self, persona_id: str) -> Persona:
        for p in self.list():
            if p.id == persona_id:
                return p
        raise SettingsError(f"There is no persona {persona_id!r} in this village.")

    def add(self, name: str, **fields: Any) -> Persona:
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise SettingsError(f"Personas have no field {sorted(unknown)[0]!r}.",
                                f"Fields: {', '.join(EDITABLE)}.")
        if len(self.list()) >= MAX_PERSONAS:
            raise SettingsError(f"A village hosts at most {MAX_PERSONAS} personas.",
                                "Remove one first.")
        p = check(Persona(secrets.token_hex(6), name, **fields, updated_at=time.time()))
        self._write(p)
        return p

    def update(self, persona_id: str, **changes: Any) -> Persona:
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise SettingsError(f"Personas have no field {sorted(unknown)[0]!r}.",
                                f"Fields: {', '.join(EDITABLE)}.")
        old = self.get(persona_id)
        new = check(replace(old, **changes))
        if new == old:
            return old
        new = replace(new, seq=old.seq + 1, updated_at=time.time())
        self._write(new)
        return new

    def remove(self, persona_id: str) -> None:
        self.get(persona_id)
        self._db.execute("DELETE FROM personas WHERE id = ?", (persona_id,))

    def _write(self, p: Persona) -> None:
        d = asdict(p)
        cols = ", ".join(d)
        marks = ", ".join("?" for _ in d)
        self._db.execute(f"INSERT OR REPLACE INTO personas ({cols}) VALUES ({marks})",
                         tuple(d.values()))

    # -- conversations asked for from another process (`grove personas talk`) ---------------
    def request_talk(self, persona_id: str, village: str, partner: str, turns: int) -> int:
        """Ask the running node to start a conversation; the request's number."""
        self.get(persona_id)
        if not 1 <= turns <= MAX_TURNS:
            raise SettingsError(f"A conversation has 1 to {MAX_TURNS} messages per persona.")
        cur = self._db.execute(
            "INSERT INTO talk_requests (persona, village, partner, turns, created_at, state) "
            "VALUES (?, ?, ?, ?, ?, 'waiting')", (persona_id, village, partner, turns,
                                                  time.time()))
        return int(cur.lastrowid or 0)

    def talk_requests(self, state: str = "waiting") -> builtins.list[TalkRequest]:
        rows = self._db.execute(
            "SELECT id, persona, village, partner, turns, created_at, state, conversation, "
            "error FROM talk_requests WHERE state = ? ORDER BY id", (state,)).fetchall()
        return [TalkRequest(*row) for row in rows]

    def talk_request(self, number: int) -> TalkRequest | None:
        row = self._db.execute(
            "SELECT id, persona, village, partner, turns, created_at, state, conversation, "
            "error FROM talk_requests WHERE id = ?", (number,)).fetchone()
        return TalkRequest(*row) if row else None

    def answer_talk(self, number: int, *, conversation: str = "", error: str = "") -> None:
        self._db.execute("UPDATE talk_requests SET state = ?, conversation = ?, error = ? "
                         "WHERE id = ?", ("failed" if error else "started", conversation,
                                          error[:500], number))


@dataclass(frozen=True)
class TalkRequest:
    id: int
    persona: str
    village: str
    partner: str
    turns: int
    created_at: float
    state: str  # waiting | started | failed
    conversation: str
    error: str
