"""The persona registry: one SQLite file per village.

Each change is one committed transaction (WAL journal, synchronous=FULL), so a kill -9 loses
nothing that was acknowledged. The node calls it off the trio thread.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from core.errors import SettingsError
from core.personas.model import EDITABLE, MAX_PERSONAS, Persona, check


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
